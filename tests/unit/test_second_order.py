"""Newton and L-BFGS rounds: Hessians against finite differences, the line search spread over rounds, and
distributed runs (worker + aggregator, as the workflow calls them) against scikit-learn's optimum."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from mlcore.infra import layout
from mlcore.infra.errors import InvalidInput
from mlcore.math import linear, second_order
from mlcore.steps import training
from mlcore.steps.schemas import Hyperparameters, InitTask

from .fakes import FakeStore
from .helpers import train_in_memory

# -- the Hessian -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "k"), [("linear_regression", 1), ("logistic_regression", 1), ("softmax_regression", 3)]
)
def test_the_hessian_sums_equal_finite_differences_of_the_gradient_sums(model, k, monkeypatch):
    monkeypatch.setattr(linear, "STATS_BLOCK_ROWS", 16)  # several blocks, a ragged last one
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 4))
    y = rng.integers(0, 3, 50).astype(float) if k == 3 else rng.integers(0, 2, 50).astype(float)
    theta = rng.normal(size=5 * k) * 0.5
    H = linear.hessian_sums(model, theta, X)
    eps = 1e-6
    numeric = np.column_stack(
        [
            (linear.loss_grad_sums(model, theta + e, X, y)[1] - linear.loss_grad_sums(model, theta - e, X, y)[1])
            / (2 * eps)
            for e in np.eye(theta.size) * eps
        ]
    )
    assert H.shape == (5 * k, 5 * k)
    np.testing.assert_allclose(H, numeric, atol=1e-6)
    np.testing.assert_allclose(H, H.T, rtol=1e-14, atol=1e-14)


def test_the_upper_triangle_round_trips_and_a_wrong_length_is_refused():
    matrix = np.arange(16.0).reshape(4, 4)
    matrix = matrix + matrix.T
    packed = second_order.pack_symmetric(matrix)
    assert packed.shape == (second_order.triangle_size(4),) == (10,)
    np.testing.assert_array_equal(second_order.unpack_symmetric(packed, 4), matrix)
    with pytest.raises(ValueError, match=r"the upper triangle of a 3 x 3 matrix has 6 values, got \(10,\)"):
        second_order.unpack_symmetric(packed, 3)


def test_the_regularized_hessian_penalizes_weights_not_intercepts():
    H = second_order.regularized_hessian(np.full((6, 6), 10.0), 5, 0.5, k=2)
    np.testing.assert_array_equal(np.diag(H), [2.5, 2.5, 2.5, 2.5, 2.0, 2.0])
    assert H[0, 1] == 2.0


# -- directions ------------------------------------------------------------------------------------------------


def test_the_newton_direction_solves_a_positive_definite_system():
    rng = np.random.default_rng(2)
    A = rng.normal(size=(5, 5))
    H, g = A @ A.T + np.eye(5), rng.normal(size=5)
    np.testing.assert_allclose(second_order.newton_direction(H, g), -np.linalg.solve(H, g), rtol=1e-10)


def test_the_newton_direction_takes_no_step_along_softmaxs_flat_intercept_shift():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 2))
    y = rng.integers(0, 3, 40).astype(float)
    theta = np.zeros(9)
    loss_sum, grad_sum = linear.loss_grad_sums("softmax_regression", theta, X, y)
    _, g = linear.regularized_objective(loss_sum, grad_sum, 40, theta, 0.1, 3)
    H = second_order.regularized_hessian(linear.hessian_sums("softmax_regression", theta, X), 40, 0.1, 3)
    shift = np.zeros(9)
    shift[-3:] = 1.0  # adding one constant to every class's intercept changes no probability
    assert abs(float(g @ shift)) < 1e-12 and np.linalg.norm(H @ shift) < 1e-12
    direction = second_order.newton_direction(H, g)
    assert abs(float(direction @ shift)) < 1e-9 and float(g @ direction) < 0
    np.testing.assert_allclose(H @ direction, -g, atol=1e-10)  # exact on the rest


def test_lbfgs_without_curvature_pairs_is_unit_steepest_descent_and_with_one_pair_the_bfgs_step():
    g = np.array([3.0, 4.0])
    np.testing.assert_allclose(second_order.lbfgs_direction(g, np.zeros((0, 2)), np.zeros((0, 2))), [-0.6, -0.8])
    s, y = np.array([[1.0, 0.0]]), np.array([[2.0, 0.0]])  # curvature 2 along the first axis
    gamma = 0.5  # s·y / y·y
    # one BFGS update of gamma * I with (s, y): H = (I - rho s yᵀ) gamma (I - rho y sᵀ) + rho s sᵀ, rho = 1 / s·y
    rho = 0.5
    eye = np.eye(2)
    H = (eye - rho * np.outer(s[0], y[0])) @ (gamma * eye) @ (eye - rho * np.outer(y[0], s[0])) + rho * np.outer(
        s[0], s[0]
    )
    np.testing.assert_allclose(second_order.lbfgs_direction(g, s, y), -H @ g)


# -- the line search -------------------------------------------------------------------------------------------


def test_the_first_candidate_is_accepted_and_the_next_is_the_full_newton_step():
    H, g = np.diag([2.0, 4.0]), np.array([2.0, 4.0])
    state = second_order.init_state(2)
    before = {k: v.copy() for k, v in state.items()}
    candidate, new, accepted = second_order.line_search_round("newton", state, np.zeros(2), 5.0, g, H)
    assert accepted
    np.testing.assert_allclose(candidate, [-1.0, -1.0])
    np.testing.assert_array_equal(new["anchor"], [0.0, 0.0])
    assert new["anchor_loss"][0] == 5.0 and new["step"][0] == 1.0
    assert all(np.array_equal(state[k], before[k]) for k in state)  # pure


def test_a_candidate_that_does_not_decrease_enough_is_rejected_and_the_step_shortened_by_interpolation():
    H, g = np.eye(2), np.array([1.0, 0.0])
    _, state, _ = second_order.line_search_round("newton", second_order.init_state(2), np.zeros(2), 1.0, g, H)
    # at anchor + d the loss rose to 2.5: slope g·d = -1, the quadratic through (0, 1, -1) and (1, 2.5) has its
    # minimum at t = 1 / (2 * 2.5) = 0.2
    candidate, new, accepted = second_order.line_search_round("newton", state, np.array([-1.0, 0.0]), 2.5, g, H)
    assert not accepted
    assert new["step"][0] == pytest.approx(0.2)
    np.testing.assert_allclose(candidate, [-0.2, 0.0])
    np.testing.assert_array_equal(new["anchor"], [0.0, 0.0])
    # a non-finite loss is rejected too, the step cut to a tenth
    _, cut, accepted = second_order.line_search_round("newton", new, candidate, float("inf"), g, H)
    assert not accepted and cut["step"][0] == pytest.approx(0.02)
    # a candidate meeting Armijo's condition is accepted
    assert second_order.accepts(new, 1.0 - 0.2 * 0.5)
    assert not second_order.accepts(new, 1.0 - 0.2 * second_order.ARMIJO / 2)


def test_lbfgs_keeps_at_most_memory_curvature_pairs_and_skips_pairs_without_curvature():
    state = second_order.init_state(1)
    for i in range(second_order.MEMORY + 3):  # points x = i with gradient 2x: curvature 2, the loss falling
        x = float(i)
        _, state, accepted = second_order.line_search_round("lbfgs", state, np.array([x]), -x, np.array([2 * x]))
        assert accepted
    assert state["s"].shape == state["y"].shape == (second_order.MEMORY, 1)
    np.testing.assert_array_equal(state["s"][:, 0], np.ones(second_order.MEMORY))
    np.testing.assert_array_equal(state["y"][:, 0], np.full(second_order.MEMORY, 2.0))
    # a step along which the gradient did not grow adds no pair
    _, after, _ = second_order.line_search_round("lbfgs", state, np.array([20.0]), -20.0, np.array([24.0]))
    np.testing.assert_array_equal(after["s"], state["s"])


def test_unknown_solvers_and_a_missing_hessian_are_refused():
    with pytest.raises(ValueError, match="unknown line-search solver 'sgd'"):
        second_order.line_search_round("sgd", second_order.init_state(1), np.zeros(1), 0.0, np.zeros(1))
    with pytest.raises(ValueError, match="the newton solver needs the Hessian"):
        second_order.line_search_round("newton", second_order.init_state(1), np.zeros(1), 0.0, np.zeros(1))


# -- distributed runs ------------------------------------------------------------------------------------------


def _standardized(loader):
    X, y = loader(return_X_y=True)
    return StandardScaler().fit_transform(X).astype(np.float32), y.astype(np.float32)


def _objective(model: str, theta: np.ndarray, X: np.ndarray, y: np.ndarray, l2: float, k: int) -> float:
    loss_sum, grad_sum = linear.loss_grad_sums(model, theta, X.astype(np.float64), y.astype(np.float64))
    return linear.regularized_objective(loss_sum, grad_sum, len(y), theta, l2, k)[0]


def _run(hp: Hyperparameters, X: np.ndarray, y: np.ndarray, k: int, shards: int = 3):
    """The workflow's rounds in process on ``shards`` row ranges: the store, the final state, each round's results."""
    store = FakeStore()
    state, rounds = train_in_memory(store, hp, np.array_split(np.column_stack([X, y]), shards), n_outputs=k)
    return store, state, rounds


@pytest.mark.parametrize(
    ("loader", "model", "k"),
    [(load_breast_cancer, "logistic_regression", 1), (load_wine, "softmax_regression", 3)],
)
def test_newton_reaches_scikit_learns_optimum_to_1e_6_in_at_most_10_rounds(loader, model, k):
    X, y = _standardized(loader)
    l2 = 1e-3
    hp = Hyperparameters(model=model, l2=l2)
    assert hp.resolved_solver(X.shape[1], k) == "newton"
    store, state, _ = _run(hp, X, y, k)
    reference = LogisticRegression(C=1.0 / (l2 * len(y)), tol=1e-12, max_iter=10_000).fit(
        X.astype(np.float64), y.astype(np.int64)
    )
    ref_theta = np.vstack([np.atleast_2d(reference.coef_).T, np.atleast_1d(reference.intercept_)[None, :]]).ravel()
    theta = store.archives[state.params_key]["theta"].ravel()
    ours, best = _objective(model, theta, X, y, l2, k), _objective(model, ref_theta, X, y, l2, k)
    assert (state.reason, state.done) == ("converged", True)
    assert state.round <= 10
    assert (ours - best) / best < 1e-6
    records = [store.documents[layout.round_key("run", r)] for r in range(state.round)]
    assert all(r["solver"]["name"] == "newton" for r in records)
    assert records[0]["solver"] == {"name": "newton", "accepted": True, "step": 1.0}


def test_newton_workers_return_the_gradient_and_the_hessians_upper_triangle():
    X, y = _standardized(load_breast_cancer)
    hp = Hyperparameters(model="logistic_regression", l2=1e-3)
    store, state, results = _run(hp, X[:90], y[:90], 1, shards=1)
    assert state.done
    p = X.shape[1] + 1
    theta0 = np.zeros(p)
    _, grad = linear.loss_grad_sums("logistic_regression", theta0, X[:90], y[:90])
    vector = training.average_gradients(store, results[0])[1]
    assert vector.shape == (p + second_order.triangle_size(p),)
    np.testing.assert_allclose(vector[:p], grad, rtol=1e-6)
    hessian = linear.hessian_sums("logistic_regression", theta0, X[:90])
    np.testing.assert_allclose(second_order.unpack_symmetric(vector[p:], p), hessian, rtol=1e-6)


def test_lbfgs_converges_to_the_optimum_where_newton_would_be_too_large():
    X, y = _standardized(load_wine)
    l2 = 1e-2
    hp = Hyperparameters(model="softmax_regression", l2=l2, solver="lbfgs", tolerance=1e-5)
    store, state, results = _run(hp, X, y, 3)
    newton_store, newton_state, _ = _run(Hyperparameters(model="softmax_regression", l2=l2), X, y, 3)
    ours = _objective("softmax_regression", store.archives[state.params_key]["theta"].ravel(), X, y, l2, 3)
    best = _objective(
        "softmax_regression", newton_store.archives[newton_state.params_key]["theta"].ravel(), X, y, l2, 3
    )
    assert state.reason == "converged" and newton_state.round < state.round < 200
    assert (ours - best) / best < 1e-7
    vector = training.average_gradients(store, results[0])[1]
    assert vector.shape == (X.shape[1] * 3 + 3,)  # a gradient only


def test_a_round_that_stops_at_max_epochs_keeps_the_last_accepted_point():
    X, y = _standardized(load_wine)
    hp = Hyperparameters(model="softmax_regression", l2=1e-3, max_epochs=2)
    store, state, _ = _run(hp, X, y, 3)
    assert (state.round, state.reason) == (2, "max_epochs")
    record = store.documents[layout.round_key("run", 1)]
    kept = store.archives[state.params_key]
    theta = kept["theta"].ravel()
    np.testing.assert_array_equal(theta, kept["anchor"])  # not the unevaluated next candidate
    assert record["solver"]["accepted"] is True
    evaluated = store.archives[layout.params_key("run", 1)]["theta"].ravel()
    np.testing.assert_array_equal(theta, evaluated)


def test_newton_with_too_many_parameters_fails_init_and_writes_nothing():
    store = FakeStore()
    hp = Hyperparameters(model="softmax_regression", solver="newton")
    with pytest.raises(InvalidInput) as info:
        training.init_run(store, InitTask(run_id="run", n_features=400, n_outputs=3, hyperparameters=hp))
    assert str(info.value) == (
        "solver 'newton' fits at most 1000 parameters, the model has 1203 (400 features after preprocessing + 1, "
        "x 3 outputs); use solver 'lbfgs' or 'auto'"
    )
    assert store.writes == {}
