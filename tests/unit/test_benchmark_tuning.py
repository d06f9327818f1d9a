"""benchmarks/tuning.py's pure helpers: the product's split reproduced for scikit-learn (the same rows as the real
preparation writes), the trivial baseline, the extrapolation of worker-seconds to every trial completed, the table."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import tuning as bench
from mlcore.infra import layout
from mlcore.steps import problem, tabular
from mlcore.steps.preparation import in_memory
from mlcore.steps.schemas import TrainingRequest
from tests.unit.fakes import FakeStore


def _csv(n: int = 120, classes: int = 0, seed: int = 3) -> bytes:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = rng.integers(0, classes, n) if classes else X @ [1.0, -2.0, 0.5] + rng.normal(size=n)
    return bench._csv(X, y, integer_target=bool(classes))


@pytest.mark.parametrize("classes", [0, 2, 3])
def test_product_split_is_the_rows_the_preparation_writes(classes):
    csv = _csv(classes=classes)
    found = tabular.scan(lambda: iter([csv]))
    meta = {"dataset": "d", "version": "v1", "rows": found.rows, "columns": found.columns, "format": "csv",
            "key": "raw/d/v1/data.csv", "sha256": "0", "bytes": len(csv)}  # fmt: skip
    store = FakeStore()
    store.objects["raw/d/v1/data.csv"] = csv
    request = TrainingRequest.model_validate(
        {"dataset": "d", "target": "target", "model_name": "m", "n_shards": 2, "validation_fraction": 0.2}
    )
    request, _ = problem.setup(request, meta)
    in_memory.preprocess_in_memory(store, request, "run-1", meta)

    split = bench.product_split(csv, "target", test_fraction=0.2, validation_fraction=0.2, seed=0)

    assert split.task == {0: "regression", 2: "binary", 3: "multiclass"}[classes]
    test = store.arrays[layout.held_out_key("run-1", "test")]
    validation = store.arrays[layout.held_out_key("run-1", "validation")]
    for block, X, y in ((test, split.X_test, split.y_test), (validation, split.X_validation, split.y_validation)):
        np.testing.assert_array_equal(block[:, :-1], X)
        np.testing.assert_array_equal(block[:, -1], y)
    train = np.vstack([store.arrays[layout.shard_key("run-1", i)] for i in range(2)])
    np.testing.assert_array_equal(train, np.column_stack([split.X_train, split.y_train]))
    assert (len(split.y_train), len(split.y_validation), len(split.y_test)) == (
        77,
        19,
        24,
    )  # validation: 0.2 of the 96 non-test rows


def test_baseline_is_the_training_mean_or_majority():
    z = np.zeros((4, 1), np.float32)
    regression = bench.Split("regression", z, np.array([1.0, 3.0, 5.0, 7.0]), z, np.zeros(4), z,
                             np.array([2.0, 4.0, 6.0, 8.0]))  # fmt: skip
    # mean 4: residuals -2, 0, 2, 4 -> 24 against 20 about the test mean 5
    assert bench.baseline(regression) == pytest.approx(1 - 24 / 20)
    classes = bench.Split("multiclass", z, np.array([2, 2, 1, 0]), z, np.zeros(4), z, np.array([2, 1, 2, 2]))
    assert bench.baseline(classes) == 0.75


def test_suite_best_on_test_and_by_validation():
    suite = bench.Suite({"RidgeCV": (0.9, 0.50), "MLPRegressor(64,) alpha 0.01": (0.8, 0.61)}, baseline=-0.01)
    assert suite.best == ("MLPRegressor(64,) alpha 0.01", 0.61)
    assert suite.by_validation == ("RidgeCV", 0.50)
    tie = bench.Suite({"LogisticRegressionCV": (1.0, 1.0), "MLPClassifier(64,) alpha 0.0001": (1.0, 0.97)}, 0.4)
    assert tie.by_validation == ("LogisticRegressionCV", 1.0)


def test_complete_seconds_scales_only_the_trials_a_budget_stopped():
    board = [
        {"run_id": "a", "status": "completed", "epochs": 135, "stop_reason": "max_epochs"},  # already complete
        {"run_id": "b", "status": "stopped_early", "epochs": 15, "stop_reason": "successive halving: ..."},  # x9
        {"run_id": "c", "status": "stopped_early", "epochs": 45, "stop_reason": "successive halving: ..."},  # x3
        {"run_id": "d", "status": "completed", "epochs": 3, "stop_reason": "solved"},  # ended on its own
        {"run_id": "e", "status": "failed", "epochs": 0, "stop_reason": "TrainingDiverged: ..."},
        {"run_id": "f", "status": "completed", "epochs": 12, "stop_reason": "converged"},
    ]
    seconds = {"a": 10.0, "b": 1.0, "c": 2.0, "d": 0.5, "e": 0.25, "f": 4.0}
    assert bench.complete_seconds(board, seconds, 135) == pytest.approx(10 + 9 + 6 + 0.5 + 0.25 + 4)


def test_epochs_ratio_spreads_every_trials_epochs_over_the_slots():
    board = [{"epochs": 135}, {"epochs": 45}, {"epochs": 15}, {"epochs": 15}, {"epochs": 0}, {"epochs": None}]
    assert bench.epochs_ratio(board, parallel=2, single_epochs=105) == pytest.approx(210 / 2 / 105)


def test_format_table_pads_columns():
    text = bench.format_table([["wine", "1.0000"], ["diabetes", "0.52"]], ["data set", "r2"])
    assert text.splitlines() == [
        "data set      r2",
        "--------  ------",
        "wine      1.0000",
        "diabetes    0.52",
    ]


def test_quick_and_default_requests():
    assert bench._request(quick=False) == {}  # dataset, target and model_name only: the default search space
    assert bench._request(quick=True) == {
        "max_trials": 4, "max_parallel_trials": 2, "min_epochs": 3, "max_epochs": 9
    }  # fmt: skip


def test_the_report_says_how_the_best_trial_was_chosen():
    cv = {"cross_validation": [{"trial": 1}, {"trial": 4}], "cross_validation_seconds": 2.6666}
    assert bench.cross_validation(cv) == "5-fold CV of 2, 2.7 s"
    assert bench.cross_validation({"trial": 0, "selected_because": "the lowest validation loss"}) == "validation split"
