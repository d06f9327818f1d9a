"""Fault injection for the local run: transient failures and duplicate deliveries per function.

A ``FaultInjector`` is the ``hook`` (``lambdas.Hook``) of ``LocalCloud``/``route_lambdas``. Settings per function
logical id (or ``"*"`` for all), e.g. ``{"GradientWorkerFunction": {"failure_rate": 0.2},
"AggregatorFunction": {"duplicate_rate": 0.5}}``:

- ``failure_rate``: the invocation fails before the handler runs with a Lambda service fault
  (``Lambda.ServiceException``, which the state machines retry with backoff);
- ``duplicate_rate``: the handler runs twice for the same event (at-least-once delivery);
- ``timeout_rate``: the handler runs, then the invocation fails as a Lambda timeout
  (``Sandbox.Timedout``): its side effects happened but its answer is lost, and the step is retried.

Draws come from a seeded generator, so a run with faults is reproducible.
"""

from __future__ import annotations

import json
import random
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .lambdas import TIMEOUT, LambdaServiceError
from .template import FunctionSpec


@dataclass
class FaultInjector:
    settings: dict[str, dict[str, float]]
    seed: int = 0
    injected: dict[str, dict[str, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, rates in self.settings.items():
            unknown = set(rates) - {"failure_rate", "duplicate_rate", "timeout_rate"}
            if unknown:
                raise ValueError(f"fault settings for {name}: unknown keys {sorted(unknown)}")
            for key, rate in rates.items():
                if not 0.0 <= rate < 1.0:
                    raise ValueError(f"fault settings for {name}: {key} must be in [0, 1), got {rate}")
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, path: str | Path, seed: int = 0) -> FaultInjector:
        return cls(json.loads(Path(path).read_text()), seed)

    def _rates(self, spec: FunctionSpec) -> dict[str, float]:
        return {**self.settings.get("*", {}), **self.settings.get(spec.logical_id, {})}

    def _count(self, spec: FunctionSpec, kind: str) -> None:
        counts = self.injected.setdefault(spec.logical_id, {"failures": 0, "duplicates": 0, "timeouts": 0})
        counts[kind] += 1

    def __call__(self, spec: FunctionSpec, event: Any) -> int | Literal["timeout"]:
        rates = self._rates(spec)
        with self._lock:
            fail = self._rng.random() < rates.get("failure_rate", 0.0)
            duplicate = self._rng.random() < rates.get("duplicate_rate", 0.0)
            timeout = self._rng.random() < rates.get("timeout_rate", 0.0)
            kind = "failures" if fail else "timeouts" if timeout else "duplicates" if duplicate else None
            if kind:
                self._count(spec, kind)
        if fail:
            raise LambdaServiceError(f"injected transient fault in {spec.logical_id}")
        return TIMEOUT if timeout else 2 if duplicate else 1
