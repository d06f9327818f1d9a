"""The exact solver of linear regression: shard statistics, the ridge solve, auto selection, worker and aggregator."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError
from sklearn.linear_model import LinearRegression, Ridge

from mlcore.infra import layout
from mlcore.infra.errors import InvalidInput
from mlcore.math import linear
from mlcore.math.second_order import NEWTON_MAX_PARAMS
from mlcore.steps import training
from mlcore.steps.schemas import (
    AggregateTask,
    FailedShard,
    Hyperparameters,
    InitTask,
    Shard,
    TrainingRequest,
    WorkerResult,
    WorkerTask,
)

from .fakes import FakeStore

REQUEST = {"dataset": "d", "target": "y", "model_name": "m"}


def _data(rows: int = 500, features: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """float32 rows as a shard holds them, with a non-zero intercept and noise."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, features)) * rng.uniform(0.5, 3.0, size=features) + rng.normal(size=features)
    y = X @ rng.normal(size=features) + 7.0 + rng.normal(size=rows)
    return X.astype(np.float32), y.astype(np.float32)


# -- the statistics --------------------------------------------------------------------------------------------


def test_statistics_summed_over_shards_equal_the_whole_datas(monkeypatch):
    monkeypatch.setattr(linear, "STATS_BLOCK_ROWS", 7)  # several blocks per shard, a ragged last one
    X, y = _data(rows=101, features=4)
    bounds = [(0, 1), (1, 30), (30, 101)]
    summed = sum(linear.sufficient_statistics(X[a:b], y[a:b]) for a, b in bounds)
    whole = linear.sufficient_statistics(X, y)
    np.testing.assert_allclose(summed, whole, rtol=1e-12)
    Z = np.column_stack([X.astype(np.float64), np.ones(101)])
    y64 = y.astype(np.float64)
    gram, zty, yty = linear.unpack_statistics(whole, 4)
    np.testing.assert_allclose(gram, Z.T @ Z, rtol=1e-12)
    np.testing.assert_allclose(zty, Z.T @ y64, rtol=1e-12)
    assert yty == pytest.approx(float(y64 @ y64), rel=1e-12)
    assert gram[-1, -1] == 101.0 and whole.shape == (linear.statistics_size(4),) == (31,)


def test_unpacking_statistics_of_another_feature_count_is_refused():
    with pytest.raises(ValueError, match=r"statistics of 3 features have 21 values, got shape \(31,\)"):
        linear.unpack_statistics(np.zeros(31), 3)


@pytest.mark.parametrize("l2", [0.0, 1e-3, 0.5])
def test_the_solve_equals_scikit_learn(l2):
    X, y = _data()
    n = len(y)
    theta, singular = linear.exact_solve(linear.sufficient_statistics(X, y), 6, n, l2)
    X64, y64 = X.astype(np.float64), y.astype(np.float64)
    # the objective's 0.5 * l2 * ||W||^2 over the mean loss is Ridge's alpha = n * l2 over the summed loss
    reference = LinearRegression() if l2 == 0 else Ridge(alpha=n * l2, solver="cholesky")
    reference.fit(X64, y64)
    assert not singular
    np.testing.assert_allclose(theta[:-1], reference.coef_, rtol=1e-9)
    assert theta[-1] == pytest.approx(reference.intercept_, rel=1e-9)


def test_a_singular_system_falls_back_to_least_squares_with_scikit_learns_predictions():
    X, y = _data(features=3)
    onehot = np.eye(3, dtype=np.float32)[np.arange(len(y)) % 3]  # sums to the intercept's column
    X = np.column_stack([X, onehot, X[:, :1]])  # and a duplicated feature
    theta, singular = linear.exact_solve(linear.sufficient_statistics(X, y), 7, len(y), 0.0)
    reference = LinearRegression().fit(X.astype(np.float64), y.astype(np.float64))
    assert singular
    ours = linear.predict("linear_regression", theta, X.astype(np.float64))
    np.testing.assert_allclose(ours, reference.predict(X.astype(np.float64)), rtol=1e-9)


def test_the_objective_from_the_statistics_equals_the_objective_from_the_rows():
    X, y = _data()
    theta = np.random.default_rng(5).normal(size=7)
    stats = linear.sufficient_statistics(X, y)
    loss, grad = linear.statistics_objective(stats, 6, len(y), theta, 0.3)
    loss_sum, grad_sum = linear.loss_grad_sums("linear_regression", theta, X.astype(np.float64), y.astype(np.float64))
    expected_loss, expected_grad = linear.regularized_objective(loss_sum, grad_sum, len(y), theta, 0.3)
    assert loss == pytest.approx(expected_loss, rel=1e-10)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-9, atol=1e-12)


# -- choosing the solver ---------------------------------------------------------------------------------------


def test_the_default_solver_is_auto():
    assert Hyperparameters().solver == "auto"


@pytest.mark.parametrize(
    ("hyperparameters", "n_features", "n_outputs", "mode", "solver"),
    [
        ({}, 28, 1, "sync", "exact"),
        ({}, linear.EXACT_MAX_FEATURES, 1, "sync", "exact"),
        ({}, linear.EXACT_MAX_FEATURES + 1, 1, "sync", "lbfgs"),  # the d x d system is too large
        ({}, 28, 1, "async", "sgd"),
        ({"worker_mode": "local_steps"}, 28, 1, "sync", "sgd"),
        ({"model": "logistic_regression"}, 28, 1, "sync", "newton"),
        ({"model": "logistic_regression"}, 28, 1, "async", "sgd"),
        ({"model": "softmax_regression"}, 28, 3, "sync", "newton"),
        ({"model": "softmax_regression"}, NEWTON_MAX_PARAMS // 3 - 1, 3, "sync", "newton"),  # 999 parameters
        ({"model": "softmax_regression"}, NEWTON_MAX_PARAMS // 3, 3, "sync", "lbfgs"),  # 1,002 parameters
        ({"solver": "sgd"}, 28, 1, "sync", "sgd"),
        ({"solver": "exact"}, 28, 1, "sync", "exact"),
        ({"solver": "lbfgs", "model": "logistic_regression"}, 28, 1, "sync", "lbfgs"),
        ({"solver": "newton"}, 28, 1, "sync", "newton"),
    ],
)
def test_auto_picks_exact_or_newton_within_their_size_limits_in_sync_mode_else_lbfgs_and_sgd_otherwise(
    hyperparameters, n_features, n_outputs, mode, solver
):
    assert Hyperparameters(**hyperparameters).resolved_solver(n_features, n_outputs, mode) == solver


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (
            {"hyperparameters": {"solver": "exact", "model": "logistic_regression"}},
            "solver 'exact' solves linear_regression only, not logistic_regression; use solver 'newton' or 'auto'",
        ),
        (
            {"hyperparameters": {"solver": "exact", "model": "softmax_regression"}},
            "solver 'exact' solves linear_regression only, not softmax_regression; use solver 'newton' or 'auto'",
        ),
        (
            {"hyperparameters": {"solver": "exact", "worker_mode": "local_steps"}},
            "solver 'exact' does not combine with worker_mode 'local_steps'; use worker_mode 'gradient'",
        ),
        (
            {"mode": "async", "hyperparameters": {"solver": "exact"}},
            "solver 'exact' runs in sync mode only, not mode 'async'; use solver 'sgd'",
        ),
        (
            {"mode": "async", "hyperparameters": {"solver": "newton", "model": "logistic_regression"}},
            "solver 'newton' runs in sync mode only, not mode 'async'; use solver 'sgd'",
        ),
        (
            {"hyperparameters": {"solver": "lbfgs", "worker_mode": "local_steps"}},
            "solver 'lbfgs' does not combine with worker_mode 'local_steps'; use worker_mode 'gradient'",
        ),
        ({"hyperparameters": {"solver": "bfgs"}}, "Input should be 'sgd', 'exact', 'newton', 'lbfgs' or 'auto'"),
    ],
)
def test_round_solvers_are_refused_where_they_do_not_apply(request_, message):
    with pytest.raises(ValidationError) as info:
        TrainingRequest(**REQUEST, **request_)
    assert message in str(info.value)


def test_auto_is_accepted_in_every_mode():
    assert TrainingRequest(**REQUEST, mode="async").hyperparameters.solver == "auto"
    assert TrainingRequest(**REQUEST, hyperparameters={"model": "logistic_regression"}).hyperparameters.solver == "auto"


def test_exact_with_too_many_features_fails_init_and_writes_nothing():
    store = FakeStore()
    task = InitTask(run_id="run", n_features=2001, hyperparameters=Hyperparameters(solver="exact"))
    with pytest.raises(InvalidInput) as info:
        training.init_run(store, task)
    assert str(info.value) == (
        "solver 'exact' solves at most 2000 features, the data has 2001 after preprocessing; "
        "use solver 'lbfgs' or 'auto'"
    )
    assert store.writes == {}
    # auto falls back to L-BFGS instead
    training.init_run(store, InitTask(run_id="run", n_features=2001, hyperparameters=Hyperparameters()))
    assert store.archives[layout.params_key("run", 0)]["theta"].shape == (2002, 1)


# -- worker and aggregator -------------------------------------------------------------------------------------


def _worker_task(shard: int, rows: int, hp: Hyperparameters) -> WorkerTask:
    return WorkerTask(
        run_id="run",
        round=0,
        params_key=layout.params_key("run", 0),
        shard=Shard(index=shard, key=f"shard-{shard}", rows=rows),
        hyperparameters=hp,
    )


def _solved_run(hp: Hyperparameters, failed: bool = False):
    X, y = _data(rows=300, features=5)
    store = FakeStore()
    training.init_run(store, InitTask(run_id="run", n_features=5, hyperparameters=hp))
    results: list[WorkerResult | FailedShard] = []
    for index, (a, b) in enumerate([(0, 120), (120, 300)]):
        shard = np.column_stack([X[a:b], y[a:b]])
        results.append(training.compute_gradient(store, _worker_task(index, b - a, hp), shard=shard))
    if failed:
        results.append(FailedShard(failed=True, shard=2, round=0, rows=50, error="Lambda.ServiceException"))
    task = AggregateTask(
        run_id="run", round=0, params_key=layout.params_key("run", 0), hyperparameters=hp, results=results
    )
    return store, X, y, results, training.aggregate(store, task)


def test_a_worker_returns_its_shards_statistics_in_place_of_a_gradient():
    hp = Hyperparameters(l2=0.01)
    store, X, y, results, _ = _solved_run(hp)
    first = results[0]
    assert isinstance(first, WorkerResult)
    key = layout.gradient_key("run", 0, 0)
    assert first.gradient_key == key and first.rows == 120 and first.update_key is None
    np.testing.assert_array_equal(store.arrays[key], linear.sufficient_statistics(X[:120], y[:120]))
    # the loss sum at round 0's zero parameters
    assert first.loss_sum == pytest.approx(0.5 * float(np.sum(y[:120].astype(np.float64) ** 2)), rel=1e-6)


def test_one_aggregation_solves_and_stops_the_run_as_solved():
    hp = Hyperparameters(l2=0.01)
    store, X, y, _, state = _solved_run(hp)
    stats = linear.sufficient_statistics(X, y)
    expected, _ = linear.exact_solve(stats, 5, 300, 0.01)
    loss, grad = linear.statistics_objective(stats, 5, 300, expected, 0.01)
    assert (state.round, state.done, state.reason) == (1, True, "solved")
    assert state.params_key == layout.params_key("run", 1) and not state.handover
    theta = store.archives[layout.params_key("run", 1)]["theta"]
    assert theta.shape == (6, 1)
    np.testing.assert_allclose(theta.ravel(), expected, rtol=1e-12)
    record = store.documents[layout.round_key("run", 0)]
    assert record["loss"] == state.loss == pytest.approx(loss, rel=1e-12)
    assert record["grad_norm"] == state.grad_norm == pytest.approx(float(np.linalg.norm(grad)), rel=1e-9)
    assert state.grad_norm < 1e-9 and record["solver"] == {"name": "exact", "singular": False}
    assert (record["rows"], record["shards"], record["failed_shards"]) == (300, 2, [])
    assert list(store.documents) == [layout.round_key("run", 0)]  # one round, no second parameter write
    assert [k for k in store.archives if "/params/" in k] == [layout.params_key("run", 0), layout.params_key("run", 1)]


def test_the_solved_round_is_applied_once():
    hp = Hyperparameters()
    store, _, _, results, state = _solved_run(hp)
    writes = dict(store.writes)
    task = AggregateTask(
        run_id="run", round=0, params_key=layout.params_key("run", 0), hyperparameters=hp, results=results
    )
    assert training.aggregate(store, task) == state
    assert store.writes == writes


def test_a_tolerated_failed_shard_is_left_out_of_the_solve():
    hp = Hyperparameters(tolerated_failure_percentage=50)
    store, X, y, _, state = _solved_run(hp, failed=True)
    expected, _ = linear.exact_solve(linear.sufficient_statistics(X, y), 5, 300, 0.0)
    np.testing.assert_allclose(store.archives[state.params_key]["theta"].ravel(), expected, rtol=1e-12)
    assert store.documents[layout.round_key("run", 0)]["failed_shards"] == [2]


def test_gradients_where_statistics_are_expected_are_refused():
    store = FakeStore()
    store.archives[layout.params_key("run", 0)] = {"theta": np.zeros((4, 1))}
    store.arrays["g"] = np.zeros(4)
    task = AggregateTask(
        run_id="run",
        round=0,
        params_key=layout.params_key("run", 0),
        hyperparameters=Hyperparameters(),
        results=[WorkerResult(shard=0, round=0, rows=10, loss_sum=1.0, gradient_key="g")],
    )
    with pytest.raises(ValueError) as info:
        training.aggregate(store, task)
    assert str(info.value) == (
        "the results of round 0 are not sufficient statistics of 3 features (solver exact): 4 values instead of 21"
    )
    assert layout.params_key("run", 1) not in store.archives and store.documents == {}
