"""Peak memory and throughput of registering a large CSV already in S3 (`make bench-ingest`).

Generates a synthetic CSV of the given size in a temporary directory, puts it in a bucket of a moto server run
by this process, then runs ``mlcore.steps.ingestion.register_object`` on it in a fresh subprocess that talks to
that server over HTTP (so the bucket does not sit in the measured process's memory), and prints the
subprocess's peak RSS (VmHWM), its peak RSS once its modules are imported, and MB/s, per run.

    python benchmarks/ingest.py [--mib 256] [--repeat 3]
"""

from __future__ import annotations

import argparse
import atexit
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BUCKET = "bench-ingest"
KEY = "landing/bench.csv"
ROOT = Path(__file__).resolve().parents[1]  # the measured subprocess runs `python -m benchmarks.ingest` from here
_FILES: dict[int, Path] = {}  # size in MiB -> the generated CSV, kept across the repeated runs of `make bench`


def generate(path: Path, mib: int, seed: int = 0, block: int = 10_000) -> int:
    """A CSV of about ``mib`` MiB: an identifier, an e-mail, numbers with missing values, categories, free text."""
    rng = np.random.default_rng(seed)
    cities = np.array(["north", "south", "east", "west", ""])
    words = np.array(["ok", "late", "paid", "refund", "new customer", "moved; see notes", "vip"])
    target = mib * 2**20  # stay under it: a 256 MiB file is at the upload limit
    rows, last = 0, 0
    with path.open("w") as f:
        f.write("id,email,age,bmi,income,city,note,smoker,y\n")
        while f.tell() + 2 * last < target:
            n, before = block, f.tell()
            age = rng.integers(18, 80, n)
            bmi = np.round(rng.normal(28, 5, n), 1).astype(str)
            bmi[rng.random(n) < 0.05] = ""
            income = np.exp(rng.normal(10.5, 0.6, n))
            city = cities[rng.integers(0, 5, n)]
            note = words[rng.integers(0, len(words), n)]
            smoker = np.where(rng.random(n) < 0.2, "yes", "no")
            y = 40 * age + 900 * np.log1p(income) + rng.normal(0, 500, n)
            f.writelines(
                f"r{rows + i},u{rows + i}@mail.example,{age[i]},{bmi[i]},{income[i]:.0f},{city[i]},"
                f'"{note[i]}",{smoker[i]},{y[i]:.2f}\n'
                for i in range(n)
            )
            rows += n
            last = f.tell() - before
    return rows


def measure(endpoint: str, name: str) -> dict:
    """Runs in the subprocess: register the object, then report the peak RSS."""
    from benchmarks.harness import peak_rss_mib
    from mlcore.infra.storage import S3Store
    from mlcore.steps import ingestion, tabular  # noqa: F401  (pandas too: counted in the baseline RSS)

    store = S3Store(BUCKET, _client(endpoint))
    baseline_mib = peak_rss_mib()
    started = time.perf_counter()
    meta = ingestion.register_object(store, name, KEY)
    seconds = time.perf_counter() - started
    peak_mib = peak_rss_mib()
    return {
        "rows": meta["rows"],
        "bytes": meta["bytes"],
        "seconds": seconds,
        "mb_per_second": meta["bytes"] / 1e6 / seconds,
        "peak_rss_mib": peak_mib,
        "baseline_rss_mib": baseline_mib,
    }


class Server:
    """A moto S3 server in this process, with the bucket and the CSV in it."""

    def __init__(self, csv: Path):
        import logging

        from moto.server import ThreadedMotoServer

        from mlcore.infra.storage import S3Store

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        client = _client(self.endpoint)
        client.create_bucket(Bucket=BUCKET)
        client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        with csv.open("rb") as f:
            S3Store(BUCKET, client).put_stream(KEY, iter(lambda: f.read(8 * 2**20), b""), content_type="text/csv")

    def stop(self) -> None:
        self.server.stop()


def _client(endpoint: str):
    """An S3 client of the local moto server (its credentials are placeholders moto accepts)."""
    import botocore.session

    return botocore.session.get_session().create_client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="moto", aws_secret_access_key="moto"
    )


def _csv(mib: int) -> Path:
    if mib not in _FILES:
        tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
        atexit.register(shutil.rmtree, tmp, ignore_errors=True)
        _FILES[mib] = tmp / f"bench-{mib}.csv"
        generate(_FILES[mib], mib)
    return _FILES[mib]


def run(mib: int, repeat: int) -> list[dict]:
    """``repeat`` registrations of the same object (each as a new data set, so each copies it), one subprocess each."""
    csv = _csv(mib)
    server = Server(csv)
    results = []
    try:
        for i in range(repeat):
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.ingest", "--measure", server.endpoint, "--name", f"bench-{i}"],
                cwd=ROOT,
                capture_output=True,
                text=True,
            )
            if out.returncode:
                raise RuntimeError(f"the measured run failed:\n{out.stderr}")
            result = json.loads(out.stdout.strip().splitlines()[-1])
            result["csv_mib"] = csv.stat().st_size / 2**20
            results.append(result)
    finally:
        server.stop()
    return results


def collect(quick: bool) -> list:
    """For `make bench`: one registration (bench.py repeats the call) of a 256 MiB CSV (quick: 8 MiB)."""
    from benchmarks.harness import Figure

    r = run(8 if quick else 256, 1)[0]
    size = f"{r['csv_mib']:.0f} MiB CSV"
    return [
        Figure(
            "ingestion",
            f"peak RSS, registering a {size} (streamed)",
            r["peak_rss_mib"],
            "MiB",
            "RSS once imported",
            r["baseline_rss_mib"],
        ),
        Figure("ingestion", f"throughput, registering a {size}", r["mb_per_second"], "MB/s", better="higher"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="size of the generated CSV")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--name", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.name)))
        return 0
    results = run(args.mib, args.repeat)
    for r in results:
        print(
            f"{r['csv_mib']:7.1f} MiB CSV, {r['rows']:>10,} rows  peak RSS {r['peak_rss_mib']:7.1f} MiB "
            f"(imported: {r['baseline_rss_mib']:.1f})  {r['mb_per_second']:6.1f} MB/s  ({r['seconds']:.1f}s)",
            flush=True,
        )
    peaks = [r["peak_rss_mib"] for r in results]
    speeds = [r["mb_per_second"] for r in results]
    print(
        f"peak RSS min/median/max {min(peaks):.1f} / {statistics.median(peaks):.1f} / {max(peaks):.1f} MiB; "
        f"MB/s {min(speeds):.1f} / {statistics.median(speeds):.1f} / {max(speeds):.1f} "
        f"(spread {(max(speeds) - min(speeds)) / statistics.median(speeds):.0%})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
