"""Train/test split and the matrices written as shards (pure parts of the Preprocess step)."""

from __future__ import annotations

import numpy as np
import pytest

from mlcore.infra import layout
from mlcore.infra.errors import InvalidInput
from mlcore.steps.preparation import in_memory, shared


@pytest.mark.parametrize(("n_rows", "fraction", "n_test"), [(100, 0.2, 20), (7, 0.3, 2), (10, 0.25, 2), (3, 0.2, 1)])
def test_split_is_disjoint_and_complete(n_rows, fraction, n_test):
    train, test = in_memory.split_indices(n_rows, fraction, seed=5)
    assert len(test) == n_test == round(n_rows * fraction)
    assert len(train) == n_rows - n_test
    assert not set(train.tolist()) & set(test.tolist())
    assert sorted([*train.tolist(), *test.tolist()]) == list(range(n_rows))


def test_split_is_deterministic_per_seed():
    a = in_memory.split_indices(50, 0.2, seed=11)
    b = in_memory.split_indices(50, 0.2, seed=11)
    c = in_memory.split_indices(50, 0.2, seed=12)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert set(a[1].tolist()) != set(c[1].tolist())
    # shuffled, not the first or last rows
    assert sorted(a[1].tolist()) not in (list(range(10)), list(range(40, 50)))


@pytest.mark.parametrize(("n_rows", "fraction"), [(2, 0.2), (3, 0.5), (10, 0.01), (0, 0.5)])
def test_split_too_small(n_rows, fraction):
    with pytest.raises(
        InvalidInput, match=rf"^{n_rows} usable rows are too few to split with test_fraction={fraction}$"
    ):
        in_memory.split_indices(n_rows, fraction, seed=0)


@pytest.fixture
def data():
    rng = np.random.default_rng(3)
    n = 40
    x1 = rng.normal(loc=10.0, scale=4.0, size=n)
    x1[[3, 17]] = np.nan
    x2 = rng.exponential(scale=5.0, size=n)
    city = np.array([["a", "b", "c"][i % 3] for i in range(n)], dtype=object)
    city[5] = None
    y = 2.0 * np.nan_to_num(x1) + x2 + rng.normal(size=n)
    y[[0, 9, 21]] = np.nan
    columns = {"x1": x1, "x2": x2, "city": city, "y": y}
    kinds = {"x1": "numeric", "x2": "numeric", "city": "categorical", "y": "numeric"}
    return columns, kinds


def test_target_not_in_data_set(data):
    columns, kinds = data
    with pytest.raises(
        InvalidInput, match=r"^target column 'price' is not in the data set \(columns: x1, x2, city, y\)$"
    ):
        in_memory.build_matrices(columns, kinds, "price", 0.2, 0)


def test_non_numeric_target(data):
    columns, kinds = data
    with pytest.raises(InvalidInput, match="^target column 'city' must be numeric for regression$"):
        in_memory.build_matrices(columns, kinds, "city", 0.2, 0)


def test_infinite_or_empty_target(data):
    columns, kinds = data
    y = columns["y"].copy()
    y[4] = np.inf
    with pytest.raises(InvalidInput, match="^target column 'y' contains infinite values$"):
        in_memory.build_matrices({**columns, "y": y}, kinds, "y", 0.2, 0)
    with pytest.raises(InvalidInput, match="^target column 'y' has no values$"):
        in_memory.build_matrices({**columns, "y": np.full(40, np.nan)}, kinds, "y", 0.2, 0)


def test_rows_without_a_target_are_dropped(data):
    columns, kinds = data
    _, train, test, dropped, _ = in_memory.build_matrices(columns, kinds, "y", 0.2, seed=1)
    assert dropped == 3
    assert train.shape[0] + test.shape[0] == 37
    assert test.shape[0] == round(37 * 0.2)


def test_blocks_are_float32_features_then_the_raw_target(data):
    columns, kinds = data
    prep, train, test, _, _ = in_memory.build_matrices(columns, kinds, "y", 0.2, seed=1)
    assert train.dtype == test.dtype == np.float32
    assert train.shape[1] == test.shape[1] == len(prep.feature_names) + 1 == 2 + 3 + 1
    assert not np.isnan(train).any() and not np.isnan(test).any()
    # the last column is the raw target of the kept rows
    kept_y = columns["y"][~np.isnan(columns["y"])]
    np.testing.assert_allclose(sorted([*train[:, -1], *test[:, -1]]), sorted(kept_y.astype(np.float32)))


def test_statistics_are_fitted_on_training_rows_only(data):
    columns, kinds = data
    seed = 4
    prep, train, test, _, _ = in_memory.build_matrices(columns, kinds, "y", 0.25, seed)
    # Standardized training features: mean 0, std 1 (float32 blocks).
    np.testing.assert_allclose(train[:, :2].mean(axis=0), [0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(train[:, :2].std(axis=0), [1.0, 1.0], rtol=1e-5)

    # The same statistics computed independently from the training rows.
    keep = ~np.isnan(columns["y"])
    train_idx, test_idx = in_memory.split_indices(int(keep.sum()), 0.25, seed)
    x2_train = columns["x2"][keep][train_idx]
    x2 = prep.columns[1]
    assert x2.name == "x2"
    assert x2.mean == pytest.approx(x2_train.mean(), rel=1e-12)
    assert x2.scale == pytest.approx(x2_train.std(), rel=1e-12)
    # ... which are not the all-rows statistics, so the check above can tell them apart.
    assert x2.mean != pytest.approx(columns["x2"][keep].mean(), rel=1e-3)
    x1_train = columns["x1"][keep][train_idx]
    assert prep.columns[0].fill == pytest.approx(np.nanmedian(x1_train), rel=1e-12)

    # Test rows are transformed with the training statistics (so their mean is not exactly 0).
    x2_test = columns["x2"][keep][test_idx]
    np.testing.assert_allclose(test[:, 1], (x2_test - x2_train.mean()) / x2_train.std(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(test[:, -1], columns["y"][keep][test_idx], rtol=1e-6)


def test_validation_rows_come_out_of_the_training_rows(data):
    columns, kinds = data
    plain = in_memory.build_matrices(columns, kinds, "y", 0.2, 0)
    held = in_memory.build_matrices(columns, kinds, "y", 0.2, 0, validation_fraction=0.25)
    assert held.validation.shape[0] + held.train.shape[0] == plain.train.shape[0]
    assert held.test.shape == plain.test.shape  # the test split does not move
    with pytest.raises(InvalidInput, match="too few for validation_fraction"):
        in_memory.build_matrices(columns, kinds, "y", 0.2, 0, validation_fraction=0.001)


def test_values_beyond_float32_are_refused_not_stored_as_inf():
    columns = {"x": np.arange(10, dtype=float), "y": np.array([1.0] * 9 + [1e300])}
    with pytest.raises(InvalidInput, match=r"values of y exceed the float32 range"):
        in_memory.build_matrices(columns, {"x": "numeric", "y": "numeric"}, "y", 0.2, 0)


@pytest.mark.parametrize(("rows", "n_shards"), [(10, 3), (7, 7), (1000, 16), (5, 1)])
def test_the_shard_plan_splits_rows_as_evenly_as_numpy(rows, n_shards):
    plan = shared.plan_shards("r", rows, n_shards)
    assert [s.rows for s in plan] == [len(p) for p in np.array_split(np.arange(rows), n_shards)]
    assert [s.key for s in plan] == [layout.shard_key("r", i) for i in range(n_shards)]


def test_more_shards_than_training_rows_are_refused():
    with pytest.raises(InvalidInput, match="^n_shards=6 is more than the 5 training rows$"):
        shared.plan_shards("r", 5, 6)


def test_a_failed_preparation_deletes_every_key_it_may_have_written():
    plan = shared.plan_shards("r", 10, 2)
    written = shared.written_keys("r", plan)
    assert set(written) >= {s.key for s in plan} | {layout.manifest_key("r"), layout.shard_list_key("r")}
    assert set(written) >= {layout.held_out_key("r", "test"), layout.held_out_key("r", "validation")}
    assert all(k.startswith("processed/r/") for k in written)
