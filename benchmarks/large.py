"""Peak memory per function and wall time per stage of the distributed Preprocess (`make bench-large`).

Generates a CSV data set of ``--parts`` files (``--gib`` in all), then runs the steps the training workflow runs for a
data set above ``distributed.DISTRIBUTED_THRESHOLD_BYTES`` (mlcore.steps.preparation.distributed): the plan, one
statistics task per piece, the merge and fit, one write task per piece, the finish. Every task runs in a fresh
subprocess against a file-system stand-in for S3, as its own Lambda would, and reports its own peak RSS (VmHWM,
``harness.peak_rss_mib``) and seconds. Pieces run ``--parallel`` at a time (the Map's concurrency on AWS is up to
40): a stage's wall time is what the Map would take with one function per piece.

    python -m benchmarks.large [--gib 0.5] [--parts 4] [--parallel 2] [--piece-mib 256]
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from benchmarks.preprocess import SPEC, FileStore, generate

ROOT = Path(__file__).resolve().parents[1]
BYTES_PER_ROW = 37  # about, for preprocess.generate's rows
KINDS = {"id": "categorical", "age": "numeric", "bmi": "numeric", "income": "numeric"}
KINDS |= {"city": "categorical", "smoker": "categorical", "y": "numeric"}
RUN = "run-large"


class PiecesStore(FileStore):
    """FileStore plus what the distributed steps read and write."""

    def get_json(self, key: str):
        return json.loads(self._path(key).read_bytes())

    def get_array(self, key: str) -> np.ndarray:
        return np.load(self._path(key), allow_pickle=False)

    def put_array(self, key: str, array: np.ndarray, **_) -> None:
        np.save(self._path(key), array)

    def put_arrays(self, key: str, arrays: dict[str, np.ndarray], **_) -> None:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        self.put_bytes(key, buf.getvalue())

    def get_arrays(self, key: str) -> dict[str, np.ndarray]:
        with np.load(self._path(key), allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}

    def get_range(self, key: str, start: int, end: int) -> bytes:
        with self._path(key).open("rb") as f:
            f.seek(start)
            return f.read(max(0, end - start))

    def list_keys(self, prefix: str) -> list[str]:
        return sorted(str(p.relative_to(self.root)) for p in (self.root / prefix).rglob("*") if p.is_file())


def make_data_set(root: Path, gib: float, parts: int) -> dict:
    """The parts of a data set version and its metadata (as Ingest would write it)."""
    rows = int(gib * 2**30 / BYTES_PER_ROW / parts)
    entries = []
    for i in range(parts):
        key = f"raw/bench/v1/parts/part-{i:05d}.csv"
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        generate(path, rows, seed=i)
        entries.append({"key": key, "source": f"landing/bench/{i}.csv", "bytes": path.stat().st_size, "rows": rows})
    return {
        "dataset": "bench",
        "version": "v1",
        "key": "raw/bench/v1/parts/",
        "format": "csv",
        "delimiter": ",",
        "rows": rows * parts,
        "sha256": None,
        "bytes": sum(e["bytes"] for e in entries),
        "columns": [{"name": n, "kind": k} for n, k in KINDS.items()],
        "parts": entries,
    }


def task(root: Path, action: str, piece: int | None) -> dict:
    """Runs in the subprocess: one step, then its own peak RSS."""
    from benchmarks.harness import peak_rss_mib
    from mlcore.steps.preparation import distributed
    from mlcore.steps.schemas import PreparationTask

    started = time.perf_counter()
    step = PreparationTask.model_validate({"action": action, "run_id": RUN, "piece": piece})
    distributed.step(PiecesStore(root), step)
    return {"action": action, "piece": piece, "seconds": time.perf_counter() - started, "peak_rss_mib": peak_rss_mib()}


def _subprocess(root: Path, action: str, piece: int | None = None) -> dict:
    argv = [sys.executable, "-m", "benchmarks.large", "--task", action, "--root", str(root)]
    if piece is not None:
        argv += ["--piece", str(piece)]
    out = subprocess.run(argv, cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(gib: float, parts: int, parallel: int, piece_mib: float | None = None) -> dict:
    from mlcore.steps.preparation import distributed
    from mlcore.steps.schemas import TrainingRequest

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        meta = make_data_set(root, gib, parts)
        generated = time.perf_counter() - started
        request = TrainingRequest.model_validate(
            {
                "dataset": "bench",
                "target": "y",
                "model_name": "bench",
                "n_shards": 8,
                "validation_fraction": 0.1,
                "preprocessing": SPEC,
            }
        )
        stages: list[dict] = []
        if piece_mib:
            distributed.PIECE_BYTES = int(piece_mib * 2**20)
        started = time.perf_counter()
        pieces = distributed.plan(PiecesStore(root), request, RUN, meta)["pieces"]
        stages.append({"stage": "plan", "wall": time.perf_counter() - started, "tasks": []})
        for action in ("stats", "merge", "write", "finish"):
            started = time.perf_counter()
            if action in ("stats", "write"):
                with ThreadPoolExecutor(parallel) as pool:
                    tasks = list(pool.map(lambda p, a=action: _subprocess(root, a, p), pieces))
            else:
                tasks = [_subprocess(root, action)]
            stages.append({"stage": action, "wall": time.perf_counter() - started, "tasks": tasks})
        manifest = json.loads((root / f"processed/{RUN}/manifest.json").read_bytes())
    return {
        "gib": meta["bytes"] / 2**30,
        "parts": parts,
        "rows": meta["rows"],
        "pieces": len(pieces),
        "generated_seconds": generated,
        "shards": len(manifest["shards"]),
        "stages": stages,
    }


def report(result: dict, parallel: int) -> str:
    """The run's figures, one line per stage."""
    lines = [
        f"{result['gib']:.2f} GiB in {result['parts']} parts, {result['rows']:,} rows, {result['pieces']} pieces, "
        f"{result['shards']} shards (generated in {result['generated_seconds']:.0f}s; pieces {parallel} at a time)"
    ]
    for stage in result["stages"]:
        tasks = stage["tasks"]
        if not tasks:
            lines.append(f"  {stage['stage']:<7} wall {stage['wall']:7.1f}s")
            continue
        slowest = max(t["seconds"] for t in tasks)
        peak = max(t["peak_rss_mib"] for t in tasks)
        lines.append(
            f"  {stage['stage']:<7} wall {stage['wall']:7.1f}s  slowest task {slowest:7.1f}s  "
            f"peak RSS per function {peak:7.1f} MiB  ({len(tasks)} task{'s' if len(tasks) > 1 else ''})"
        )
    return "\n".join(lines)


def page(text: str, argv: list[str]) -> str:
    """docs/large.md: the figures of one run, with the command and the date."""
    import datetime as dt
    import os

    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = " ".join(["python -m benchmarks.large", *argv])
    return (
        "# Distributed Preprocess at scale\n\n"
        f"Written by `{command}` on {when} ({os.cpu_count()} cores). Each task ran in its own subprocess, as its own "
        "Lambda would, and reports its own peak RSS (VmHWM); a stage's wall time is the Map's with the stated "
        "number of pieces at a time (on AWS up to `PreprocessMapMaxConcurrency`, 40, so about its slowest task).\n\n"
        f"```\n{text}\n```\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=0.5, help="size of the data set (default 0.5)")
    parser.add_argument("--parts", type=int, default=4)
    parser.add_argument("--parallel", type=int, default=2, help="pieces run at once (default 2)")
    parser.add_argument("--piece-mib", type=float, help="bytes of a piece (default: distributed.PIECE_BYTES)")
    parser.add_argument("--out", type=Path, help="also write the figures as a page (e.g. docs/large.md)")
    parser.add_argument("--task", help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--piece", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.task:
        print(json.dumps(task(args.root, args.task, args.piece)))
        return 0
    text = report(run(args.gib, args.parts, args.parallel, args.piece_mib), args.parallel)
    print(text)
    if args.out:
        args.out.write_text(page(text, list(argv if argv is not None else sys.argv[1:])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
