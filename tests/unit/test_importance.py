"""Permutation importance (math.importance, and the figures Evaluate records for an MLP in steps.evaluation): the
same figures as a straightforward loop with the same generator, one-hot features shuffled together, a column the
model ignores at exactly 0 and the dominant one first, and the cost bounded and recorded."""

from __future__ import annotations

import numpy as np
import pytest

from mlcore.math import importance, models
from mlcore.math.metrics import regression_metrics
from mlcore.math.preprocessing import CategoricalColumn, NumericColumn, Preprocessor
from mlcore.steps import evaluation


def _r2(X: np.ndarray, y: np.ndarray) -> float:
    return regression_metrics(y, X @ np.array([2.0, -1.0, 0.5, 0.5, 0.0]))["r2"]


def _data(rows: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 5))
    return X, X @ np.array([2.0, -1.0, 0.5, 0.5, 0.0]) + rng.normal(scale=0.1, size=rows)


def test_column_slices_follow_the_design_matrix_order():
    assert importance.column_slices([("a", 1), ("b", 3), ("c", 2)]) == [
        ("a", slice(0, 1)),
        ("b", slice(1, 4)),
        ("c", slice(4, 6)),
    ]
    with pytest.raises(ValueError, match="column 'b' makes 0 features; every column makes at least one"):
        importance.column_slices([("a", 1), ("b", 0)])


def test_the_figures_equal_a_straightforward_loop_with_the_same_generator():
    X, y = _data()
    columns = [("x0", slice(0, 1)), ("x1", slice(1, 2)), ("pair", slice(2, 4)), ("x4", slice(4, 5))]
    got = importance.permutation_importance(_r2, X, y, columns, repeats=4, max_rows=120, seed=7)

    rng = np.random.default_rng(7)
    rows = np.sort(rng.choice(len(X), size=120, replace=False))
    Xs, ys = X[rows], y[rows]
    base = _r2(Xs, ys)
    expected = []
    for name, cols in columns:
        drops = []
        for _ in range(4):
            order = rng.permutation(len(Xs))
            permuted = Xs.copy()
            for j in range(cols.start, cols.stop):  # every feature of the column by the same permutation
                permuted[:, j] = Xs[order, j]
            drops.append(base - _r2(permuted, ys))
        width = cols.stop - cols.start
        expected.append({"column": name, "features": width, "mean": np.mean(drops), "std": np.std(drops)})
    assert got == {"baseline": base, "rows": 120, "repeats": 4, "seed": 7, "columns": expected}
    # the same seed, the same figures; another seed, others
    assert importance.permutation_importance(_r2, X, y, columns, repeats=4, max_rows=120, seed=7) == got
    assert importance.permutation_importance(_r2, X, y, columns, repeats=4, max_rows=120, seed=8) != got


def test_every_row_is_scored_when_they_fit_and_the_input_is_left_alone():
    X, y = _data(rows=50)
    before = X.copy()
    got = importance.permutation_importance(_r2, X, y, [("x0", slice(0, 1))], repeats=2, max_rows=50, seed=0)
    assert got["rows"] == 50 and got["baseline"] == _r2(X, y)
    np.testing.assert_array_equal(X, before)


@pytest.mark.parametrize(("repeats", "max_rows"), [(0, 10), (3, 0)])
def test_repeats_and_rows_must_be_positive(repeats, max_rows):
    X, y = _data(rows=20)
    with pytest.raises(ValueError, match=f"repeats and max_rows must be at least 1, got {repeats} and {max_rows}"):
        importance.permutation_importance(_r2, X, y, [("x0", slice(0, 1))], repeats=repeats, max_rows=max_rows, seed=0)


def _preprocessor() -> Preprocessor:
    """Two numeric columns and one one-hot column of three categories: five features."""
    numeric = [NumericColumn(name=n, fill=0.0, mean=0.0, scale=1.0) for n in ("strong", "weak")]
    city = CategoricalColumn(name="city", fill="a", categories=["a", "b", "c"])
    return Preprocessor(target="y", columns=[*numeric, city])


def _regression_net() -> tuple[models.Net, np.ndarray]:
    """A relu network computing exactly 3 * strong + 0.5 * weak: hidden units relu(±strong), relu(±weak); the
    one-hot city features have zero weights."""
    layout = models.make_layout("mlp_regression", 5, 1, [4])
    W1 = np.zeros((6, 4))
    W1[0, :2] = [1.0, -1.0]
    W1[1, 2:] = [1.0, -1.0]
    W2 = np.array([[3.0], [-3.0], [0.5], [-0.5], [0.0]])
    return models.Net("mlp_regression", layout, "relu"), np.concatenate([W1.ravel(), W2.ravel()])


def _design(rows: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    city = np.eye(3)[rng.integers(0, 3, size=rows)]
    return np.column_stack([rng.normal(size=(rows, 2)), city])


def test_an_mlp_ignoring_a_column_gets_zero_for_it_and_the_dominant_column_ranks_first():
    net, theta = _regression_net()
    X = _design(400, 1)
    y = 3 * X[:, 0] + 0.5 * X[:, 1] + np.random.default_rng(2).normal(scale=0.1, size=400)
    got = evaluation.permutation_importance(net, theta, X, y, _preprocessor(), seed=3)
    by_column = {c["column"]: c for c in got["columns"]}
    assert [c["column"] for c in got["columns"]] == ["strong", "weak", "city"]
    assert by_column["city"] == {"column": "city", "features": 3, "mean": 0.0, "std": 0.0}
    assert by_column["strong"]["mean"] > 1.0 > by_column["weak"]["mean"] > 0.01
    assert got["metric"] == "r2" and got["baseline"] > 0.99
    assert (got["rows"], got["of"], got["repeats"], got["seed"]) == (400, 400, evaluation.PERMUTATION_REPEATS, 3)


def test_a_classifier_s_importance_is_its_drop_in_accuracy():
    layout = models.make_layout("mlp_classifier", 5, 2, [1])
    W1 = np.zeros((6, 1))
    W1[0, 0] = 1.0  # one hidden unit: relu(strong)
    W2 = np.array([[0.0, 1.0], [0.0, -1e-9]])  # class 1 when strong > 0
    net, theta = models.Net("mlp_classifier", layout, "relu"), np.concatenate([W1.ravel(), W2.ravel()])
    X = _design(300, 4)
    y = (X[:, 0] > 0).astype(np.float64)
    got = evaluation.permutation_importance(net, theta, X, y, _preprocessor(), seed=0)
    assert got["metric"] == "accuracy" and got["baseline"] == 1.0
    means = {c["column"]: c["mean"] for c in got["columns"]}
    assert means["weak"] == 0.0 and means["city"] == 0.0
    assert 0.35 < means["strong"] < 0.65  # a shuffled sign is right about half the time


def test_the_rows_scored_shrink_for_a_large_network_and_are_recorded(monkeypatch):
    net, theta = _regression_net()
    X = _design(evaluation.PERMUTATION_MAX_ROWS + 500, 5)
    y = 3 * X[:, 0]
    got = evaluation.permutation_importance(net, theta, X, y, _preprocessor(), seed=0)
    assert (got["rows"], got["of"]) == (evaluation.PERMUTATION_MAX_ROWS, len(X))
    scorings = 3 * evaluation.PERMUTATION_REPEATS + 1
    monkeypatch.setattr(evaluation, "PERMUTATION_BUDGET", net.n_params * scorings * 700)
    assert evaluation.permutation_importance(net, theta, X, y, _preprocessor(), seed=0)["rows"] == 700
    monkeypatch.setattr(evaluation, "PERMUTATION_BUDGET", 1)
    assert evaluation.permutation_importance(net, theta, X, y, _preprocessor(), seed=0)["rows"] == (
        evaluation.PERMUTATION_MIN_ROWS
    )
