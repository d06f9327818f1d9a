"""Cross-validated selection of a tuning job's best trial: the folds, the one-standard-error choice on the
cross-validated loss, the out-of-fold losses (against scikit-learn's Ridge per fold) and the in-process engine loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from mlcore.infra.storage import MemoryStore
from mlcore.math import tuning
from mlcore.math.metrics import holdout_losses
from mlcore.steps import crossval
from mlcore.steps.schemas import Hyperparameters


@pytest.mark.parametrize(("rows", "folds"), [(10, 5), (353, 5), (7, 2)])
def test_every_row_is_out_of_fold_exactly_once_in_folds_of_equal_size(rows, folds):
    assigned = tuning.fold_assignment(rows, folds, seed=3)
    assert assigned.shape == (rows,) and set(assigned.tolist()) == set(range(folds))
    sizes = np.bincount(assigned, minlength=folds)
    assert sizes.sum() == rows and sizes.max() - sizes.min() <= 1
    assert np.array_equal(assigned, tuning.fold_assignment(rows, folds, seed=3))  # seeded
    assert not np.array_equal(assigned, tuning.fold_assignment(rows, folds, seed=4))
    assert not np.array_equal(assigned, np.arange(rows) % folds)  # shuffled, not in file order


def test_fold_assignment_and_holdout_split_refuse_what_cannot_be_split():
    with pytest.raises(ValueError, match="2 <= folds <= rows"):
        tuning.fold_assignment(4, 5, 0)
    with pytest.raises(ValueError, match="0 < fraction < 1"):
        tuning.holdout_split(10, 0.0, 0)


def test_the_holdout_split_is_seeded_and_disjoint():
    train, held = tuning.holdout_split(50, 0.2, seed=1)
    assert len(held) == 10 and len(train) == 40
    assert sorted([*train, *held]) == list(range(50))
    assert np.array_equal(held, tuning.holdout_split(50, 0.2, seed=1)[1])
    assert len(tuning.holdout_split(3, 0.01, seed=1)[1]) == 1  # one validation row at least


def _finalist(trial, loss, se, model="linear_regression", hidden=None):
    hp = {"model": model, **({"hidden_layers": hidden} if hidden else {})}
    return {"trial": trial, "cv_loss": loss, "cv_loss_se": se, "hyperparameters": hp}


def test_the_simplest_finalist_within_one_standard_error_of_the_lowest_cross_validated_loss_is_chosen():
    finalists = [
        _finalist(4, 1.10, 0.05, "mlp_regression", [64]),  # the validation split's best
        _finalist(2, 1.00, 0.08, "mlp_regression", [64, 64]),  # the lowest cross-validated loss
        _finalist(0, 1.07, 0.02),  # linear, within 1.00 + 0.08
        _finalist(1, 1.05, 0.02, "mlp_regression", [8]),
    ]
    assert tuning.select_cross_validated(finalists, 5) == (2, (
        "the simplest of the 4 finalists within one standard error (0.08) of the lowest 5-fold cross-validated "
        "loss (1, trial 2)"))  # fmt: skip
    finalists[2]["cv_loss"] = 1.09  # beyond it: the network with the fewest units within it
    assert tuning.select_cross_validated(finalists, 5)[0] == 3
    alone = [_finalist(4, 0.9, 0.01, "mlp_regression", [64]), _finalist(0, 1.0, 0.01)]
    assert tuning.select_cross_validated(alone, 5) == (0, "the lowest 5-fold cross-validated loss (0.9) of the 2 "
                                                           "finalists")  # fmt: skip


def test_a_finalist_whose_fold_runs_diverged_is_never_chosen():
    finalists = [_finalist(1, math.inf, math.inf), _finalist(3, 2.0, 0.1, "mlp_regression", [8])]
    assert tuning.select_cross_validated(finalists, 5)[0] == 1


def test_select_keeps_its_rule_through_the_shared_one_standard_error_function():
    assert tuning.one_standard_error([(1.0, 0.1, 64), (1.05, 0.0, 16), (1.08, 0.0, 0), (1.09, 0.0, 0)]) == 2
    assert tuning.one_standard_error([(math.inf, 0.0, 0), (2.0, 0.0, 8)]) == 1


def _rows(n=60, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = X @ np.array([1.5, -2.0, 0.5]) + 3.0 + rng.normal(scale=0.7, size=n)
    return np.column_stack([X, y]).astype(np.float32)


def test_a_linear_trial_s_out_of_fold_losses_are_those_of_ridge_fitted_per_fold():
    rows, seed, l2 = _rows(), 7, 0.05
    hp = Hyperparameters(model="linear_regression", solver="exact", l2=l2, patience=10, max_epochs=3)
    [scored] = crossval.cross_validate(
        rows, [(5, hp)], n_classes=0, n_shards=2, validation_fraction=0.2, seed=seed, run_prefix="tune-x"
    )
    X, y = rows[:, :-1].astype(np.float64), rows[:, -1].astype(np.float64)
    predicted = np.zeros(len(y))
    folds = tuning.fold_assignment(len(y), crossval.FOLDS, seed)
    for fold in range(crossval.FOLDS):
        inside, outside = np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)
        fit, _ = tuning.holdout_split(len(inside), 0.2, seed + 1 + fold)  # the rows a fold trains on
        ridge = Ridge(alpha=l2 * len(fit)).fit(X[inside[fit]], y[inside[fit]])
        predicted[outside] = ridge.predict(X[outside])
    losses = (y - predicted) ** 2
    assert scored["trial"] == 5
    assert scored["cv_loss"] == pytest.approx(losses.mean(), rel=1e-5)
    assert scored["cv_loss_se"] == pytest.approx(losses.std(ddof=1) / np.sqrt(len(y)), rel=1e-5)
    assert scored["cv_metric"] == pytest.approx(1 - losses.sum() / ((y - y.mean()) ** 2).sum(), rel=1e-5)


def test_a_finalist_whose_fold_run_diverges_gets_an_infinite_loss_not_a_crash():
    rows = _rows()
    rows[:, -1] *= 1e3
    wild = Hyperparameters(model="linear_regression", solver="sgd", optimizer="sgd", learning_rate=10, max_epochs=5)
    exact = Hyperparameters(model="linear_regression", solver="exact", max_epochs=3)
    scored = crossval.cross_validate(
        rows, [(0, wild), (1, exact)], n_classes=0, n_shards=1, validation_fraction=0.2, seed=0, run_prefix="t"
    )
    assert scored[0] == {"trial": 0, "cv_loss": math.inf, "cv_loss_se": math.inf, "cv_metric": None}
    assert math.isfinite(scored[1]["cv_loss"])


def test_a_classifier_s_out_of_fold_loss_is_the_log_loss_of_the_true_class():
    rows = _rows(80)
    rows[:, -1] = (rows[:, 0] + 0.3 * rows[:, 1] > 0).astype(np.float32)
    hp = Hyperparameters(model="logistic_regression", solver="newton", l2=0.01, patience=10, max_epochs=20)
    [scored] = crossval.cross_validate(
        rows, [(0, hp)], n_classes=2, n_shards=2, validation_fraction=0.2, seed=1, run_prefix="t"
    )
    assert 0 < scored["cv_loss"] < np.log(2) and 0.8 <= scored["cv_metric"] <= 1.0


def test_holdout_losses_are_squared_errors_or_the_log_loss_of_the_true_class():
    losses, r2 = holdout_losses(np.array([1.0, 3.0]), np.array([2.0, 3.0]), classifier=False)
    assert losses.tolist() == [1.0, 0.0] and r2 == pytest.approx(0.5)
    proba = np.array([[0.8, 0.2], [0.25, 0.75], [0.9, 0.1]])
    losses, accuracy = holdout_losses(np.array([0.0, 1.0, 1.0]), proba, classifier=True)
    assert losses == pytest.approx(-np.log([0.8, 0.75, 0.1])) and accuracy == pytest.approx(2 / 3)
    assert math.isnan(holdout_losses(np.array([1.0, 2.0]), np.array([np.inf, 0.0]), classifier=False)[1])


def test_the_in_process_loop_stops_early_on_its_validation_block_and_keeps_the_best_round():
    rows = _rows(200, seed=2)
    train, validation = rows[:40], rows[40:]  # few rows to fit 64 units: the validation loss turns up
    hp = Hyperparameters(model="mlp_regression", hidden_layers=[64], solver="lbfgs", patience=2, max_epochs=200)
    store = MemoryStore()
    theta, rounds, reason = crossval.run_in_process(store, "run-x", [train[:20], train[20:]], validation, 1, hp, 0)
    assert reason == "early_stopping" and rounds < 200
    last = store.get_json(store.list_keys("runs/run-x/rounds/")[-1])
    best = last["best_validation"]["round"]
    assert last["round"] - best == 2
    assert np.array_equal(theta, store.get_arrays(f"runs/run-x/params/round-{best:05d}.npz")["theta"].ravel())
    [block] = [k for k in store.list_keys("scratch/") if k.endswith(".npy")]
    assert block.startswith("scratch/run-x/validation-")


def _entry(trial: int, model: str, loss: float | None, mode: str = "sync") -> dict:
    return {"trial": trial, "mode": mode, "validation_loss": loss, "hyperparameters": {"model": model}}


def test_the_finalists_hold_the_best_trial_of_every_family_even_below_the_top_four():
    # breast cancer's board: networks in the first five places, the best logistic trial sixth
    board = [_entry(t, "mlp_classifier", 0.01 * (t + 1)) for t in range(5)]
    board += [_entry(9, "logistic_regression", 0.056), _entry(8, "logistic_regression", 0.058)]
    assert [e["trial"] for e in crossval.finalists(board)] == [0, 1, 2, 9]
    # async trials, unknown and infinite losses are left out; with one family the top four
    board = [_entry(0, "mlp_classifier", 0.01, "async"), _entry(1, "mlp_classifier", None)]
    board += [_entry(2, "mlp_classifier", math.inf)] + [_entry(t, "mlp_classifier", 0.1 * t) for t in range(3, 9)]
    assert [e["trial"] for e in crossval.finalists(board)] == [3, 4, 5, 6]
    # fewer trials than finalists: all of them
    assert [e["trial"] for e in crossval.finalists(board[3:5])] == [3, 4]
