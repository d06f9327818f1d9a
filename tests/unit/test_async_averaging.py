"""Iterate averaging in async mode: the running average's math, the head keeping it, the snapshot that
Evaluate registers, and convergence to scikit-learn's optimum (single-threaded, deterministic)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
from sklearn.preprocessing import StandardScaler

from mlcore.infra import layout
from mlcore.math import linear, optimizers
from mlcore.steps import asynchronous, training
from mlcore.steps.schemas import (
    AsyncProgressTask,
    AsyncWorkerTask,
    Hyperparameters,
    InitTask,
    Shard,
    TrainingRequest,
)
from tests.unit.fakes import FakeStore

ITERATES = np.random.default_rng(7).normal(size=(12, 3))  # theta after updates 1..12


def fold(burn_in: int, power: float, upto: int = len(ITERATES)) -> np.ndarray:
    average = None
    for update, theta in enumerate(ITERATES[:upto], start=1):
        average = optimizers.iterate_average(average, theta, update, burn_in=burn_in, power=power)
    return average


@pytest.mark.parametrize("burn_in", [0, 1, 5, 11])
def test_power_zero_is_the_mean_of_the_iterates_after_the_burn_in(burn_in):
    np.testing.assert_allclose(fold(burn_in, 0.0), ITERATES[burn_in:].mean(axis=0), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize(("burn_in", "power"), [(0, 1.0), (0, 3.0), (4, 3.0), (2, 0.5)])
def test_positive_power_weighs_the_nth_iterate_by_gamma_ratio(burn_in, power):
    # the n-th iterate after the burn-in has weight proportional to Gamma(n + power) / Gamma(n)
    tail = ITERATES[burn_in:]
    weights = np.array([math.gamma(n + power) / math.gamma(n) for n in range(1, len(tail) + 1)])
    expected = weights @ tail / weights.sum()
    np.testing.assert_allclose(fold(burn_in, power), expected, rtol=1e-12)
    if power == 3.0:  # integer power: n (n + 1) (n + 2)
        n = np.arange(1, len(tail) + 1)
        np.testing.assert_allclose(weights, n * (n + 1) * (n + 2), rtol=1e-12)


def test_during_the_burn_in_the_average_is_the_iterate():
    for upto in range(1, 6):
        np.testing.assert_array_equal(fold(5, 3.0, upto), ITERATES[upto - 1])
    np.testing.assert_array_equal(fold(5, 0.0, 6), ITERATES[5])  # the first iterate after it starts the mean


def test_average_does_not_modify_its_inputs():
    average, theta = np.ones(3), np.zeros(3)
    out = optimizers.iterate_average(average, theta, 5, power=1.0)
    np.testing.assert_allclose(out, [1 - 2 / 6] * 3)
    np.testing.assert_array_equal(average, np.ones(3))
    np.testing.assert_array_equal(theta, np.zeros(3))


def test_average_rejects_bad_arguments():
    average, theta = np.ones(3), np.zeros(3)
    for update, burn_in, power in ((0, 0, 0.0), (3, -1, 0.0), (3, 0, -0.5)):
        with pytest.raises(ValueError):
            optimizers.iterate_average(average, theta, update, burn_in=burn_in, power=power)


def test_averaging_hyperparameter_defaults():
    hp = Hyperparameters()
    assert (hp.averaging, hp.averaging_burn_in, hp.averaging_power) == (True, 0, 3.0)


def test_averaging_hyperparameter_bounds():
    for field, value in (("averaging_burn_in", -1), ("averaging_power", -0.1), ("averaging_power", 101)):
        with pytest.raises(ValidationError) as info:
            Hyperparameters(**{field: value})
        assert info.value.errors()[0]["loc"] == (field,)


def test_a_burn_in_the_async_run_never_reaches_is_refused():
    base = {"dataset": "d", "target": "y", "model_name": "m", "n_shards": 2}
    hp = {"max_epochs": 3, "steps_per_invocation": 5, "averaging_burn_in": 30}  # 3 x 2 x 5 = 30 updates at most
    with pytest.raises(ValidationError, match="average would never start"):
        TrainingRequest(**base, mode="async", hyperparameters=hp)
    TrainingRequest(**base, mode="async", hyperparameters={**hp, "averaging_burn_in": 29})
    TrainingRequest(**base, mode="async", hyperparameters={**hp, "averaging": False})
    TrainingRequest(**base, mode="sync", hyperparameters=hp)  # async-only setting


L2 = 1e-3


def _diabetes_shards(n_shards: int = 4):
    X, y = load_diabetes(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    order = np.random.default_rng(0).permutation(len(y))  # Preprocess shuffles before sharding
    data = np.hstack([X, y[:, None]])[order].astype(np.float32)
    return X, y, np.array_split(data, n_shards)


def _objective(theta: np.ndarray, X: np.ndarray, y: np.ndarray) -> float:
    loss_sum, grad_sum = linear.loss_grad_sums("linear_regression", theta.ravel(), X, y)
    return linear.regularized_objective(loss_sum, grad_sum, len(y), theta.ravel(), L2)[0]


def _run(hp: Hyperparameters, passes: int, run_id: str = "run-avg"):
    X, y, shards = _diabetes_shards()
    store = FakeStore()
    init = InitTask(action="init", run_id=run_id, n_features=X.shape[1], hyperparameters=hp, mode="async")
    asynchronous.init_async_run(store, init)
    for r in range(passes):  # one worker call per shard per pass, one after the other: deterministic
        for i, rows in enumerate(shards):
            shard = Shard(index=i, key=f"shards/{i}.npy", rows=len(rows))
            task = AsyncWorkerTask(action="async_steps", run_id=run_id, round=r, shard=shard, hyperparameters=hp)
            asynchronous.run_async_steps(store, task, shard=rows)
    return store, asynchronous.read_head(store, layout.async_head_key(run_id)), X, y


def test_async_with_averaging_reaches_scikit_learns_optimum_on_diabetes():
    hp = Hyperparameters(optimizer="sgd", learning_rate=0.2, l2=L2, batch_size=32, steps_per_invocation=10)
    _, head, X, y = _run(hp, passes=30)
    assert head.version == 30 * 4 * 10
    exact = Ridge(alpha=L2 * len(y)).fit(X, y)
    optimum = _objective(np.append(exact.coef_, exact.intercept_), X, y)
    averaged, last = _objective(head.model, X, y) / optimum, _objective(head.theta, X, y) / optimum
    assert averaged < 1.01  # the bound for async
    assert last > 1.01  # minibatch noise keeps the last iterate further away: averaging is what gets there
    assert averaged < last


def test_the_head_average_is_the_average_of_the_heads_iterates():
    """Replaying the run's updates one by one: the stored average folds in each version's parameters once."""
    hp = Hyperparameters(optimizer="sgd", learning_rate=0.1, l2=L2, batch_size=16, steps_per_invocation=1)
    X, _, shards = _diabetes_shards(2)
    store = FakeStore()
    init = InitTask(action="init", run_id="run-replay", n_features=X.shape[1], hyperparameters=hp, mode="async")
    asynchronous.init_async_run(store, init)
    key = layout.async_head_key("run-replay")
    iterates = []
    for r in range(6):  # one submission per call, to see every version
        for i, rows in enumerate(shards):
            shard = Shard(index=i, key=f"shards/{i}.npy", rows=len(rows))
            task = AsyncWorkerTask(action="async_steps", run_id="run-replay", round=r, shard=shard, hyperparameters=hp)
            asynchronous.run_async_steps(store, task, shard=rows)
            iterates.append(asynchronous.read_head(store, key).theta.copy())
    head = asynchronous.read_head(store, key)
    assert head.version == len(iterates) == 12
    expected = None
    for version, theta in enumerate(iterates, start=1):
        expected = optimizers.iterate_average(expected, theta, version, power=3.0)
    np.testing.assert_allclose(head.average, expected, rtol=1e-12)
    assert not np.allclose(head.average, head.theta)


def test_progress_snapshots_the_average_as_the_model_evaluate_reads():
    hp = Hyperparameters(optimizer="sgd", learning_rate=0.2, l2=L2, batch_size=32, steps_per_invocation=10)
    store, head, _, _ = _run(hp, passes=1)
    results = [
        asynchronous.AsyncWorkerResult(
            shard=i, round=0, rows=100, submitted=10, batch_loss_sum=10.0, grad_norm=1.0, staleness_max=0,
            staleness_sum=0, recomputed=0, conflicts=0, versions=list(range(10 * i + 1, 10 * i + 11)),
        )
        for i in range(4)
    ]  # fmt: skip
    task = AsyncProgressTask(action="async_progress", run_id="run-avg", round=0, hyperparameters=hp, results=results)
    state = asynchronous.progress(store, task)
    theta, rest = training.load_params(store, state.params_key)  # what Evaluate registers
    np.testing.assert_array_equal(theta, head.average)
    np.testing.assert_array_equal(rest["iterate"], head.theta)
    assert not np.allclose(theta, head.theta)
    assert store.get_json(layout.round_key("run-avg", 0))["averaged_updates"] == 40


def test_without_averaging_the_model_is_the_last_iterate():
    hp = Hyperparameters(
        optimizer="sgd", learning_rate=0.2, l2=L2, batch_size=32, steps_per_invocation=10, averaging=False
    )
    _, head, _, _ = _run(hp, passes=2)
    assert head.average is None
    assert head.model is head.theta
