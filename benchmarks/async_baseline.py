"""Asynchronous SGD with compare-and-swap against the last-writer-wins baseline of LambdaML-style
asynchronous mode: 8 concurrent workers on moto S3, the real `mlcore.steps.asynchronous.submit`, for a linear
model and a (64, 64) MLP (whose head also carries its layout)."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
from sklearn.preprocessing import StandardScaler

from mlcore.infra import layout
from mlcore.infra.storage import S3Store
from mlcore.math import linear, models
from mlcore.steps import asynchronous
from mlcore.steps.schemas import Hyperparameters, InitTask
from mllocal.cloud import LocalCloud
from mllocal.template import local_stack

from .harness import Figure, run_concurrently

WORKERS = 8
L2 = 1e-3


def _objective(theta: np.ndarray, X: np.ndarray, y: np.ndarray) -> float:
    loss_sum, grad_sum = linear.loss_grad_sums("linear_regression", theta, X, y)
    return linear.regularized_objective(loss_sum, grad_sum, len(y), theta, L2)[0]


MLP_HIDDEN = [64, 64]


def race(compare_and_swap: bool, submissions: int, model: str = "linear_regression") -> dict[str, float]:
    """``WORKERS`` threads each submitting ``submissions`` minibatch gradients of diabetes to one head; ``model``
    ``linear_regression`` (also the final objective against the exact optimum) or ``mlp_regression``."""
    X, y = load_diabetes(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    shards = np.array_split(np.arange(len(y)), WORKERS)
    mlp = model == "mlp_regression"
    if mlp:  # the network's race counts updates only: a standardized target keeps plain SGD at 0.05 finite
        y = (y - y.mean()) / y.std()
    hidden = {"hidden_layers": MLP_HIDDEN} if mlp else {}
    hp = Hyperparameters(
        model=model, optimizer="sgd", learning_rate=0.05, l2=L2, max_staleness=WORKERS, **hidden
    )  # fmt: skip
    net = models.Net(model, models.make_layout(model, X.shape[1], 1, MLP_HIDDEN if mlp else None))
    with LocalCloud(local_stack(overrides={"LogLevel": "ERROR"})) as cloud:
        store = S3Store(cloud.stack.bucket)
        asynchronous.init_async_run(
            store, InitTask(action="init", run_id="race", n_features=X.shape[1], hyperparameters=hp, mode="async")
        )
        key = layout.async_head_key("race")

        def worker(w: int) -> None:
            rng = np.random.default_rng(w)
            rows = shards[w]
            for _ in range(submissions):
                batch = rng.choice(rows, size=min(16, len(rows)), replace=False)

                def gradient(theta, batch=batch):
                    loss_sum, grad_sum = net.loss_grad_sums(theta.ravel(), X[batch], y[batch])
                    return net.regularized_objective(loss_sum, grad_sum, len(batch), theta.ravel(), L2)

                asynchronous.submit(store, key, gradient, hp, compare_and_swap=compare_and_swap)

        run_concurrently(worker, [(w,) for w in range(WORKERS)])
        head = asynchronous.read_head(store, key)
    accepted = WORKERS * submissions
    out: dict[str, float] = {"accepted": accepted, "applied": int(head.version), "lost": accepted - int(head.version)}
    if not mlp:
        exact = Ridge(alpha=L2 * len(y)).fit(X, y)
        optimum = _objective(np.append(exact.coef_, exact.intercept_), X, y)
        out["ratio"] = _objective(head.model.ravel(), X, y) / optimum
    return out


def collect(quick: bool) -> list[Figure]:
    submissions = 10 if quick else 50
    cas, lww = race(True, submissions), race(False, submissions)
    mlp_cas, mlp_lww = race(True, submissions, "mlp_regression"), race(False, submissions, "mlp_regression")
    total = WORKERS * submissions
    return [
        Figure(
            "async",
            f"updates lost of {total} accepted, {WORKERS} workers (compare-and-swap)",
            cas["lost"],
            "updates",
            "last writer wins",
            lww["lost"],
        ),
        Figure(
            "async",
            "final objective / exact optimum, diabetes (compare-and-swap)",
            cas["ratio"],
            "ratio",
            "last writer wins",
            lww["ratio"],
        ),
        Figure(
            "async",
            f"updates lost of {total} accepted, {WORKERS} workers, MLP (64, 64) (compare-and-swap)",
            mlp_cas["lost"],
            "updates",
            "last writer wins",
            mlp_lww["lost"],
        ),
    ]
