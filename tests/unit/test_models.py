"""Loss and gradient of the linear model: finite differences, float32 shards, sharded aggregation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mlcore.math import linear

from .helpers import central_differences


@pytest.fixture
def problem():
    rng = np.random.default_rng(42)
    X = rng.normal(size=(60, 4))
    y = X @ np.array([1.5, -2.0, 0.5, 3.0]) + 0.7 + rng.normal(scale=0.3, size=60)
    theta = rng.normal(size=5)
    return X, y, theta


def test_predict_is_x_dot_w_plus_intercept():
    X = np.array([[1.0, 2.0], [3.0, -1.0]])
    theta = np.array([0.5, -1.0, 2.0])
    np.testing.assert_array_equal(linear.predict("linear_regression", theta, X), [0.5 - 2.0 + 2.0, 1.5 + 1.0 + 2.0])


def test_loss_sum_is_half_squared_residual_norm(problem):
    X, y, theta = problem
    loss_sum, _ = linear.loss_grad_sums("linear_regression", theta, X, y)
    expected = 0.5 * np.linalg.norm(X @ theta[:-1] + theta[-1] - y) ** 2
    assert isinstance(loss_sum, float)
    assert loss_sum == pytest.approx(expected, rel=1e-12)


def test_gradient_sum_matches_central_differences(problem):
    X, y, theta = problem
    _, grad = linear.loss_grad_sums("linear_regression", theta, X, y)
    numeric = central_differences(lambda t: linear.loss_grad_sums("linear_regression", t, X, y)[0], theta)
    assert grad.dtype == np.float64
    assert grad.shape == theta.shape
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-5)


def test_gradient_sum_has_closed_form(problem):
    X, y, theta = problem
    _, grad = linear.loss_grad_sums("linear_regression", theta, X, y)
    residual = X @ theta[:-1] + theta[-1] - y
    np.testing.assert_allclose(grad, np.append(X.T @ residual, residual.sum()), rtol=1e-12)


def test_inputs_are_not_mutated(problem):
    X, y, theta = problem
    copies = X.copy(), y.copy(), theta.copy()
    linear.loss_grad_sums("linear_regression", theta, X, y)
    for original, copy in zip((X, y, theta), copies, strict=True):
        np.testing.assert_array_equal(original, copy)


def test_float32_shard_is_close_to_float64(problem):
    X, y, theta = problem
    loss64, grad64 = linear.loss_grad_sums("linear_regression", theta, X, y)
    loss32, grad32 = linear.loss_grad_sums("linear_regression", theta, X.astype(np.float32), y.astype(np.float32))
    assert isinstance(loss32, float)
    assert grad32.dtype == np.float64
    assert loss32 == pytest.approx(loss64, rel=1e-5)
    np.testing.assert_allclose(grad32, grad64, rtol=1e-4, atol=1e-3 * np.abs(grad64).max())


def _objective(theta, X, y, l2):
    loss_sum, grad_sum = linear.loss_grad_sums("linear_regression", theta, X, y)
    return linear.regularized_objective(loss_sum, grad_sum, X.shape[0], theta, l2)


def test_regularized_gradient_matches_central_differences(problem):
    X, y, theta = problem
    l2 = 0.8
    loss, grad = _objective(theta, X, y, l2)
    numeric = central_differences(lambda t: _objective(t, X, y, l2)[0], theta)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-7)
    residual = X @ theta[:-1] + theta[-1] - y
    expected_loss = 0.5 * np.mean(residual**2) + 0.5 * l2 * np.dot(theta[:-1], theta[:-1])
    assert loss == pytest.approx(expected_loss, rel=1e-12)


def test_intercept_is_not_penalized(problem):
    X, y, theta = problem
    l2 = 0.8
    loss0, grad0 = _objective(theta, X, y, 0.0)
    loss1, grad1 = _objective(theta, X, y, l2)
    np.testing.assert_allclose(grad1 - grad0, np.append(l2 * theta[:-1], 0.0), rtol=1e-12, atol=1e-14)
    assert grad1[-1] == grad0[-1]
    assert loss1 - loss0 == pytest.approx(0.5 * l2 * float(np.dot(theta[:-1], theta[:-1])), rel=1e-10)


def test_regularized_objective_does_not_mutate_gradient_sum(problem):
    X, y, theta = problem
    loss_sum, grad_sum = linear.loss_grad_sums("linear_regression", theta, X, y)
    kept = grad_sum.copy()
    linear.regularized_objective(loss_sum, grad_sum, X.shape[0], theta, 0.5)
    np.testing.assert_array_equal(grad_sum, kept)


@pytest.mark.parametrize("rows", [0, -3])
def test_regularized_objective_rejects_no_rows(rows):
    with pytest.raises(ValueError, match="^cannot average over zero rows$"):
        linear.regularized_objective(0.0, np.zeros(3), rows, np.zeros(3), 0.1)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_uneven_shards_sum_to_the_full_data_gradient(problem, dtype):
    """What the Aggregator relies on: summing shard sums and dividing by the total row count once
    is the row-weighted average, i.e. exactly the full-data objective."""
    X, y, theta = problem
    X, y = X.astype(dtype), y.astype(dtype)
    l2 = 0.3
    bounds = [0, 1, 8, 9, 40, 60]  # shards of 1, 7, 1, 31 and 20 rows
    shards = [(X[a:b], y[a:b]) for a, b in itertools.pairwise(bounds)]
    sums = [linear.loss_grad_sums("linear_regression", theta, Xs, ys) for Xs, ys in shards]
    loss_sum = sum(s[0] for s in sums)
    grad_sum = sum(s[1] for s in sums)
    rows = sum(Xs.shape[0] for Xs, _ in shards)
    assert rows == 60

    loss, grad = linear.regularized_objective(loss_sum, grad_sum, rows, theta, l2)
    full_loss, full_grad = _objective(theta, X, y, l2)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    assert loss == pytest.approx(full_loss, rel=rtol)
    np.testing.assert_allclose(grad, full_grad, rtol=rtol, atol=rtol * np.abs(full_grad).max())

    # The unweighted mean of per-shard mean gradients is a different (wrong) number: the
    # comparison above is sensitive to the weighting.
    unweighted = np.mean([g / Xs.shape[0] for (_, g), (Xs, _) in zip(sums, shards, strict=True)], axis=0)
    unweighted[:-1] += l2 * theta[:-1]
    assert not np.allclose(unweighted, full_grad, rtol=1e-3)
