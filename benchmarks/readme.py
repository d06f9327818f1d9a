"""The README's headline figures, taken from the page `make bench` writes (docs/benchmarks.md), never typed.

`make bench` calls ``update`` after writing the page; ``python -m benchmarks.readme`` redoes it from the page as
it is. The block sits between two markers in README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "benchmarks.md"
README = ROOT / "README.md"
BEGIN = "<!-- headline figures: written by `make bench` from docs/benchmarks.md -->"
END = "<!-- end of headline figures -->"

# (figure name on the page, what the README calls it)
HEADLINES = [
    (
        "synthetic 1,000,000 x 28 (linear_regression, 500 epochs): objective / exact optimum",
        "sync training, 1,000,000 x 28: objective / exact optimum",
    ),
    (
        "synthetic 1,000,000 x 28: objective / exact optimum, async (30 passes x 4 workers x 10 updates, averaged)",
        "async training (averaged), 1,000,000 x 28: objective / exact optimum",
    ),
    ("updates lost of 400 accepted, 8 workers (compare-and-swap)", "async: updates lost of 400, 8 workers"),
    (
        "breast cancer (logistic_regression), solver newton: rounds (converged)",
        "logistic regression (breast cancer), Newton: rounds to scikit-learn's optimum",
    ),
    ("wine (softmax_regression), solver newton: rounds (converged)", "softmax (wine), Newton: rounds"),
    (
        "1,000,000 x 28 regression CSV (224 MiB): CSV to registered model",
        "CSV to registered model, 1,000,000 x 28 (224 MiB), locally",
    ),
    ("8 shards, a round: S3 PUT and LIST, results inline", "S3 writes per 8-shard round (results in the Map result)"),
    ("round time, 1,000,000 rows / 16 shards", "a training round, 1,000,000 rows / 16 shards"),
    ("round cost, 1,000,000 rows / 16 shards", "its AWS cost"),
    ("peak RSS, 2,000,000 rows (streaming, 2 passes)", "Preprocess peak memory, 2,000,000 rows"),
    ("peak RSS, registering a 255 MiB CSV (streamed)", "Ingest peak memory, a 255 MiB CSV (limit 256 MiB)"),
    (
        "Friedman #1 20,000 rows (mlp_regression (64, 64)): test R², sync",
        "MLP (64, 64), Friedman #1 (20,000 rows): test R²",
    ),
    ("Predict, warm, MLP (64, 64), 1000 instance(s): p50", "Predict, warm, MLP (64, 64), 1,000 rows: p50"),
    ("diabetes: tuned model's test r2", "tuning with dataset, target, model name only, diabetes: test R²"),
    (
        "diabetes, 32 trials, 8 at a time: share of trials stopped early",
        "tuning job, 32 trials (8 at a time): share stopped early",
    ),
    ("diabetes, 32 trials, 8 at a time: measured usage cost", "that job's measured AWS cost"),
]


def figures(page: str) -> dict[str, list[str]]:
    """Figure name -> its table cells (unit, min, median, max, spread, reference, ref. median)."""
    out = {}
    for line in page.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 8 and cells[0] not in ("figure", "---"):
            out[cells[0]] = cells[1:]
    return out


def block(page: str) -> str:
    """The README block: a table of the headline figures (median, min - max) and their references."""
    found = figures(page)
    missing = [name for name, _ in HEADLINES if name not in found]
    if missing:
        raise KeyError(f"docs/benchmarks.md has no figure named {missing[0]!r}")
    rows = ["| figure | median | min - max | compared with |", "| --- | ---: | ---: | --- |"]
    for name, label in HEADLINES:
        unit, lo, mid, hi, _, ref_name, ref_mid = found[name]
        reference = f"{ref_name}: {ref_mid}" if ref_name and ref_mid else ref_name
        rows.append(f"| {label} | {mid} {unit} | {lo} - {hi} | {reference} |")
    return "\n".join([BEGIN, *rows, END])


def update(readme: str, page: str) -> str:
    """``readme`` with the block between the markers replaced by ``block(page)``."""
    start, end = readme.index(BEGIN), readme.index(END) + len(END)
    return readme[:start] + block(page) + readme[end:]


def main() -> int:
    README.write_text(update(README.read_text(), PAGE.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
