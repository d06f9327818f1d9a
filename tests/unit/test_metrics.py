"""Regression metrics against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

from mlcore.math.metrics import regression_metrics


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.normal(loc=5.0, scale=3.0, size=57)
    y_pred = y_true + rng.normal(scale=1.5, size=57)
    m = regression_metrics(y_true, y_pred)
    assert m["r2"] == pytest.approx(r2_score(y_true, y_pred), rel=1e-12)
    assert m["rmse"] == pytest.approx(root_mean_squared_error(y_true, y_pred), rel=1e-12)
    assert m["mae"] == pytest.approx(mean_absolute_error(y_true, y_pred), rel=1e-12)
    assert m["rows"] == 57
    assert all(type(m[k]) is float for k in ("r2", "rmse", "mae"))


def test_small_hand_example():
    m = regression_metrics([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 6.0])
    # residuals 0, 0, 0, -2; ss_tot = 5
    assert m == {"r2": pytest.approx(1 - 4 / 5), "rmse": pytest.approx(1.0), "mae": pytest.approx(0.5), "rows": 4}


def test_worse_than_the_mean_gives_negative_r2():
    y_true = np.array([1.0, 2.0, 3.0])
    y_pred = np.array([3.0, 2.0, 1.0])
    assert regression_metrics(y_true, y_pred)["r2"] == pytest.approx(r2_score(y_true, y_pred)) == -3.0


def test_float32_inputs_are_computed_in_float64():
    rng = np.random.default_rng(3)
    y_true = rng.normal(size=1000).astype(np.float32)
    y_pred = (y_true + rng.normal(scale=0.1, size=1000)).astype(np.float32)
    m = regression_metrics(y_true, y_pred)
    y64, p64 = y_true.astype(np.float64), y_pred.astype(np.float64)
    assert m["rmse"] == pytest.approx(root_mean_squared_error(y64, p64), rel=1e-12)
    assert m["r2"] == pytest.approx(r2_score(y64, p64), rel=1e-12)


def test_constant_target_with_imperfect_predictions_matches_scikit_learn():
    y_true = np.array([2.0, 2.0, 2.0])
    y_pred = np.array([2.0, 2.5, 1.0])
    assert regression_metrics(y_true, y_pred)["r2"] == r2_score(y_true, y_pred) == 0.0


def test_constant_target_with_perfect_predictions_matches_scikit_learn():
    y = np.array([2.0, 2.0, 2.0])
    assert regression_metrics(y, y.copy())["r2"] == r2_score(y, y.copy()) == 1.0


@pytest.mark.parametrize(
    ("y_true", "y_pred"),
    [
        ([], []),
        ([1.0, 2.0, 3.0], [1.0, 2.0]),
        ([1.0, 2.0, 3.0], [[1.0], [2.0], [3.0]]),
        (np.zeros((0, 2)), np.zeros((0, 2))),
    ],
    ids=["empty", "different-length", "different-shape", "empty-2d"],
)
def test_rejects_empty_or_mismatched(y_true, y_pred):
    with pytest.raises(ValueError, match="^y_true and y_pred must be non-empty and of the same shape$"):
        regression_metrics(y_true, y_pred)
