"""What a benchmark returns, and how repeated runs are summarized. No timed assertions anywhere."""

from __future__ import annotations

import resource
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Figure:
    """One measured figure, with the reference it is compared with in the same run."""

    section: str
    name: str
    value: float
    unit: str
    reference_name: str = ""
    reference_value: float | None = None
    better: str = "lower"  # or "higher"
    note: str = ""


@dataclass
class Summary:
    figure: Figure
    values: list[float] = field(default_factory=list)
    references: list[float] = field(default_factory=list)

    @staticmethod
    def _mmm(values: list[float]) -> tuple[float, float, float]:
        return min(values), statistics.median(values), max(values)

    @property
    def value(self) -> tuple[float, float, float]:
        return self._mmm(self.values)

    @property
    def reference(self) -> tuple[float, float, float] | None:
        return self._mmm(self.references) if self.references else None

    @property
    def spread(self) -> float:
        """(max - min) / median: the run-to-run noise of this figure."""
        lo, mid, hi = self.value
        return (hi - lo) / abs(mid) if mid else 0.0


def summarize(runs: list[list[Figure]]) -> list[Summary]:
    out: dict[tuple[str, str], Summary] = {}
    for figures in runs:
        for f in figures:
            s = out.setdefault((f.section, f.name), Summary(f))
            s.values.append(f.value)
            if f.reference_value is not None:
                s.references.append(f.reference_value)
    return list(out.values())


def peak_rss_mib() -> float:
    """This process's own peak RSS in MiB: VmHWM on Linux. Not ``getrusage``'s ``ru_maxrss``: it survives the exec of
    a child started by vfork+exec (as ``subprocess`` does), so a fresh benchmark process would report its parent's
    peak whenever the parent's is the larger."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # elsewhere (KiB as on Linux)


def best_of(fn: Callable[[], object], repeat: int = 5) -> float:
    """Fastest of ``repeat`` calls, in seconds (the usual way to time a small piece of code)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def run_concurrently(target: Callable[..., object], args: list[tuple]) -> None:
    """``target(*a)`` for every ``a`` in ``args``, each in its own thread; the first error is re-raised."""
    errors: list[BaseException] = []

    def run(*a) -> None:
        try:
            target(*a)
        except BaseException as err:  # re-raised below, in the caller's thread
            errors.append(err)

    threads = [threading.Thread(target=run, args=a) for a in args]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
