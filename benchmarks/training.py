"""Training benchmarks: prints figures, asserts nothing. `make bench-training` (add --full for the big ones).

1. Final training objective vs scikit-learn's optimum for the same regularization, as a ratio, and the
   test metric beside scikit-learn's, on the bundled diabetes (regression), breast cancer (binary) and
   wine (multiclass) data sets and a synthetic regression set (100,000 x 28; --full: 1,000,000 x 28):
   sync (the aggregator's math: row-weighted shard gradients, one optimizer step per round) and async
   (the real compare-and-swap workers, 4 threads against moto S3; the model is the head's average).
2. GradientWorker compute (linear.loss_grad_sums) vs bare numpy X.T @ (X @ w - y) on one float32 shard.
3. Shard load through S3Store (moto) vs np.load of the same bytes: the transfer alone, the decode alone
   (our zero-copy .npy view vs np.load(BytesIO)), and both together, with tracemalloc's peak memory.
4. Per-round orchestration time of the local run (moto's Step Functions interpreter, real handlers).
5. Per-round S3 requests (by operation and kind of object) and state transitions of an 8-shard local run, the
   workers' results inline in the Map's result vs through S3 (the inline budget forced to 0); also on the
   `make bench` page (``collect``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import time

import numpy as np

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def bench_objective(full: bool) -> None:
    from benchmarks import quality

    epochs, passes = (500, 200) if full else (500, 30)
    rows = 1_000_000 if full else 100_000
    print(
        f"\n1. final training objective / scikit-learn's optimum (l2={quality.L2}; sync: {epochs} rounds, "
        f"{quality.SHARDS} shards; async: {passes} passes of {quality.SHARDS} concurrent worker calls x "
        f"{quality.STEPS_PER_CALL} compare-and-swap updates, moto S3)"
    )
    print("   async model = the head's running average of the parameters; 'last' = the same run's last parameters")
    print(
        f"   {'data set':26} {'optimum':>10} {'sync':>8} {'async':>8} {'last':>8} {'test metric: sklearn':>21} "
        f"{'sync':>7} {'async':>7} {'updates':>8} {'conflicts':>9} {'seconds':>7}"
    )
    for case in quality.cases(rows):
        optimum_theta, _ = quality.exact_theta(case)
        optimum = quality.objective(case, optimum_theta)
        sync = quality.distributed_gd(case, epochs)
        started = time.perf_counter()
        run = quality.async_sgd(case, quality.async_hyperparameters(case), passes)
        seconds = time.perf_counter() - started
        ratios = [quality.objective(case, theta) / optimum for theta in (sync, run.model, run.iterate)]
        metrics = [quality.test_metric(case, theta) for theta in (optimum_theta, sync, run.model)]
        print(
            f"   {case.name:26} {optimum:10.5g} {ratios[0]:8.5f} {ratios[1]:8.5f} {ratios[2]:8.5f} "
            f"{'R²' if case.model == 'linear_regression' else 'accuracy':>12} {metrics[0]:8.4f} {metrics[1]:7.4f} "
            f"{metrics[2]:7.4f} {run.version:8d} {run.conflicts:9d} {seconds:7.1f}"
        )


def _best(fn, repeat=5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_compute_and_load(full: bool) -> None:
    import boto3
    from moto import mock_aws

    from mlcore.infra.storage import S3Store, npy_view, s3_client
    from mlcore.math import linear

    rows = 1_000_000 if full else 100_000
    rng = np.random.default_rng(0)
    shard = rng.normal(size=(rows, 29)).astype(np.float32)
    X, y = shard[:, :-1], shard[:, -1]
    theta = rng.normal(size=29)
    w = theta[:-1].astype(np.float32)
    ours = _best(lambda: linear.loss_grad_sums("linear_regression", theta, X, y))
    bare = _best(lambda: X.T @ (X @ w - y))
    print(f"\n2. gradient of a {rows:,} x 28 float32 shard (best of 5)")
    print(f"   GradientWorker math {ours * 1e3:8.1f} ms   bare numpy X.T @ (X @ w - y) {bare * 1e3:8.1f} ms   "
          f"ratio {ours / bare:5.2f}")  # fmt: skip

    buf = io.BytesIO()
    np.save(buf, shard, allow_pickle=False)
    body = buf.getvalue()
    decode = _best(lambda: npy_view(body))
    bare_load = _best(lambda: np.load(io.BytesIO(body), allow_pickle=False))
    crc = _best(lambda: _crc32(body))
    decode_peak = _peak(lambda: npy_view(body))
    bare_peak = _peak(lambda: np.load(io.BytesIO(body), allow_pickle=False))
    with mock_aws():
        s3_client.cache_clear()
        boto3.client("s3").create_bucket(Bucket="bench")
        store = S3Store("bench")
        store.put_bytes("shard.npy", body)
        transfer = _best(lambda: store.get_bytes("shard.npy"))
        via_store = _best(lambda: store.get_array("shard.npy"))
        via_np_load = _best(lambda: np.load(io.BytesIO(store.get_bytes("shard.npy")), allow_pickle=False))
        store_peak = _peak(lambda: store.get_array("shard.npy"))
        np_load_peak = _peak(lambda: np.load(io.BytesIO(store.get_bytes("shard.npy")), allow_pickle=False))
        s3_client.cache_clear()
    mib, size = len(body) / 2**20, len(body)
    print(f"\n3. shard load ({rows:,} x 29 float32, {mib:.1f} MiB .npy; best of 5; peak: tracemalloc peak / file size)")
    print(f"   (a) transfer only: S3Store.get_bytes (moto)   {transfer * 1e3:8.2f} ms")
    print(f"   (b) decode the same bytes: npy_view (no copy)  {decode * 1e3:8.3f} ms, peak {decode_peak / size:4.2f}x"
          f"   np.load(BytesIO) {bare_load * 1e3:8.2f} ms, peak {bare_peak / size:4.2f}x")  # fmt: skip
    print(f"   (c) transfer + decode: S3Store.get_array       {via_store * 1e3:8.2f} ms, peak {store_peak / size:4.2f}x"
          f"   get_bytes + np.load {via_np_load * 1e3:8.2f} ms, peak {np_load_peak / size:4.2f}x")  # fmt: skip
    print(f"   get_array / (get_bytes + np.load) {via_store / via_np_load:4.2f};   get_array / np.load of the bytes "
          f"in memory {via_store / bare_load:4.2f} (transfer / np.load {transfer / bare_load:4.2f})")  # fmt: skip
    print(f"   of the transfer, botocore's CRC32 check of the response body (S3 returns the object's checksum) "
          f"{crc * 1e3:6.2f} ms = {crc / bare_load:4.2f}x np.load")  # fmt: skip
    print(
        "   The transfer is moto's in-process S3 (botocore building and parsing the response, moto copying the\n"
        "   object): no network. From Lambda, real S3 is network-bound and slower; it is not measured here. Our\n"
        "   part, the decode, is a header parse and a view over the received bytes: constant time and no second\n"
        "   copy of the shard, so a load costs the transfer alone."
    )


def _crc32(body: bytes) -> int:
    """The CRC32 botocore computes over a GET's body to check it (awscrt when installed, as in the venv)."""
    from botocore.httpchecksum import HAS_CRT, Crc32Checksum, CrtCrc32Checksum

    checksum = CrtCrc32Checksum() if HAS_CRT else Crc32Checksum()
    checksum.update(body)
    return int.from_bytes(checksum.digest(), "big")


def _peak(fn) -> int:
    """Peak bytes traced by tracemalloc while ``fn`` runs (numpy's buffers included), its result kept
    alive until the end as a caller would."""
    import tracemalloc

    tracemalloc.start()
    try:
        result = fn()
        peak = tracemalloc.get_traced_memory()[1]
        del result
    finally:
        tracemalloc.stop()
    return peak


def bench_orchestration(full: bool) -> None:
    from mlcore.infra import layout
    from mllocal.cloud import LocalCloud
    from mllocal.template import ROOT, local_stack

    csv = (ROOT / "data" / "housing.csv").read_bytes()
    rounds = 3
    print(f"\n4. local run: wall time per round ({rounds} rounds, moto's interpreter, real handlers)")
    for shards in (4, 16, 64) if full else (4, 16):
        with LocalCloud(local_stack(overrides={"LogLevel": "ERROR"})) as cloud:
            cloud.request("POST", "/datasets/housing", csv, headers={"Content-Type": "text/csv"})
            request = {
                "dataset": "housing",
                "target": "price_k",
                "model_name": "bench",
                "n_shards": shards,
                "hyperparameters": {"max_epochs": rounds, "tolerance": 0.0, "solver": "sgd"},
            }
            started = time.perf_counter()
            execution = cloud.run("TrainingStateMachine", request, name="run-bench")
            wall = time.perf_counter() - started
            keys = [layout.round_key("run-bench", r) for r in range(rounds)]
            aggregate = sum(json.loads(cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=k)["Body"].read())["seconds"]
                            for k in keys)  # fmt: skip
            per_round = f"{wall / rounds:6.3f} s per round (aggregation itself {aggregate / rounds * 1e3:.1f} ms)"
            print(f"   {shards:3d} shards: {execution['status']}, {wall:6.2f} s total, {per_round}")
    print("   (above 40 shards the gradients run in a Distributed Map)")


OPERATIONS = {"GetObject": "GET", "HeadObject": "HEAD", "PutObject": "PUT", "ListObjectsV2": "LIST"}


def _kind(key: str) -> str:
    """The kind of object a request touches: parameters, round record, shard, gradient or update, else other."""
    from mlcore.infra import layout

    parts = key.split("/")
    if len(parts) < 3:
        return "other"
    kinds = {
        (layout.RUNS, "params"): "parameters",
        (layout.RUNS, "rounds"): "round record",
        (layout.PROCESSED, "shards"): "shard",
        (layout.SCRATCH, "gradients"): "gradient",
        (layout.SCRATCH, "updates"): "update",
    }
    return kinds.get((parts[0] + "/", parts[2]), "other")


def _transitions(cloud) -> int:
    """States entered so far by every execution of every state machine of the local cloud (child executions
    included)."""
    entered = 0
    for machine in cloud.sfn.list_state_machines()["stateMachines"]:
        for execution in cloud.sfn.list_executions(stateMachineArn=machine["stateMachineArn"])["executions"]:
            pages = cloud.sfn.get_paginator("get_execution_history").paginate(executionArn=execution["executionArn"])
            entered += sum(e["type"].endswith("StateEntered") for page in pages for e in page["events"])
    return entered


def round_requests(shards: int = 8, inline: bool = True, rounds: tuple[int, int] = (2, 4)) -> dict[str, float]:
    """S3 requests (``"GET shard"``, ``"PUT gradient"``, ...; totals ``"GET+HEAD"`` and ``"PUT+LIST"`` as S3 bills
    them) and state transitions of one sync round over ``shards`` shards of the local run (real handlers, moto's
    interpreter), the results inline or (``inline=False``: the inline budget forced to 0) through S3: the counts of
    a ``rounds[1]``-round run less those of a ``rounds[0]``-round run, divided by the difference, so the requests of
    preprocessing, the init and the evaluation cancel out (requests of other objects than a round touches are left
    out)."""
    import threading
    from collections import Counter
    from unittest import mock

    from mlcore.infra.storage import s3_client
    from mlcore.steps import schemas
    from mllocal.cloud import LocalCloud
    from mllocal.template import ROOT, local_stack

    csv = (ROOT / "data" / "housing.csv").read_bytes()
    lock = threading.Lock()
    counts: Counter[str] = Counter()

    def count(model, params, **_) -> None:
        op = OPERATIONS.get(model.name, model.name)
        with lock:
            counts[f"{op} {_kind(params.get('Key') or params.get('Prefix') or '')}"] += 1

    runs = []
    budget = schemas.INLINE_RESULTS_BYTES if inline else 0
    with (
        LocalCloud(local_stack(overrides={"LogLevel": "ERROR"})) as cloud,
        mock.patch.object(schemas, "INLINE_RESULTS_BYTES", budget),
    ):
        cloud.request("POST", "/datasets/housing", csv, headers={"Content-Type": "text/csv"})
        s3_client().meta.events.register("before-parameter-build.s3", count)
        for n in rounds:
            counts.clear()
            request = {
                "dataset": "housing",
                "target": "price_k",
                "model_name": f"bench-{n}",  # each registers its version 1: the same requests
                "n_shards": shards,
                "hyperparameters": {"max_epochs": n, "tolerance": 0.0, "solver": "sgd"},
            }
            before = _transitions(cloud)
            execution = cloud.run("TrainingStateMachine", request, name=f"run-requests-{n}")
            assert execution["status"] == "SUCCEEDED", execution
            runs.append({**counts, "transitions": _transitions(cloud) - before})
        s3_client().meta.events.unregister("before-parameter-build.s3", count)
    short, long = runs
    per_round = {k: (long.get(k, 0) - short.get(k, 0)) / (rounds[1] - rounds[0]) for k in {*short, *long}}
    # "other": the data set, manifest, test block, registry: preprocessing and evaluation, not rounds (they differ
    # between the two runs by caching and by whether the model is promoted)
    per_round = {k: v for k, v in per_round.items() if v and not k.endswith(" other")}
    per_round["GET+HEAD"] = sum(v for k, v in per_round.items() if k.startswith(("GET ", "HEAD ")))
    per_round["PUT+LIST"] = sum(v for k, v in per_round.items() if k.startswith(("PUT ", "LIST ")))
    return per_round


def bench_round_requests(full: bool) -> None:
    from mlcore.math import cost

    shards = 8
    via_s3, inline = round_requests(shards, inline=False), round_requests(shards, inline=True)
    print(f"\n5. one sync round over {shards} shards: S3 requests and state transitions (local run, real handlers;")
    print("   a 4-round run less a 2-round run, / 2)")
    print(f"   {'':22} {'via S3 (budget 0)':>18} {'inline':>8}")
    totals = ("GET+HEAD", "PUT+LIST", "transitions")
    for key in sorted({*via_s3, *inline} - set(totals)) + list(totals):
        print(f"   {key:22} {via_s3.get(key, 0):18g} {inline.get(key, 0):8g}")
    estimate = cost.round_s3_requests(shards, cost.REFERENCE_RESULT_VALUES)
    print(f"   cost model (cost.round_s3_requests, inline): {estimate['get']} GET, {estimate['put']} PUT a round")


def collect(quick: bool) -> list:
    """The page's figures: an 8-shard round's S3 requests and state transitions, results inline against through
    S3 (the inline budget forced to 0), counted on the local run (deterministic: no spread)."""
    from .harness import Figure

    shards, rounds = 8, (1, 2) if quick else (2, 4)
    via_s3 = round_requests(shards, inline=False, rounds=rounds)
    inline = round_requests(shards, inline=True, rounds=rounds)
    note = (
        f"a round's requests: a {rounds[1]}-round local run (real handlers, moto) less a {rounds[0]}-round run, "
        f"/ {rounds[1] - rounds[0]} (the requests of a round's objects: parameters, round records, shards, "
        "gradients); GET+HEAD and PUT+LIST as S3 bills them; results via S3: the inline budget "
        "(schemas.INLINE_RESULTS_BYTES) forced to 0"
    )
    return [
        Figure("requests", f"{shards} shards, a round: {name}, results inline", inline.get(key, 0), unit,
               "results via S3", via_s3.get(key, 0), note=note)
        for name, key, unit in (
            ("S3 GET and HEAD", "GET+HEAD", "requests"),
            ("S3 PUT and LIST", "PUT+LIST", "requests"),
            ("gradients written", "PUT gradient", "requests"),
            ("state transitions", "transitions", "transitions"),
        )
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="1,000,000-row shard, more rounds, 64 shards")
    args = parser.parse_args(argv)
    bench_objective(args.full)
    bench_compute_and_load(args.full)
    bench_orchestration(args.full)
    bench_round_requests(args.full)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
