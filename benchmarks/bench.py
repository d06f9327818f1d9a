"""`make bench`: run every benchmark, repeated, and write docs/benchmarks.md (+ plots in docs/).

    python -m benchmarks.bench             # full mode, for people (minutes)
    python -m benchmarks.bench --quick     # seconds: checks the benchmark code runs (CI)

Each figure is reported as min / median / max over the repeats, beside the reference measured in
the same run. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from . import readme
from .harness import Summary, summarize

ROOT = Path(__file__).resolve().parents[1]
MODULES = [
    "benchmarks.bandwidth",
    "benchmarks.quality",
    "benchmarks.async_baseline",
    "benchmarks.mlp",  # issue #15: MLP quality vs scikit-learn, a worker's pass vs bare numpy, warm Predict
    "benchmarks.preprocess",
    "benchmarks.ingest",
    "benchmarks.scaling",
    "benchmarks.training",  # collect: an 8-shard round's S3 requests and transitions, results inline vs via S3
    "benchmarks.tuning",  # issue #16: tuned model vs a tuned scikit-learn suite, a 32-trial job's time and cost
    "benchmarks.end_to_end",
]


def machine() -> dict[str, str]:
    import numpy as np
    import sklearn
    import threadpoolctl

    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else ""
    )
    blas = ", ".join(
        f"{i.get('internal_api')} {i.get('version')} ({i.get('num_threads')} threads)"
        for i in threadpoolctl.threadpool_info()
    )
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30 if hasattr(os, "sysconf") else 0
    return {
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "memory": f"{mem:.0f} GiB",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "BLAS": blas or "n/a",
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "(unset)"),
        "platform": platform.platform(),
    }


def _fmt(x: float) -> str:
    return f"{x:.4g}" if abs(x) < 1e5 else f"{x:,.0f}"


def render(
    summaries: list[Summary],
    info: dict[str, str],
    repeat: int,
    quick: bool,
    seconds: float,
    plots: list[str],
    analyses: list[tuple[str, str]] = (),
) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"Written by `make bench{'-quick' if quick else ''}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC "
        f"in {seconds:.0f} s; every figure is min / median / max over {repeat} run(s), with the reference "
        "measured in the same run. `spread` is (max - min) / median: differences smaller than it are noise.",
        "",
        "## Machine",
        "",
        "| | |",
        "| --- | --- |",
    ]
    lines += [f"| {k} | {v} |" for k, v in info.items()]
    sections: dict[str, list[Summary]] = {}
    for s in summaries:
        sections.setdefault(s.figure.section, []).append(s)
    for section, items in sections.items():
        lines += [
            "",
            f"## {section.capitalize()}",
            "",
            "| figure | unit | min | median | max | spread | reference | ref. median |",
            "| --- | --- | ---: | ---: | ---: | ---: | --- | ---: |",
        ]
        for s in items:
            lo, mid, hi = s.value
            ref = s.reference
            lines.append(
                f"| {s.figure.name} | {s.figure.unit} | {_fmt(lo)} | {_fmt(mid)} | {_fmt(hi)} | "
                f"{s.spread:.1%} | {s.figure.reference_name} | {_fmt(ref[1]) if ref else ''} |"
            )
        notes = sorted({s.figure.note for s in items if s.figure.note})
        lines += [""] + [f"- {n}" for n in notes] if notes else []
    for title, text in analyses:
        lines += ["", f"## {title}", "", text]
    for plot in plots:
        lines += ["", f"![{plot}]({plot})"]
    return "\n".join(lines) + "\n"


def _sections(page: str) -> tuple[list[str], dict[str, list[str]]]:
    """A page's lines before its first ``## `` heading, and its sections by heading (in order)."""
    head: list[str] = []
    sections: dict[str, list[str]] = {}
    current = head
    for line in page.rstrip("\n").split("\n"):
        if line.startswith("## "):
            current = sections.setdefault(line, [])
        current.append(line)
    return head, sections


def merge(old: str, new: str, modules: list[str]) -> str:
    """The page ``old`` with the sections ``new`` has (written by a run of ``modules`` only) put in place of its
    own, and ``new``'s other sections added at the end; the header says which sections were rewritten, when."""
    old_head, old_sections = _sections(old)
    _, new_sections = _sections(new)
    new_sections = {h: [line for line in body if not line.startswith("![")] for h, body in new_sections.items()}
    rewritten = [h.removeprefix("## ") for h in new_sections if h != "## Machine"]
    stamp = (
        f"Sections {', '.join(rewritten)} rewritten on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by "
        f"`python -m benchmarks.bench {' '.join('--only ' + m for m in modules)}` on this machine; the others are "
        "from the run above."
    )
    kept = [line for line in old_head if not line.startswith("Sections ")]
    while kept and not kept[-1]:
        kept.pop()
    lines = [*kept, "", stamp, ""]
    for heading, body in old_sections.items():
        lines += [*new_sections.get(heading, body)]
    for heading, body in new_sections.items():
        if heading not in old_sections:
            lines += body
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one run: checks the code runs")
    parser.add_argument("--repeat", type=int, help="runs per benchmark (default 3, quick 1)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--only", action="append", help="run only these modules (e.g. benchmarks.quality)")
    args = parser.parse_args(argv)
    repeat = args.repeat or (1 if args.quick else 3)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    runs = []
    analyses = []
    for name in args.only or MODULES:
        module = importlib.import_module(name)
        accepts_plots = "plot_dir" in inspect.signature(module.collect).parameters
        times = min(repeat, getattr(module, "REPEAT", repeat))  # a module may ask for fewer runs (its notes say so)
        for i in range(times):
            print(f"{name}: run {i + 1}/{times}", file=sys.stderr, flush=True)
            kwargs = {"plot_dir": args.out.parent} if accepts_plots and i == 0 else {}
            runs.append(module.collect(args.quick, **kwargs))
        if hasattr(module, "analysis") and module.analysis():
            analyses.append((f"{name.rsplit('.', 1)[-1].capitalize()} analysis", module.analysis()))
    summaries = summarize(runs)
    plots = sorted(p.name for p in args.out.parent.glob("*.png"))
    text = render(summaries, machine(), repeat, args.quick, time.perf_counter() - started, plots, analyses)
    if args.only and args.out.exists() and not args.quick:  # the other sections stay as the last full run left them
        text = merge(args.out.read_text(), text, args.only)
    args.out.write_text(text)
    if args.out.resolve() == readme.PAGE and not args.quick:
        readme.main()  # the README's headline figures come from the page just written
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
