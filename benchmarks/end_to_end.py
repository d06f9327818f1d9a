"""CSV to registered model, locally, against a scikit-learn pipeline on the same file (issue #14's target).

Generates a 1,000,000 x 28 regression CSV (``quality.synthetic``, 1% of one column missing; about 200 MB), then:

- ours: the object is put in the local stack's bucket, registered through the API (``POST /datasets/{name}
  {"s3_key"}``: Ingest), and trained by the real training workflow in moto with its defaults (8 shards, solver
  ``auto``: exact), through Preprocess, the rounds, Evaluate and registration; wall time from the registration
  request to the finished execution, and each stage's time from the execution history;
- the reference: ``pandas.read_csv`` of the same file, median imputation, standardization, an 80/20 split and
  ``LinearRegression``, timed in the same process.

Test R² is compared with Evaluate's own scikit-learn ``LinearRegression`` on the same split (the model's
``metrics.reference``), so the two R² are over the same test rows.

    python -m benchmarks.end_to_end [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from .harness import Figure
from .quality import FEATURES, synthetic

_FILES: dict[int, Path] = {}  # rows -> the generated CSV, kept across the repeats of `make bench`


def generate(rows: int) -> Path:
    """The CSV of ``rows`` rows (generated once per process), 5 significant digits, 1% of x0 missing."""
    if rows not in _FILES:
        import pandas as pd

        X, y = synthetic(rows)
        frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(FEATURES)])
        frame.loc[np.random.default_rng(1).random(rows) < 0.01, "x0"] = np.nan
        frame["y"] = y
        path = Path(tempfile.mkdtemp(prefix="bench-e2e-")) / f"regression-{rows}.csv"
        frame.to_csv(path, index=False, float_format="%.5g")
        _FILES[rows] = path
    return _FILES[rows]


def sklearn_pipeline(path: Path) -> tuple[float, float]:
    """(seconds, test R²) of read CSV -> impute -> scale -> split -> LinearRegression -> score."""
    import pandas as pd
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    started = time.perf_counter()
    frame = pd.read_csv(path)
    X, y = frame.drop(columns="y").to_numpy(), frame["y"].to_numpy()
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
    model = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), LinearRegression())
    model.fit(X_train, y_train)
    r2 = float(model.score(X_test, y_test))
    return time.perf_counter() - started, r2


def _stage_seconds(history: list[dict]) -> dict[str, float]:
    """Seconds from each Lambda task's scheduling to its success, summed per state name (rounds summed)."""
    import datetime as dt

    names: dict[int, str] = {}
    started: dict[int, dt.datetime] = {}
    totals: dict[str, float] = {}
    for event in history:
        if event["type"] == "TaskStateEntered":
            names[event["id"]] = event["stateEnteredEventDetails"]["name"]
            started[event["id"]] = event["timestamp"]
        elif event["type"] == "TaskStateExited":
            name = event["stateExitedEventDetails"]["name"]
            entered = max((i for i, n in names.items() if n == name and i < event["id"]), default=None)
            if entered is not None:
                seconds = (event["timestamp"] - started.pop(entered)).total_seconds()
                names.pop(entered)
                totals[name] = totals.get(name, 0.0) + seconds
    return totals


def ours(path: Path, shards: int = 8) -> dict:
    """The local pipeline on the CSV: seconds (registration request to finished run), stages, test R², reference."""
    from mllocal.cloud import LocalCloud
    from mllocal.template import local_stack

    with LocalCloud(local_stack(overrides={"LogLevel": "ERROR"})) as cloud:
        cloud.s3.put_object(Bucket=cloud.stack.bucket, Key="landing/e2e.csv", Body=path.read_bytes())
        started = time.perf_counter()
        status = cloud.request("POST", "/datasets/e2e", {"s3_key": "landing/e2e.csv"})["statusCode"]
        registered = time.perf_counter()
        request = {"dataset": "e2e", "target": "y", "model_name": "e2e", "n_shards": shards}
        execution = cloud.run("TrainingStateMachine", request, name="run-e2e")
        seconds = time.perf_counter() - started
        history = cloud.sfn.get_execution_history(executionArn=execution["executionArn"], maxResults=1000)["events"]
        model = json.loads(cloud.request("GET", "/models/e2e/versions/1")["body"])
    if execution["status"] != "SUCCEEDED" or status not in (200, 201):
        raise RuntimeError(f"the local pipeline failed: ingest {status}, run {execution['status']}")
    metrics = model["metrics"]
    return {
        "seconds": seconds,
        "ingest": registered - started,
        "stages": _stage_seconds(history),
        "r2": metrics["test"]["r2"],
        "reference_r2": metrics["reference"]["test"]["r2"],
        "rounds": metrics["rounds"],
    }


def collect(quick: bool) -> list[Figure]:
    rows = 20_000 if quick else 1_000_000
    path = generate(rows)
    mib = path.stat().st_size / 2**20
    reference_seconds, reference_r2 = sklearn_pipeline(path)
    run = ours(path)
    name = f"{rows:,} x {FEATURES} regression CSV ({mib:.0f} MiB)"
    note = (
        "end to end: ours is the local stack (moto S3 and Step Functions in this process, the real handlers and "
        "state machine, 8 shards, default hyperparameters: the exact solver), from the registration request to "
        "the registered model; scikit-learn reads the same file with pandas, imputes medians, standardizes and "
        "fits LinearRegression on an 80/20 split. Both R² are over the same test rows (Evaluate's own reference fit)"
    )
    stages = run["stages"]
    figures = [
        Figure("end to end", f"{name}: CSV to registered model", run["seconds"], "s",
               "sklearn pipeline (read CSV, impute, scale, fit)", reference_seconds, note=note),
        Figure("end to end", f"{name}: our time / sklearn pipeline's", run["seconds"] / reference_seconds, "ratio",
               "issue #14's bound", 2.0),
        Figure("end to end", f"{name}: test R²", run["r2"], "R²", "sklearn LinearRegression, same split",
               run["reference_r2"], better="higher"),
        Figure("end to end", f"{name}: sklearn's R² on its own split", reference_r2, "R²", better="higher"),
        Figure("end to end", f"{name}: stage Ingest (registration request)", run["ingest"], "s"),
    ]  # fmt: skip
    for stage in ("Preprocess", "InitParameters", "Aggregate", "EvaluateAndRegister"):
        if stage in stages:
            figures.append(Figure("end to end", f"{name}: stage {stage}", stages[stage], "s"))
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    path = generate(args.rows)
    print(f"{path} ({path.stat().st_size / 2**20:.0f} MiB)")
    seconds, r2 = sklearn_pipeline(path)
    print(f"sklearn pipeline: {seconds:.2f} s, test R² {r2:.6f}")
    print(ours(path))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
