"""The scikit-learn reference minimizes exactly our objective (its optimum has a zero gradient of ours)."""

from __future__ import annotations

import numpy as np
import pytest

from mlcore.math import linear
from mlcore.math.reference import differences, estimator, reference_metrics


def _data(model: str, n: int = 200, d: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    z = X @ rng.normal(size=d) + 0.5
    if model == "linear_regression":
        y = z + rng.normal(scale=0.3, size=n)
    elif model == "logistic_regression":
        y = (z + rng.normal(size=n) > 0).astype(float)
    else:
        y = np.digitize(z + rng.normal(size=n), [-1.0, 1.0]).astype(float)
    return np.column_stack([X, y])


@pytest.mark.parametrize("model", ["linear_regression", "logistic_regression", "softmax_regression"])
@pytest.mark.parametrize("l2", [0.0, 0.05])
def test_reference_optimum_is_a_stationary_point_of_our_objective(model, l2):
    data = _data(model)
    X, y = data[:, :-1], data[:, -1]
    est = estimator(model, l2, X.shape[0]).fit(X, y.astype(int) if model in linear.CLASSIFIERS else y)
    coef = np.atleast_2d(est.coef_)
    intercept = np.atleast_1d(est.intercept_)
    if model == "softmax_regression":
        theta = np.vstack([coef.T, intercept])
        k = coef.shape[0]
    else:
        theta = np.append(coef.ravel(), intercept)
        k = 1
    loss_sum, grad_sum = linear.loss_grad_sums(model, theta.ravel(), X, y)
    _, grad = linear.regularized_objective(loss_sum, grad_sum, X.shape[0], theta.ravel(), l2, k)
    assert np.abs(grad).max() < 1e-4


def test_reference_metrics_of_a_regression():
    train, test = _data("linear_regression"), _data("linear_regression", n=50, seed=1)
    ref = reference_metrics("linear_regression", 0.0, train, test)
    assert ref["estimator"].endswith("LinearRegression()") and ref["train_rows"] == 200
    assert set(ref["test"]) == {"r2", "rmse", "mae", "rows"}


def test_differences_are_ours_minus_the_reference_per_metric():
    assert differences({"r2": 0.5, "rmse": 1.0, "rows": 50}, {"r2": 0.25, "rmse": 1.5, "rows": 50}) == {
        "r2": 0.25,
        "rmse": -0.5,
    }


def test_reference_metrics_of_a_classifier():
    cls = reference_metrics(
        "softmax_regression", 0.01, _data("softmax_regression"), _data("softmax_regression", 60, 4, 2), 3
    )
    assert "C=" in cls["estimator"] and len(cls["test"]["confusion_matrix"]) == 3
