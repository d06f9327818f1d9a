"""A plain training request (a data set, a target, a model name) converges on every bundled data set and on the
scikit-learn data sets the benchmarks use: sync with the default solver (exact, Newton) stops converged or solved,
and the async defaults stay finite under the staleness concurrent workers cause, beating the trivial baseline."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import datasets

from mlcore.math import models, optimizers
from mlcore.steps import problem, tabular, training
from mlcore.steps.preparation import in_memory
from mlcore.steps.schemas import Hyperparameters, TrainingRequest
from tests.helpers import ROOT

from .fakes import FakeStore
from .helpers import train_in_memory

BUNDLED = {"housing": "price_k", "insurance": "charges"}
SKLEARN = {"diabetes": datasets.load_diabetes, "breast_cancer": datasets.load_breast_cancer, "wine": datasets.load_wine}
DATA_SETS = [*BUNDLED, *SKLEARN]
SHARDS = 8


def _csv(name: str) -> tuple[bytes, str]:
    if name in BUNDLED:
        return (ROOT / "data" / f"{name}.csv").read_bytes(), BUNDLED[name]
    frame = SKLEARN[name](as_frame=True).frame
    return frame.to_csv(index=False).encode(), "target"


def _prepared(name: str, mode: str = "sync"):
    """The plain request's hyperparameters (``problem.setup``), its training shards and test block."""
    data, target = _csv(name)
    found = tabular.scan(lambda: iter([data]))
    meta = {"rows": found.rows, "columns": found.columns}
    body = {"dataset": name, "target": target, "model_name": "m", "mode": mode}
    request, setup = problem.setup(TrainingRequest.model_validate(body), meta)
    frame = tabular.read_tables([data])
    hp = request.hyperparameters
    prepared = in_memory.build_matrices(
        tabular.to_columns(frame),
        tabular.column_kinds(frame),
        target,
        0.2,
        0,
        hp.model,
        0.0,
        problem.with_decisions(request.preprocessing, setup),
    )
    n_outputs = models.n_outputs(hp.model, len(prepared.preprocessor.classes or ()))
    return hp, np.array_split(prepared.train, SHARDS), prepared.test, n_outputs


def _beats_baseline(net: models.Net, theta: np.ndarray, test: np.ndarray) -> bool:
    X, y = test[:, :-1].astype(np.float64), test[:, -1].astype(np.float64)
    if net.is_classifier:
        return float(np.mean(net.predict(theta, X) == y)) > np.bincount(y.astype(int)).max() / len(y)
    residual = float(np.sum((y - net.predict(theta, X)) ** 2))
    return residual < float(np.sum((y - y.mean()) ** 2))  # R² above 0


@pytest.mark.parametrize("name", DATA_SETS)
def test_the_sync_defaults_converge(name):
    hp, shards, test, n_outputs = _prepared(name)
    assert set(hp.model_fields_set) == {"model"}  # nothing else was chosen for the user
    store = FakeStore()
    state, _ = train_in_memory(store, hp, shards, n_outputs=n_outputs)
    assert state.reason in ("solved", "converged"), (state.reason, state.round)
    theta, shapes, _ = training.read_params(store, state.params_key)
    assert _beats_baseline(models.Net(hp.model, shapes), theta, test)


def _stale_async(hp: Hyperparameters, shards: list[np.ndarray], n_outputs: int, epochs: int):
    """The async workers' updates with the most staleness the run applies as they are: at each step every shard's
    worker reads the same parameters, then each applies its update in turn (the last one max_staleness versions
    late when there are max_staleness + 1 workers). (diverged by the Aggregator's rule, the model, parameters)."""
    assert len(shards) == hp.max_staleness + 1
    net = models.Net(hp.model, models.make_layout(hp.model, shards[0].shape[1] - 1, n_outputs))
    theta = np.zeros(net.n_params)  # a linear model's initial parameters
    state = {k: np.zeros_like(theta) for k in ("velocity", "m", "v")}
    first, loss, t = None, 0.0, 0
    blocks = [(s[:, :-1].astype(np.float64), s[:, -1].astype(np.float64)) for s in shards]
    with np.errstate(all="ignore"):
        for _ in range(epochs * hp.steps_per_invocation):
            gradients = []
            for X, y in blocks:
                loss_sum, grad_sum = net.loss_grad_sums(theta, X, y)
                loss, grad = net.regularized_objective(loss_sum, grad_sum, len(y), theta, hp.l2)
                gradients.append(grad)
            first = loss if first is None else first
            if training.diverged(loss, float(np.linalg.norm(grad)), first):
                return True, net, theta
            for grad in gradients:
                t += 1
                theta, moved = optimizers.step(
                    hp.optimizer, theta, grad, state, learning_rate=hp.learning_rate, t=t, momentum=hp.momentum
                )
                state.update(moved)
    return False, net, theta


@pytest.mark.parametrize("name", DATA_SETS)
def test_the_async_defaults_do_not_diverge_under_staleness(name):
    hp, shards, test, n_outputs = _prepared(name, mode="async")
    assert (hp.optimizer, hp.learning_rate) == ("sgd", 0.05) == tuple(problem.ASYNC_DEFAULTS.values())
    shards = np.array_split(np.concatenate(shards), hp.max_staleness + 1)
    diverged, net, theta = _stale_async(hp, shards, n_outputs, epochs=40)
    assert not diverged and _beats_baseline(net, theta, test)


def test_the_sync_defaults_diverge_in_async_mode_under_the_same_staleness():
    """Why async has its own defaults: momentum at 0.1 (the sync default) diverges on housing with stale updates."""
    hp, shards, _, n_outputs = _prepared("housing", mode="async")
    old = hp.model_copy(update={"optimizer": "momentum", "learning_rate": 0.1})
    shards = np.array_split(np.concatenate(shards), hp.max_staleness + 1)
    assert _stale_async(old, shards, n_outputs, epochs=40)[0]
