"""Stopping rule and gradient averaging of the training loop (fake store, no AWS)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlcore.infra import layout
from mlcore.math import linear
from mlcore.steps import training
from mlcore.steps.schemas import AggregateTask, FailedShard, Hyperparameters, Shard, WorkerResult, WorkerTask

from .fakes import FakeStore

HP = Hyperparameters(tolerance=1e-4, max_epochs=10)


@pytest.mark.parametrize(
    ("round_", "grad_norm", "loss", "initial", "reason"),
    [
        (0, 1.0, math.nan, 1.0, "diverged"),
        (0, 0.0, math.inf, 1.0, "diverged"),  # divergence wins over a small gradient
        (9, 1.0, -math.inf, 1.0, "diverged"),  # ... and over the epoch limit
        (3, math.nan, 1.0, 1.0, "diverged"),
        (3, 1e-4, 5.0, 1.0, "converged"),  # gradient norm at tolerance x its initial value
        (3, 0.03, 5.0, 300.0, "converged"),  # relative: the same rule whatever the target's units
        (9, 1e-7, 5.0, 1.0, "converged"),  # convergence wins over the epoch limit
        (0, 0.0, 0.0, 0.0, "converged"),  # already at the optimum
        (9, 1.0, 5.0, 6.0, "max_epochs"),  # round 9 is the 10th round
        (8, 1.0, 5.0, 6.0, None),
        (3, 1.1e-4, 5.0, 1.0, None),
        (3, 0.04, 5.0, 300.0, None),
    ],
)
def test_should_stop(round_, grad_norm, loss, initial, reason):
    assert training.should_stop(HP, round_, grad_norm, loss, initial) == reason


def test_should_stop_uses_the_configured_tolerance():
    loose = Hyperparameters(tolerance=1e-2, max_epochs=10)
    assert training.should_stop(loose, 1, 5e-3, 1.0, 1.0) == "converged"
    assert training.should_stop(HP, 1, 5e-3, 1.0, 1.0) is None
    assert training.should_stop(Hyperparameters(max_epochs=1), 0, 1.0, 1.0, 1.0) == "max_epochs"


def test_average_gradients_counts_each_shard_once():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(23, 3))
    y = rng.normal(size=23)
    theta = rng.normal(size=4)
    store = FakeStore()
    results = []
    for index, (a, b) in enumerate([(0, 5), (5, 6), (6, 23)]):
        loss_sum, grad = linear.loss_grad_sums("linear_regression", theta, X[a:b], y[a:b])
        key = layout.gradient_key("run", 3, index)
        store.arrays[key] = grad
        results.append(WorkerResult(shard=index, round=3, rows=b - a, loss_sum=loss_sum, gradient_key=key))
    # a redelivered result (same shard twice) and an arbitrary order
    delivered = [results[2], results[0], results[2], results[1], results[0]]
    loss_sum, grad_sum, rows = training.average_gradients(store, delivered)
    full_loss, full_grad = linear.loss_grad_sums("linear_regression", theta, X, y)
    assert rows == 23
    assert loss_sum == pytest.approx(full_loss, rel=1e-12)
    assert grad_sum.dtype == np.float64
    np.testing.assert_allclose(grad_sum, full_grad, rtol=1e-12)


# -- divergence ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("loss", "grad_norm", "initial", "expected"),
    [
        (math.nan, 1.0, 5.0, True),
        (1.0, math.inf, 5.0, True),
        (math.inf, 1.0, None, True),
        (5.0e6 + 1.0, 1.0, 5.0, True),  # above 1e6 x the round-0 loss
        (5.0e6, 1.0, 5.0, False),  # exactly 1e6 x is not yet divergence
        (1.0e9, 1.0, None, False),  # round 0 itself: nothing to compare with
        (1.0e9, 1.0, 0.0, False),  # a perfect start has no yardstick
    ],
)
def test_the_divergence_rule(loss, grad_norm, initial, expected):
    assert training.diverged(loss, grad_norm, initial) is expected


def _shard_run(store: FakeStore, theta: np.ndarray, rows: int = 20) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(rows, 3)) * 100
    y = rng.normal(size=rows)
    store.arrays["shard-0"] = np.column_stack([X, y]).astype(np.float32)
    store.archives[layout.params_key("run", 0)] = {"theta": theta.reshape(4, 1)}
    return X, y


def _task(hp: Hyperparameters) -> WorkerTask:
    return WorkerTask(
        run_id="run",
        round=0,
        params_key=layout.params_key("run", 0),
        shard=Shard(index=0, key="shard-0", rows=20),
        hyperparameters=hp,
    )


def test_a_worker_at_non_finite_parameters_raises_training_diverged():
    store = FakeStore()
    _shard_run(store, np.array([np.inf, 0.0, 0.0, 0.0]))
    with pytest.raises(training.TrainingDiverged, match="shard 0 in round 0 is not finite"):
        training.compute_gradient(store, _task(Hyperparameters(solver="sgd")))
    assert store.arrays.keys() == {"shard-0"}  # no gradient written


def test_local_steps_that_diverge_raise_training_diverged_and_write_no_update():
    store = FakeStore()
    _shard_run(store, np.zeros(4))
    hp = Hyperparameters(worker_mode="local_steps", learning_rate=10.0, steps_per_invocation=400)
    with pytest.raises(training.TrainingDiverged, match="the local update of shard 0 in round 0 is not finite"):
        training.compute_gradient(store, _task(hp))
    assert not any("update" in k for k in store.arrays)


def test_a_shard_that_failed_by_divergence_fails_the_round_with_the_learning_rate():
    failed = FailedShard(failed=True, shard=1, round=7, rows=10, error="TrainingDiverged")
    ok = WorkerResult(shard=0, round=7, rows=10, loss_sum=1.0, gradient_key="g")
    hp = Hyperparameters(learning_rate=0.5, tolerated_failure_percentage=50)
    with pytest.raises(training.TrainingDiverged) as info:
        training.usable_results([ok, failed], 7, hp)
    assert str(info.value) == "diverged at round 7; lower learning_rate (was 0.5)"


def test_aggregation_fails_when_the_loss_explodes_past_a_million_times_round_0():
    store = FakeStore()
    theta = np.zeros((4, 1))
    store.archives[layout.params_key("run", 3)] = {"theta": theta}
    store.documents[layout.round_key("run", 0)] = {"round": 0, "loss": 2.0, "grad_norm": 1.0}
    store.arrays["g"] = np.zeros(4)
    hp = Hyperparameters(optimizer="sgd", learning_rate=2.0, max_epochs=100, solver="sgd")
    # a loss of 2e6 + 1 (one row, no L2) is above 1e6 x round 0's 2.0
    result = WorkerResult(shard=0, round=3, rows=1, loss_sum=2.0e6 + 1.0, gradient_key="g")
    task = AggregateTask(
        run_id="run", round=3, params_key=layout.params_key("run", 3), hyperparameters=hp, results=[result]
    )
    with pytest.raises(training.TrainingDiverged) as info:
        training.aggregate(store, task)
    assert str(info.value) == "diverged at round 3; lower learning_rate (was 2)"
    assert layout.params_key("run", 4) not in store.archives and layout.round_key("run", 3) not in store.documents
