"""`make demo`: the whole pipeline on the bundled data set, locally, with no AWS account.

CSV -> Ingest (API event) -> training workflow (the real statemachines/training.asl.json
executed by moto's Step Functions interpreter, every Lambda routed to its real handler)
-> registered model -> Predict (API Gateway event), compared with scikit-learn.
`--tune` (`make demo-tune`): a small tuning job on the same data set instead, through the local API and the SDK.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np

from .cloud import LocalCloud
from .template import ROOT, local_stack

DEFAULT_DATA = ROOT / "data" / "housing.csv"


def sklearn_reference(
    csv: bytes, target: str, test_fraction: float, seed: int, spec: dict | None = None
) -> dict[str, float]:
    """scikit-learn's LinearRegression on exactly the split and features the pipeline used."""
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import mean_squared_error, r2_score

    from mlcore.math.preprocessing import PreprocessingSpec
    from mlcore.steps.preparation.in_memory import build_matrices
    from mlcore.steps.tabular import column_kinds, read_csv, to_columns

    frame = read_csv(csv)
    _, train, test, _, _ = build_matrices(
        to_columns(frame),
        column_kinds(frame),
        target,
        test_fraction,
        seed,
        spec=PreprocessingSpec.model_validate(spec) if spec else None,
    )
    model = LinearRegression().fit(train[:, :-1].astype(np.float64), train[:, -1])
    pred = model.predict(test[:, :-1].astype(np.float64))
    return {"r2": float(r2_score(test[:, -1], pred)), "rmse": float(np.sqrt(mean_squared_error(test[:, -1], pred)))}


def run(
    data: Path,
    dataset: str,
    target: str,
    n_shards: int,
    out=print,
    log_level: str = "WARNING",
    spec: dict | None = None,
) -> dict:
    csv = data.read_bytes()
    with LocalCloud(local_stack(overrides={"LogLevel": log_level})) as cloud:
        started = time.perf_counter()
        resp = cloud.request("POST", f"/datasets/{dataset}", csv, headers={"Content-Type": "text/csv"})
        if resp["statusCode"] >= 300:
            raise SystemExit(f"ingest failed: {resp['body']}")
        ds = json.loads(resp["body"])
        out(f"ingested   {dataset} version {ds['version']}: {ds['rows']} rows, {len(ds['columns'])} columns")

        request = {
            "dataset": dataset,
            "version": ds["version"],
            "target": target,
            "model_name": dataset,
            "n_shards": n_shards,
        }
        if spec is not None:
            request["preprocessing"] = spec
            dropped = [name for name, rules in spec.get("columns", {}).items() if rules.get("drop")]
            out(f"spec       {len(spec.get('columns', {}))} column rules; dropped: {', '.join(dropped) or 'none'}")
        resp = cloud.request("POST", "/training-runs", request)
        if resp["statusCode"] != 202:
            raise SystemExit(f"could not start training: {resp['body']}")
        run_id = json.loads(resp["body"])["run_id"]
        out(f"started    POST /training-runs -> {run_id}")
        while True:
            run_state = json.loads(cloud.request("GET", f"/training-runs/{run_id}")["body"])
            if run_state["status"] != "RUNNING":
                break
            time.sleep(1.0)
        if run_state["status"] != "SUCCEEDED":
            raise SystemExit(f"training {run_state['status']}: {run_state.get('error')}")
        model = run_state["model"]
        train_seconds = (
            datetime.fromisoformat(run_state["stopped_at"]) - datetime.fromisoformat(run_state["started_at"])
        ).total_seconds()
        hp = json.loads(cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=model["artifact_key"])["Body"].read())
        reference = sklearn_reference(
            csv, target, hp["hyperparameters"]["test_fraction"], hp["hyperparameters"]["seed"], spec
        )

        out(
            f"trained    {model['rounds']} round{'s' if model['rounds'] != 1 else ''} over {n_shards} shards "
            f"({hp['metrics']['stop_reason']}), {train_seconds:.1f}s in the local Step Functions interpreter"
        )
        out(f"registered model {model['model_name']} version {model['version']} ({model['artifact_key']})")
        out("")
        out(f"{'test metric':<12}{'this model':>14}{'sklearn LinearRegression':>28}{'difference':>14}")
        for name in ("r2", "rmse"):
            ours, ref = model["metrics"][name], reference[name]
            out(f"{name.upper():<12}{ours:>14.4f}{ref:>28.4f}{ours - ref:>14.4f}")
        out("")

        instance: dict[str, float | str | None] = {c["name"]: None for c in hp["preprocessor"]["columns"]}
        row = csv.decode().splitlines()[1].split(",")
        header = csv.decode().splitlines()[0].split(",")
        for name, value in zip(header, row, strict=True):
            if name in instance and value != "":
                instance[name] = (
                    float(value)
                    if name in {c["name"] for c in hp["preprocessor"]["columns"] if c["kind"] == "numeric"}
                    else value
                )
        resp = cloud.request("POST", f"/models/{dataset}/predict", {"instances": [instance]})
        out(f"POST /models/{dataset}/predict {json.dumps({'instances': [instance]})}")
        out(f"  -> {resp['statusCode']} {resp['body']}")
        out(f"  (actual {target} in the CSV: {row[header.index(target)]})")
        invoked = ", ".join(f"{name.removesuffix('Function')} {n}" for name, n in cloud.invocations.items() if n)
        out(f"\ndone in {time.perf_counter() - started:.1f}s; Lambda invocations: {invoked}")
        return {
            "model": model,
            "reference": reference,
            "prediction": json.loads(resp["body"]),
            "invocations": dict(cloud.invocations),
        }


def tune(data: Path, dataset: str, target: str, trials: int = 6, parallel: int = 3, out=print) -> dict:
    """`make demo-tune`: the local API on a free port, and the SDK over HTTP as a user would drive it: upload the
    data set, start a small tuning job (``trials`` trials, ``parallel`` at a time, weak ones stopped early), watch
    its trials live, and print the leaderboard's best and the model it registered. Returns the finished job."""
    from mlclient import Client
    from mlclient.sdk import tuning_outcome

    from .server import LocalApi

    started_at = time.perf_counter()
    with LocalApi(port=0, access_log=False) as api, Client(api.url, api.api_key) as client:
        uploaded = client.upload(data, dataset, progress=False)
        out(f"uploaded   {dataset} version {uploaded['version']}: {uploaded['rows']} rows")
        started = client.tune(
            dataset,
            target,
            dataset,
            max_trials=trials,
            max_parallel_trials=parallel,
            min_epochs=3,
            max_epochs=27,
            seed=0,
        )
        out(
            f"started    tuning job {started['job_id']}: task {started['task']}, {trials} trials "
            f"({parallel} at a time), rungs {started['rungs']} epochs, "
            f"estimated cost ${started['estimated_cost_usd']:.4f}"
        )
        job = client.wait_tuning(started["job_id"], poll=1.0)  # the live trial table stays on screen at the end
        out(tuning_outcome(job))
        out(f"done in {time.perf_counter() - started_at:.1f}s")
        return job


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tune", action="store_true", help="a small tuning job instead, driven by the SDK")
    parser.add_argument("--trials", type=int, default=6, help="--tune: trials to sample")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--dataset", default="housing")
    parser.add_argument("--target", default="price_k")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--spec", type=Path, help="preprocessing spec (JSON), e.g. data/insurance_spec.json")
    args = parser.parse_args(argv)
    spec = json.loads(args.spec.read_text()) if args.spec else None
    dataset = args.dataset if args.data == DEFAULT_DATA or args.dataset != "housing" else args.data.stem
    if args.tune:
        from mlclient import SmlError

        try:
            tune(args.data, dataset, args.target, args.trials)
        except SmlError as err:
            print(f"tuning failed: {err}", file=sys.stderr)
            return 1
        return 0
    result = run(args.data, dataset, args.target, args.shards, spec=spec)
    gap = abs(result["model"]["metrics"]["r2"] - result["reference"]["r2"])
    if gap > 0.01:
        print(f"test R² differs from scikit-learn's by {gap:.4f} (> 0.01)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
