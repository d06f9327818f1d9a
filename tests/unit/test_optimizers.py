"""Optimizer steps against hand-computed values, purity, and convergence to scikit-learn's solutions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, Ridge

from mlcore.math import linear, optimizers

THETA0 = np.array([1.0, -2.0])
G1 = np.array([0.5, -1.0])
G2 = np.array([0.25, 2.0])
LR = 0.1


def two_steps(name: str, **kwargs):
    state0 = optimizers.init_state(name, 2)
    theta1, state1 = optimizers.step(name, THETA0, G1, state0, learning_rate=LR, t=1, **kwargs)
    theta2, state2 = optimizers.step(name, theta1, G2, state1, learning_rate=LR, t=2, **kwargs)
    return theta1, state1, theta2, state2


def test_init_state():
    assert optimizers.init_state("sgd", 3) == {}
    momentum = optimizers.init_state("momentum", 3)
    assert list(momentum) == ["velocity"]
    np.testing.assert_array_equal(momentum["velocity"], np.zeros(3))
    adam = optimizers.init_state("adam", 3)
    assert sorted(adam) == ["m", "v"]
    np.testing.assert_array_equal(adam["m"], np.zeros(3))
    np.testing.assert_array_equal(adam["v"], np.zeros(3))


def test_sgd_two_steps():
    theta1, state1, theta2, state2 = two_steps("sgd")
    np.testing.assert_allclose(theta1, [0.95, -1.9], rtol=1e-15)
    np.testing.assert_allclose(theta2, [0.925, -2.1], rtol=1e-15)
    assert state1 == {} and state2 == {}


def test_momentum_two_steps():
    theta1, state1, theta2, state2 = two_steps("momentum", momentum=0.9)
    # v1 = g1; theta1 = theta0 - lr * v1
    np.testing.assert_allclose(state1["velocity"], [0.5, -1.0], rtol=1e-15)
    np.testing.assert_allclose(theta1, [0.95, -1.9], rtol=1e-15)
    # v2 = 0.9 * v1 + g2 = [0.45 + 0.25, -0.9 + 2.0]; theta2 = theta1 - lr * v2
    np.testing.assert_allclose(state2["velocity"], [0.7, 1.1], rtol=1e-14)
    np.testing.assert_allclose(theta2, [0.88, -2.01], rtol=1e-14)


def test_momentum_coefficient_is_used():
    _, _, theta2, state2 = two_steps("momentum", momentum=0.5)
    np.testing.assert_allclose(state2["velocity"], [0.5 * 0.5 + 0.25, 0.5 * -1.0 + 2.0], rtol=1e-15)
    np.testing.assert_allclose(theta2, [0.95 - 0.1 * 0.5, -1.9 - 0.1 * 1.5], rtol=1e-14)


def test_adam_two_steps():
    b1, b2, eps = 0.9, 0.999, 1e-8
    theta1, state1, theta2, state2 = two_steps("adam")
    expected_theta1, expected_theta2 = [], []
    for i, (t0, g1, g2) in enumerate(zip(THETA0, G1, G2, strict=True)):
        m1 = (1 - b1) * g1
        v1 = (1 - b2) * g1 * g1
        assert state1["m"][i] == pytest.approx(m1, rel=1e-14)
        assert state1["v"][i] == pytest.approx(v1, rel=1e-14)
        t1 = t0 - LR * (m1 / (1 - b1)) / (math.sqrt(v1 / (1 - b2)) + eps)
        m2 = b1 * m1 + (1 - b1) * g2
        v2 = b2 * v1 + (1 - b2) * g2 * g2
        assert state2["m"][i] == pytest.approx(m2, rel=1e-14)
        assert state2["v"][i] == pytest.approx(v2, rel=1e-14)
        t2 = t1 - LR * (m2 / (1 - b1**2)) / (math.sqrt(v2 / (1 - b2**2)) + eps)
        expected_theta1.append(t1)
        expected_theta2.append(t2)
    np.testing.assert_allclose(theta1, expected_theta1, rtol=1e-14)
    np.testing.assert_allclose(theta2, expected_theta2, rtol=1e-14)
    # With bias correction the first Adam step has size lr in every coordinate, whatever |g|.
    np.testing.assert_allclose(theta1, THETA0 - LR * np.sign(G1), atol=1e-8)
    # Second step, by hand: m2 = [0.07, 0.11], v2 = [0.00031225, 0.004999].
    np.testing.assert_allclose(state2["m"], [0.07, 0.11], rtol=1e-13)
    np.testing.assert_allclose(state2["v"], [0.00031225, 0.004999], rtol=1e-13)


@pytest.mark.parametrize("name", optimizers.OPTIMIZERS)
def test_step_does_not_mutate_inputs(name):
    theta = np.array([1.0, 2.0, 3.0])
    grad = np.array([0.1, -0.2, 0.3])
    state = {k: v + 0.5 for k, v in optimizers.init_state(name, 3).items()}
    saved_theta, saved_grad = theta.copy(), grad.copy()
    saved_state = {k: v.copy() for k, v in state.items()}
    new_theta, new_state = optimizers.step(name, theta, grad, state, learning_rate=0.1, t=3)
    np.testing.assert_array_equal(theta, saved_theta)
    np.testing.assert_array_equal(grad, saved_grad)
    assert sorted(state) == sorted(saved_state)
    for k in state:
        np.testing.assert_array_equal(state[k], saved_state[k])
        assert new_state[k] is not state[k]
    assert new_theta is not theta
    assert not np.array_equal(new_theta, theta)


def test_unknown_optimizer_names_the_choices():
    expected = r"^unknown optimizer 'rmsprop'; expected one of \('sgd', 'momentum', 'adam'\)$"
    with pytest.raises(ValueError, match=expected):
        optimizers.step("rmsprop", np.zeros(2), np.zeros(2), {}, learning_rate=0.1, t=1)
    with pytest.raises(ValueError, match=expected):
        optimizers.init_state("rmsprop", 2)


# --- full-batch training against scikit-learn --------------------------------------------------


@pytest.fixture(scope="module")
def regression_data():
    rng = np.random.default_rng(7)
    n = 200
    X = rng.normal(size=(n, 3)) * np.array([1.0, 0.5, 2.0]) + np.array([0.0, 1.0, -1.0])
    y = X @ np.array([2.0, -1.0, 0.5]) + 3.0 + rng.normal(scale=0.5, size=n)
    return X, y


def gradient_descent(X, y, l2, optimizer="momentum", learning_rate=0.1, max_steps=5000):
    theta = np.zeros(X.shape[1] + 1)
    state = optimizers.init_state(optimizer, theta.size)
    for t in range(1, max_steps + 1):
        loss_sum, grad_sum = linear.loss_grad_sums("linear_regression", theta, X, y)
        _, grad = linear.regularized_objective(loss_sum, grad_sum, X.shape[0], theta, l2)
        if np.linalg.norm(grad) < 1e-11:
            return theta, t
        theta, state = optimizers.step(optimizer, theta, grad, state, learning_rate=learning_rate, t=t)
    raise AssertionError(f"did not converge in {max_steps} steps (gradient norm {np.linalg.norm(grad)})")


def test_momentum_gradient_descent_reaches_ordinary_least_squares(regression_data):
    X, y = regression_data
    theta, _ = gradient_descent(X, y, l2=0.0)
    reference = LinearRegression().fit(X, y)
    np.testing.assert_allclose(theta[:-1], reference.coef_, rtol=0, atol=1e-8)
    assert theta[-1] == pytest.approx(reference.intercept_, abs=1e-8)


def test_momentum_gradient_descent_reaches_ridge(regression_data):
    """Our objective is  J(w, b) = (1/n) * sum_i 0.5 * (x_i.w + b - y_i)^2 + 0.5 * l2 * ||w||^2.
    scikit-learn's Ridge minimizes  R(w, b) = sum_i (x_i.w + b - y_i)^2 + alpha * ||w||^2,
    intercept unpenalized. 2n * J = sum_i (...)^2 + n * l2 * ||w||^2, so the minimizers coincide
    exactly when alpha = l2 * n_samples."""
    X, y = regression_data
    l2 = 0.5
    theta, _ = gradient_descent(X, y, l2=l2)
    reference = Ridge(alpha=l2 * X.shape[0]).fit(X, y)
    np.testing.assert_allclose(theta[:-1], reference.coef_, rtol=0, atol=1e-8)
    assert theta[-1] == pytest.approx(reference.intercept_, abs=1e-8)
    # The correspondence is not alpha = l2: that solution is measurably different.
    naive = Ridge(alpha=l2).fit(X, y)
    assert np.abs(naive.coef_ - theta[:-1]).max() > 1e-2
