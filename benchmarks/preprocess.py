"""Peak memory and throughput of the streaming Preprocess path (`make bench-preprocess`).

Generates a synthetic CSV of each size, then runs ``mlcore.steps.preparation.streaming.preprocess_streaming`` on it in a
fresh subprocess against a file-system stand-in for S3 (so the "bucket" does not sit in the measured
process's memory), and prints the subprocess's own peak RSS (VmHWM, ``harness.peak_rss_mib``: not ``ru_maxrss``,
which a vfork+exec child inherits from this process) and rows per second.

    python benchmarks/preprocess.py [--rows 200000 2000000] [--shards 8]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]  # the measured subprocess runs `python -m benchmarks.preprocess` from here
SPEC = {"columns": {"id": {"drop": True}, "income": {"transform": "log1p"}, "bmi": {"clip": [15, 50]}}}


def generate(path: Path, rows: int, seed: int = 0, block: int = 200_000) -> None:
    rng = np.random.default_rng(seed)
    cities = np.array(["north", "south", "east", "west", ""])
    with path.open("w") as f:
        f.write("id,age,bmi,income,city,smoker,y\n")
        for start in range(0, rows, block):
            n = min(block, rows - start)
            age = rng.integers(18, 80, n)
            bmi = rng.normal(28, 5, n)
            income = np.exp(rng.normal(10.5, 0.6, n))
            city = cities[rng.integers(0, 5, n)]
            smoker = np.where(rng.random(n) < 0.2, "yes", "no")
            y = 40 * age + 60 * bmi + 900 * np.log1p(income) + rng.normal(0, 500, n)
            f.writelines(
                f"r{start + i},{age[i]},{bmi[i]:.1f},{income[i]:.0f},{city[i]},{smoker[i]},{y[i]:.2f}\n"
                for i in range(n)
            )


class FileStore:
    """The parts of S3Store the streaming path uses, on local files."""

    MIN_PART_BYTES = 8 * 1024 * 1024

    def __init__(self, root: Path):
        self.root, self.bucket = root, "local"

    def _path(self, key: str) -> Path:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def open(self, key: str):
        return self._path(key).open("rb")

    def put_bytes(self, key: str, body: bytes, **_) -> None:
        self._path(key).write_bytes(body)

    def put_json(self, key: str, doc, **_) -> None:
        self.put_bytes(key, json.dumps(doc).encode())

    def delete(self, keys) -> None:
        for key in keys:
            self._path(key).unlink(missing_ok=True)

    def start_multipart(self, key: str, **_):
        store = self

        class Upload:
            parts: list = []

            def __init__(self):
                self.file = store._path(key + ".part").open("wb")

            def part(self, body: bytes) -> None:
                self.file.write(body)
                self.parts.append(len(body))

            def complete(self) -> None:
                self.file.close()
                store._path(key + ".part").rename(store._path(key))

            def abort(self) -> None:
                self.file.close()

        return Upload()


def measure(csv: Path, shards: int) -> dict:
    """Runs in the subprocess: the whole streaming preprocess, then its own peak RSS."""
    from benchmarks.harness import peak_rss_mib
    from mlcore.steps.preparation import streaming
    from mlcore.steps.schemas import TrainingRequest

    kinds = {"id": "categorical", "age": "numeric", "bmi": "numeric", "income": "numeric"}
    kinds |= {"city": "categorical", "smoker": "categorical", "y": "numeric"}
    root = csv.parent
    meta = {"dataset": "bench", "version": csv.stem, "key": csv.name, "format": "csv", "rows": None, "sha256": None}
    meta["columns"] = [{"name": n, "kind": k} for n, k in kinds.items()]
    request = TrainingRequest.model_validate(
        {"dataset": "bench", "target": "y", "model_name": "bench", "n_shards": shards, "preprocessing": SPEC}
    )
    started = time.perf_counter()
    result = streaming.preprocess_streaming(FileStore(root), request, f"run-{csv.stem}", meta)
    seconds = time.perf_counter() - started
    rows = result.train_rows + result.test_rows
    peak_mib = peak_rss_mib()
    return {"rows": rows, "seconds": seconds, "rows_per_second": rows / seconds, "peak_rss_mib": peak_mib}


def run_sizes(sizes: list[int], shards: int = 8) -> list[dict]:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for rows in sizes:
            csv = Path(tmp) / f"bench-{rows}.csv"
            generate(csv, rows)
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.preprocess", "--measure", str(csv), "--shards", str(shards)],
                cwd=ROOT,
                check=True,
                capture_output=True,
                text=True,
            )
            result = json.loads(out.stdout.strip().splitlines()[-1])
            result["csv_mib"] = csv.stat().st_size / 2**20
            results.append(result)
            csv.unlink()
    return results


def collect(quick: bool) -> list:
    """For `make bench`: peak memory and throughput per size, and the memory growth against the row growth."""
    from benchmarks.harness import Figure

    results = run_sizes([20_000, 200_000] if quick else [200_000, 2_000_000])
    figures = []
    for r in results:
        figures.append(
            Figure(
                "preprocessing",
                f"peak RSS, {r['rows']:,} rows (streaming, 2 passes)",
                r["peak_rss_mib"],
                "MiB",
                "CSV size",
                r["csv_mib"],
            )
        )
        figures.append(
            Figure("preprocessing", f"throughput, {r['rows']:,} rows", r["rows_per_second"], "rows/s", better="higher")
        )
    figures.append(
        Figure(
            "preprocessing",
            "peak memory growth for 10x the rows",
            results[-1]["peak_rss_mib"] / results[0]["peak_rss_mib"],
            "x",
            "row growth",
            results[-1]["rows"] / results[0]["rows"],
        )
    )
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[200_000, 2_000_000])
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.shards)))
        return 0
    results = run_sizes(args.rows, args.shards)
    for result in results:
        print(
            f"{result['rows']:>10,} rows  {result['csv_mib']:8.1f} MiB CSV  "
            f"peak RSS {result['peak_rss_mib']:7.1f} MiB  "
            f"{result['rows_per_second']:>10,.0f} rows/s  ({result['seconds']:.1f}s)",
            flush=True,
        )
    if len(results) > 1:
        ratio = results[-1]["peak_rss_mib"] / results[0]["peak_rss_mib"]
        growth = results[-1]["rows"] / results[0]["rows"]
        print(f"peak memory ratio {ratio:.2f}x for {growth:.0f}x the rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
