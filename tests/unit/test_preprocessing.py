"""Feature transform: fitted statistics vs scikit-learn, encoding rules, errors, and train/serve parity."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.preprocessing import StandardScaler

from mlcore.infra.errors import InvalidInput
from mlcore.math import preprocessing
from mlcore.math.preprocessing import CategoricalColumn, NumericColumn, Preprocessor

NAN = np.nan


def obj(*values):
    return np.array(values, dtype=object)


@pytest.fixture
def train_columns():
    """As training gives them (tabular.to_columns): float64 with NaN, object arrays with None."""
    return {
        "sqft": np.array([1.0, NAN, 3.0, 10.0, 4.0, 7.5]),
        "flat": np.array([2.0, 2.0, NAN, 2.0, 2.0, 2.0]),
        "city": obj("b", "a", None, "b", "a", "c"),  # a and b tie at 2: fill is "a"
        "kind": obj("z", "z", "y", None, "z", "x"),  # z is most frequent, though not first alphabetically
        "price": np.array([10.0, 20.0, 30.0, 40.0, 50.0, 60.0]),
    }


KINDS = {"sqft": "numeric", "flat": "numeric", "city": "categorical", "kind": "categorical", "price": "numeric"}


@pytest.fixture
def prep(train_columns):
    return preprocessing.fit(train_columns, KINDS, target="price")


def test_fitted_statistics(prep):
    assert prep.target == "price"
    assert prep.input_names == ["sqft", "flat", "city", "kind"]
    assert prep.feature_names == ["sqft", "flat", "city=a", "city=b", "city=c", "kind=x", "kind=y", "kind=z"]
    sqft, flat, city, kind = prep.columns
    assert isinstance(sqft, NumericColumn)
    assert sqft.fill == np.median([1.0, 3.0, 10.0, 4.0, 7.5]) == 4.0
    assert isinstance(flat, NumericColumn)
    assert (flat.fill, flat.mean, flat.scale) == (2.0, 2.0, 1.0)
    assert isinstance(city, CategoricalColumn)
    assert city.categories == ["a", "b", "c"]
    assert city.fill == "a"
    assert isinstance(kind, CategoricalColumn)
    assert kind.categories == ["x", "y", "z"]
    assert kind.fill == "z"


def test_numeric_standardization_equals_standard_scaler_on_imputed_column(prep, train_columns):
    imputed = np.where(np.isnan(train_columns["sqft"]), 4.0, train_columns["sqft"])
    scaler = StandardScaler().fit(imputed[:, None])
    sqft = prep.columns[0]
    assert sqft.mean == pytest.approx(scaler.mean_[0], rel=1e-15)
    assert sqft.scale == pytest.approx(scaler.scale_[0], rel=1e-15)
    X = prep.transform(train_columns)
    np.testing.assert_allclose(X[:, 0], scaler.transform(imputed[:, None])[:, 0], rtol=1e-14, atol=1e-15)


def test_constant_column_gets_unit_scale_like_scikit_learn(prep):
    # StandardScaler does the same for a zero-variance column.
    assert prep.columns[1].scale == StandardScaler().fit(np.full((6, 1), 2.0)).scale_[0] == 1.0


def test_constant_column_transforms_to_zeros(prep, train_columns):
    X = prep.transform(train_columns)
    assert np.isfinite(X).all()
    np.testing.assert_array_equal(X[:, 1], np.zeros(6))


def test_constant_column_with_rounding_noise_still_gets_unit_scale():
    prep = preprocessing.fit({"x": np.full(7, 0.1), "y": np.arange(7.0)}, {"x": "numeric", "y": "numeric"}, "y")
    assert prep.columns[0].scale == 1.0  # std is ~1e-17 from rounding, not a real spread
    # (0.1 - mean) is rounding noise of order 1e-17: it is not blown up by dividing by a tiny std
    np.testing.assert_allclose(prep.transform({"x": np.full(3, 0.1)}), np.zeros((3, 1)), rtol=0, atol=1e-15)


def test_one_hot_encoding_imputes_missing_categories_leaving_unseen_ones_all_zero(prep):
    X = prep.transform(
        {
            "sqft": np.array([4.0, 4.0, 4.0]),
            "flat": np.array([2.0, 2.0, 2.0]),
            "city": obj("c", None, "paris"),
            "kind": obj("", "y", "z"),
        }
    )
    np.testing.assert_array_equal(X[:, 2:5], [[0, 0, 1], [1, 0, 0], [0, 0, 0]])  # None -> fill "a"; unseen -> 0
    np.testing.assert_array_equal(X[:, 5:8], [[0, 0, 1], [0, 1, 0], [0, 0, 1]])  # "" is missing -> fill "z"


def test_missing_numeric_is_imputed_with_training_median(prep):
    X = prep.transform(
        {"sqft": np.array([NAN, 4.0]), "flat": np.array([NAN, NAN]), "city": obj("a", "a"), "kind": obj("x", "x")}
    )
    assert X[0, 0] == X[1, 0]
    np.testing.assert_array_equal(X[:, 1], [0.0, 0.0])


def test_full_transform_by_hand(prep, train_columns):
    sqft = prep.columns[0]
    X = prep.transform(train_columns)
    expected = np.array(
        [
            [(1.0 - sqft.mean) / sqft.scale, 0, 0, 1, 0, 0, 0, 1],
            [(4.0 - sqft.mean) / sqft.scale, 0, 1, 0, 0, 0, 0, 1],
            [(3.0 - sqft.mean) / sqft.scale, 0, 1, 0, 0, 0, 1, 0],
            [(10.0 - sqft.mean) / sqft.scale, 0, 0, 1, 0, 0, 0, 1],
            [(4.0 - sqft.mean) / sqft.scale, 0, 1, 0, 0, 0, 0, 1],
            [(7.5 - sqft.mean) / sqft.scale, 0, 0, 0, 1, 1, 0, 0],
        ]
    )
    assert X.dtype == np.float64
    np.testing.assert_allclose(X, expected, rtol=1e-15)
    X32 = prep.transform(train_columns, dtype=np.float32)
    assert X32.dtype == np.float32
    np.testing.assert_allclose(X32, expected, rtol=1e-6)


def test_category_limit():
    values = obj(*[f"c{i:02d}" for i in range(51)])
    kinds = {"city": "categorical", "y": "numeric"}
    with pytest.raises(InvalidInput, match=r"^column 'city' has 51 categories, more than the limit of 50; "):
        preprocessing.fit({"city": values, "y": np.arange(51.0)}, kinds, "y")
    prep = preprocessing.fit({"city": values[:50], "y": np.arange(50.0)}, kinds, "y")
    assert len(prep.feature_names) == 50
    with pytest.raises(InvalidInput, match=r"^column 'city' has 4 categories, more than the limit of 3; "):
        preprocessing.fit({"city": obj("a", "b", "c", "d"), "y": np.arange(4.0)}, kinds, "y", max_categories=3)


@pytest.mark.parametrize("bad", [np.inf, -np.inf])
def test_infinite_values_are_rejected(prep, bad):
    with pytest.raises(InvalidInput, match="^column 'x' contains infinite values$"):
        preprocessing.fit({"x": np.array([1.0, bad, 2.0]), "y": np.zeros(3)}, {"x": "numeric", "y": "numeric"}, "y")
    with pytest.raises(InvalidInput, match="^column 'sqft' contains infinite values$"):
        prep.transform({"sqft": [1.0, bad], "flat": [2.0, 2.0], "city": ["a", "a"], "kind": ["x", "x"]})


def test_missing_column_at_transform_is_named(prep):
    with pytest.raises(InvalidInput, match="^missing feature column\\(s\\): flat, kind$"):
        prep.transform({"sqft": [1.0], "city": ["a"]})


def test_non_numeric_value_in_numeric_column(prep):
    with pytest.raises(InvalidInput, match="^column 'sqft' must be numeric: "):
        prep.transform({"sqft": [1.0, "big"], "flat": [2.0, 2.0], "city": ["a", "a"], "kind": ["x", "x"]})


def test_columns_of_different_lengths(prep):
    with pytest.raises(InvalidInput, match="^column 'city' has 1 values, expected 2$"):
        prep.transform({"sqft": [1.0, 2.0], "flat": [2.0, 2.0], "city": ["a"], "kind": ["x", "x"]})


def test_fit_errors():
    kinds = {"x": "numeric", "c": "categorical", "y": "numeric"}
    good = {"x": np.array([1.0, 2.0]), "c": obj("a", "b"), "y": np.array([1.0, 2.0])}
    with pytest.raises(InvalidInput, match="^column 'x' has no values in the training split$"):
        preprocessing.fit({**good, "x": np.array([NAN, NAN])}, kinds, "y")
    with pytest.raises(InvalidInput, match="^column 'c' has no values in the training split$"):
        preprocessing.fit({**good, "c": obj(None, "")}, kinds, "y")
    with pytest.raises(InvalidInput, match="^column 'c': unknown kind 'date'$"):
        preprocessing.fit(good, {**kinds, "c": "date"}, "y")
    with pytest.raises(InvalidInput, match="^the data set has no feature columns besides the target$"):
        preprocessing.fit(good, {"y": "numeric"}, "y")


def test_target_is_not_a_feature(prep):
    assert "price" not in prep.input_names
    # Transform does not need the target column.
    prep.transform({"sqft": [1.0], "flat": [2.0], "city": ["a"], "kind": ["x"]})


def test_round_trip_through_json_gives_identical_transforms(prep, train_columns):
    document = json.loads(json.dumps(prep.model_dump()))
    restored = Preprocessor.model_validate(document)
    assert restored == prep
    assert Preprocessor.model_validate_json(prep.model_dump_json()) == prep
    assert [type(c) for c in restored.columns] == [NumericColumn, NumericColumn, CategoricalColumn, CategoricalColumn]
    np.testing.assert_array_equal(restored.transform(train_columns), prep.transform(train_columns))


def test_serving_lists_and_training_arrays_give_the_same_matrix(prep, train_columns):
    """Train/serve skew check: the same rows as training gives them (numpy, NaN/None) and as the
    Predict function gives them (lists of JSON values, None for missing, ints allowed)."""
    restored = Preprocessor.model_validate(json.loads(json.dumps(prep.model_dump())))
    serving_columns = {
        "sqft": [1, None, 3, 10.0, 4, 7.5],
        "flat": [2, 2.0, None, 2, 2, 2],
        "city": ["b", "a", None, "b", "a", "c"],
        "kind": ["z", "z", "y", None, "z", "x"],
    }
    training = prep.transform({n: train_columns[n] for n in prep.input_names})
    served = restored.transform(serving_columns)
    np.testing.assert_array_equal(served, training)
    # and with extra columns (the target) present, order of the mapping irrelevant
    np.testing.assert_array_equal(prep.transform(dict(reversed(list(train_columns.items())))), training)


def test_numeric_scale_must_be_positive():
    with pytest.raises(ValueError, match="greater than 0"):
        NumericColumn(name="x", fill=0.0, mean=0.0, scale=0.0)


def test_moments_in_chunks_with_constants_equal_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 3.0, size=100_001)
    moments = preprocessing.Moments()
    for chunk in np.array_split(x, 7):
        moments.add(chunk)
    moments.add(np.empty(0))
    moments.add_constant(-2.5, 10)
    reference = np.concatenate([x, np.full(10, -2.5)])
    assert moments.n == reference.size
    assert moments.mean == pytest.approx(reference.mean(), rel=1e-13)
    assert moments.std == pytest.approx(reference.std(), rel=1e-13)


def test_huge_values_standardize_without_overflow():
    """Values near 1e200: x² overflows float64, so a sum-of-squares std is inf and zeroes the column."""
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0] * 8) * 1e200
    with np.errstate(all="raise"):  # any overflow fails the test
        prep = preprocessing.fit({"a": values, "y": np.arange(40.0)}, {"a": "numeric", "y": "numeric"}, "y")
        moments = preprocessing.Moments()
        for chunk in np.array_split(values, 3):  # as the streaming path sees them
            moments.add(chunk)
    column = prep.columns[0]
    assert column.mean == pytest.approx(3e200, rel=1e-14)
    assert column.scale == pytest.approx(np.sqrt(2.0) * 1e200, rel=1e-14)
    assert (moments.mean, moments.std) == pytest.approx((column.mean, column.scale), rel=1e-14)
    expected = (np.arange(1, 6) - 3) / np.sqrt(2)
    np.testing.assert_allclose(prep.transform({"a": values[:5]})[:, 0], expected, rtol=1e-12, atol=1e-12)
