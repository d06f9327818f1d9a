"""Training benchmarks: prints figures, asserts nothing. `make bench-training` (add --full for the big ones).

1. Final training objective vs scikit-learn's optimum for the same regularization, as a ratio, on the
   bundled diabetes (regression), breast cancer (binary) and wine (multiclass) data sets: sync (the
   aggregator's math: row-weighted shard gradients, one optimizer step per round) and async (the real
   compare-and-swap workers, 4 threads against moto S3).
2. GradientWorker compute (models.loss_grad_sums) vs bare numpy X.T @ (X @ w - y) on one float32 shard.
3. Shard load through S3Store (moto) vs np.load of the same bytes.
4. Per-round orchestration time of the local run (moto's Step Functions interpreter, real handlers).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import threading
import time

import numpy as np

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def _objective(model: str, theta: np.ndarray, X: np.ndarray, y: np.ndarray, l2: float, k: int) -> float:
    from mlcore import models

    loss_sum, grad_sum = models.loss_grad_sums(model, theta.ravel(), X, y)
    return models.regularized_objective(loss_sum, grad_sum, len(y), theta.ravel(), l2, k)[0]


def _datasets():
    from sklearn import datasets
    from sklearn.preprocessing import StandardScaler

    for name, loader, model in (
        ("diabetes", datasets.load_diabetes, "linear_regression"),
        ("breast_cancer", datasets.load_breast_cancer, "logistic_regression"),
        ("wine", datasets.load_wine, "softmax_regression"),
    ):
        X, y = loader(return_X_y=True)
        X = StandardScaler().fit_transform(X)
        if model == "linear_regression":
            y = (y - y.mean()) / y.std()
        yield name, model, X, y.astype(float)


def _reference(model: str, X: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression, Ridge

    n = len(y)
    if model == "linear_regression":
        ref = Ridge(alpha=l2 * n).fit(X, y)
        return np.vstack([ref.coef_[:, None], [[ref.intercept_]]])
    ref = LogisticRegression(C=1.0 / (l2 * n), max_iter=10_000, tol=1e-10).fit(X, y)
    return np.vstack([ref.coef_.T, ref.intercept_[None, :]])


def _sync(model, X, y, l2, k, rounds, shards=4, lr=0.5):
    from mlcore import models, optimizers

    theta = np.zeros((X.shape[1] + 1, k))
    state = optimizers.init_state("momentum", theta.size)
    parts = np.array_split(np.arange(len(y)), shards)
    for t in range(rounds):
        sums = [models.loss_grad_sums(model, theta.ravel(), X[p], y[p]) for p in parts]
        grad_sum = sum(g for _, g in sums)
        _, grad = models.regularized_objective(0.0, grad_sum, len(y), theta.ravel(), l2, k)
        flat, state = optimizers.step("momentum", theta.ravel(), grad, state, learning_rate=lr, t=t + 1, momentum=0.9)
        theta = flat.reshape(theta.shape)
    return theta


def _async(model, X, y, l2, k, steps, workers=4):
    import boto3
    from moto import mock_aws

    from mlcore import asynchronous
    from mlcore.schemas import AsyncWorkerTask, Hyperparameters, InitTask, Shard
    from mlcore.storage import S3Store, s3_client
    from mllocal.s3atomic import atomic_conditional_writes

    hp = Hyperparameters(
        model=model, optimizer="sgd", learning_rate=0.5, l2=l2, batch_size=64, steps_per_invocation=steps,
        max_staleness=4, lr_schedule="inverse_time", lr_decay_rate=1.0, lr_decay_steps=steps,
    )  # fmt: skip
    with mock_aws(), atomic_conditional_writes():
        s3_client.cache_clear()
        boto3.client("s3").create_bucket(Bucket="bench")
        store = S3Store("bench")
        init = InitTask(action="init", run_id="run-b", n_features=X.shape[1], n_outputs=k, hyperparameters=hp)
        asynchronous.init_async_run(store, init)
        parts = np.array_split(np.arange(len(y)), workers)
        shards = []
        for i, p in enumerate(parts):
            store.put_array(f"shards/{i}.npy", np.hstack([X[p], y[p, None]]).astype(np.float32))
            shards.append(Shard(index=i, key=f"shards/{i}.npy", rows=len(p)))
        conflicts = []

        def work(shard):
            task = AsyncWorkerTask(action="async_steps", run_id="run-b", round=0, shard=shard, hyperparameters=hp)
            conflicts.append(asynchronous.run_async_steps(store, task).conflicts)

        threads = [threading.Thread(target=work, args=(s,)) for s in shards]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        head = asynchronous.read_head(store, asynchronous.head_key("run-b"))
        s3_client.cache_clear()
    return head.theta, head.version, sum(conflicts)


def bench_objective(full: bool) -> None:
    l2 = 1e-2
    rounds, steps = (2000, 2000) if full else (300, 300)
    print(f"\n1. final objective / scikit-learn optimum (l2={l2}; sync {rounds} rounds, async 4x{steps} updates)")
    print(f"{'data set':15} {'model':20} {'optimum':>10} {'sync':>10} {'async':>10} {'updates':>8} {'conflicts':>9}")
    for name, model, X, y in _datasets():
        k = len(np.unique(y)) if model == "softmax_regression" else 1
        optimum = _objective(model, _reference(model, X, y, l2), X, y, l2, k)
        sync = _objective(model, _sync(model, X, y, l2, k, rounds), X, y, l2, k)
        theta, version, conflicts = _async(model, X, y, l2, k, steps)
        asyn = _objective(model, theta, X, y, l2, k)
        print(
            f"{name:15} {model:20} {optimum:10.5f} {sync / optimum:10.5f} {asyn / optimum:10.5f} "
            f"{version:8d} {conflicts:9d}"
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

    from mlcore import models
    from mlcore.storage import S3Store, s3_client

    rows = 1_000_000 if full else 100_000
    rng = np.random.default_rng(0)
    shard = rng.normal(size=(rows, 29)).astype(np.float32)
    X, y = shard[:, :-1], shard[:, -1]
    theta = rng.normal(size=29)
    w = theta[:-1].astype(np.float32)
    ours = _best(lambda: models.loss_grad_sums("linear_regression", theta, X, y))
    bare = _best(lambda: X.T @ (X @ w - y))
    print(f"\n2. gradient of a {rows:,} x 28 float32 shard (best of 5)")
    print(f"   GradientWorker math {ours * 1e3:8.1f} ms   bare numpy X.T @ (X @ w - y) {bare * 1e3:8.1f} ms   "
          f"ratio {ours / bare:5.2f}")  # fmt: skip

    buf = io.BytesIO()
    np.save(buf, shard, allow_pickle=False)
    body = buf.getvalue()
    with mock_aws():
        s3_client.cache_clear()
        boto3.client("s3").create_bucket(Bucket="bench")
        store = S3Store("bench")
        store.put_bytes("shard.npy", body)
        via_store = _best(lambda: store.get_array("shard.npy"))
        s3_client.cache_clear()
    bare_load = _best(lambda: np.load(io.BytesIO(body), allow_pickle=False))
    print(f"\n3. shard load ({len(body) / 2**20:.0f} MiB, best of 5)")
    print(
        f"   S3Store.get_array (moto) {via_store * 1e3:8.1f} ms   np.load of the same bytes {bare_load * 1e3:8.1f} ms"
    )


def bench_orchestration(full: bool) -> None:
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
                "hyperparameters": {"max_epochs": rounds, "tolerance": 0.0},
            }
            started = time.perf_counter()
            execution = cloud.run("TrainingStateMachine", request, name="run-bench")
            wall = time.perf_counter() - started
            keys = [f"runs/run-bench/rounds/round-{r:05d}.json" for r in range(rounds)]
            aggregate = sum(json.loads(cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=k)["Body"].read())["seconds"]
                            for k in keys)  # fmt: skip
            per_round = f"{wall / rounds:6.3f} s per round (aggregation itself {aggregate / rounds * 1e3:.1f} ms)"
            print(f"   {shards:3d} shards: {execution['status']}, {wall:6.2f} s total, {per_round}")
    print("   (above 40 shards the gradients run in a Distributed Map)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="1,000,000-row shard, more rounds, 64 shards")
    args = parser.parse_args(argv)
    bench_objective(args.full)
    bench_compute_and_load(args.full)
    bench_orchestration(args.full)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
