"""The declarative preprocessing spec: each rule against a hand computation, validation, and train/serve parity."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from pydantic import ValidationError

from mlcore.infra.errors import InvalidInput
from mlcore.math import preprocessing
from mlcore.math.preprocessing import HashedColumn, PreprocessingSpec, Preprocessor, hash_bucket
from mlcore.steps.preparation import in_memory
from mlcore.steps.schemas import TrainingRequest

NAN = np.nan


def obj(*values):
    return np.array(values, dtype=object)


COLUMNS = {
    "income": np.array([10.0, NAN, 30.0, 1000.0, 50.0, 20.0]),
    "rooms": np.array([1.0, 2.0, NAN, 4.0, 5.0, 6.0]),
    "city": obj("a", "b", None, "a", "c", "a"),
    "customer_id": obj("u1", "u2", "u3", "u4", "u5", "u6"),
    "email": obj("x@a", "y@b", None, "z@c", "w@d", "v@e"),
    "y": np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
}
KINDS = {"income": "numeric", "rooms": "numeric", "city": "categorical", "customer_id": "categorical"}
KINDS = {**KINDS, "email": "categorical", "y": "numeric"}

SPEC = PreprocessingSpec.model_validate(
    {
        "target": "y",
        "columns": {
            "income": {"impute": "mean", "clip": [0, 100], "transform": "log1p"},
            "rooms": {"impute": "constant", "fill_value": 0, "transform": "square", "standardize": False},
            "city": {"max_categories": 1},
            "customer_id": {"drop": True},
            "email": {"encoding": "hash", "hash_buckets": 4, "impute": "constant", "fill_value": "none"},
        },
    }
)


def test_each_rule_matches_a_hand_computation():
    prep = preprocessing.fit(COLUMNS, KINDS, "y", spec=SPEC)
    assert prep.input_names == ["income", "rooms", "city", "email"]
    assert prep.dropped_columns == ["customer_id"]
    income, rooms, city, email = prep.columns
    # mean imputation uses the raw observed values; clipping and log1p come after
    assert income.fill == pytest.approx((10 + 30 + 1000 + 50 + 20) / 5)
    shaped = np.log1p(np.clip(np.array([10.0, income.fill, 30.0, 1000.0, 50.0, 20.0]), 0, 100))
    assert (income.mean, income.scale) == pytest.approx((shaped.mean(), shaped.std()))
    assert (rooms.fill, rooms.mean, rooms.scale) == (0.0, 0.0, 1.0)
    assert city.categories == ["a"]  # capped to the most frequent
    assert isinstance(email, HashedColumn) and email.buckets == 4 and email.fill == "none"
    X = prep.transform(COLUMNS)
    np.testing.assert_allclose(X[:, 0], (shaped - shaped.mean()) / shaped.std())
    np.testing.assert_array_equal(X[:, 1], [1, 4, 0, 16, 25, 36])
    np.testing.assert_array_equal(X[:, 2], [1, 0, 1, 1, 0, 1])  # missing -> fill "a"; b, c -> zeros
    hashed = X[:, 3:]
    assert hashed.shape == (6, 4) and (hashed.sum(axis=1) == 1).all()
    for row, value in enumerate(["x@a", "y@b", "none", "z@c", "w@d", "v@e"]):
        assert hashed[row, hash_bucket("email", value, 4)] == 1.0
    assert "x@a" not in prep.model_dump_json()  # hashed values are not stored


def test_hash_is_stable_across_processes():
    """BLAKE2b of "<column>\\0<value>", not Python's per-process salted hash()."""
    digest = hashlib.blake2b(b"email\x00x@a", digest_size=8).digest()
    assert hash_bucket("email", "x@a", 1000) == int.from_bytes(digest, "big") % 1000


def test_the_serving_transform_reproduces_the_training_rows():
    """The rows as training sees them (numpy, NaN/None) and as Predict gets them (JSON lists, ints)."""
    prepared = in_memory.build_matrices(COLUMNS, KINDS, "y", 0.34, 0, spec=SPEC)
    restored = Preprocessor.model_validate(json.loads(json.dumps(prepared.preprocessor.model_dump())))
    assert restored == prepared.preprocessor and restored.spec == SPEC
    served = restored.transform(
        {
            "income": [10, None, 30, 1000, 50, 20],
            "rooms": [1, 2, None, 4, 5, 6],
            "city": ["a", "b", None, "a", "c", "a"],
            "email": ["x@a", "y@b", None, "z@c", "w@d", "v@e"],
        }
    )
    trained = prepared.preprocessor.transform(COLUMNS)
    np.testing.assert_array_equal(served, trained)
    # the shards hold exactly these rows (float32, target last)
    rows = np.vstack([prepared.train, prepared.test])
    assert {tuple(r) for r in rows} == {
        tuple(r) for r in np.hstack([trained, COLUMNS["y"][:, None]]).astype(np.float32)
    }


DROP_ROOMS = PreprocessingSpec.model_validate({"columns": {"rooms": {"impute": "drop_rows"}}})


def test_drop_rows_removes_training_rows_without_the_value():
    prepared = in_memory.build_matrices(COLUMNS, KINDS, "y", 0.34, 0, spec=DROP_ROOMS)
    assert prepared.dropped == 1
    assert prepared.train.shape[0] + prepared.test.shape[0] == 5


def test_drop_rows_requires_the_value_at_serving():
    prepared = in_memory.build_matrices(COLUMNS, KINDS, "y", 0.34, 0, spec=DROP_ROOMS)
    rooms = prepared.preprocessor.columns[1]
    assert rooms.fill is None
    cols = {n: COLUMNS[n][:2] for n in prepared.preprocessor.input_names}
    with pytest.raises(InvalidInput, match="^column 'rooms' is required"):
        prepared.preprocessor.transform({**cols, "rooms": np.array([1.0, NAN])})


def test_kind_override_reads_integer_codes_as_categories():
    spec = PreprocessingSpec.model_validate({"columns": {"rooms": {"kind": "categorical"}}})
    prep = preprocessing.fit(COLUMNS, KINDS, "y", spec=spec)
    assert prep.columns[1].categories == ["1", "2", "4", "5", "6"]  # 1.0 reads "1", as JSON's 1 does
    row = {n: [COLUMNS[n][3]] for n in prep.input_names}
    np.testing.assert_array_equal(prep.transform(row), prep.transform({**row, "rooms": [4]}))


def test_default_spec_is_the_old_behaviour():
    plain = preprocessing.fit(COLUMNS, {**KINDS, "customer_id": "categorical"}, "y")
    empty = preprocessing.fit(COLUMNS, KINDS, "y", spec=PreprocessingSpec())
    assert plain == empty
    income = plain.columns[0]
    assert income.fill == np.median([10.0, 30.0, 1000.0, 50.0, 20.0]) and income.impute == "median"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"columns": {"nope": {"drop": True}}},
            "^the preprocessing spec names column\\(s\\) not in the data set: nope$",
        ),
        ({"columns": {"y": {"drop": True}}}, "^the preprocessing spec drops the target column 'y'$"),
        ({"target": "income"}, "^the preprocessing spec's target 'income' is not the request's target 'y'$"),
        ({"columns": {"city": {"impute": "median"}}}, "^column 'city': impute 'median' is for numeric columns$"),
        ({"columns": {"income": {"impute": "most_frequent"}}}, "^column 'income': impute 'most_frequent' is for"),
        ({"columns": {"city": {"transform": "log1p"}}}, "^column 'city': clip, transform and standardize apply to"),
        ({"columns": {"income": {"transform": "sqrt", "clip": [-5, None]}}}, None),
        (
            {"columns": {"rooms": {"transform": "log1p", "clip": [-3, None], "impute": "constant", "fill_value": -2}}},
            "^column 'rooms': log1p needs values above -1, got -2.0 \\(clip it\\)$",
        ),
        ({"max_categories": 2}, "^column 'city' has 3 categories, more than the limit of 2; drop it, hash it or cap"),
    ],
)
def test_spec_errors_name_the_problem(spec, message):
    parsed = PreprocessingSpec.model_validate(spec)
    if message is None:  # sqrt of values >= 0 is fine
        preprocessing.fit(COLUMNS, KINDS, "y", spec=parsed)
        return
    with pytest.raises(InvalidInput, match=message):
        preprocessing.fit(COLUMNS, KINDS, "y", spec=parsed)


@pytest.mark.parametrize(
    ("column", "message"),
    [
        ({"impute": "constant"}, "impute='constant' needs a fill_value"),
        ({"fill_value": 3}, "fill_value is only used with impute='constant'"),
        ({"clip": [5, 1]}, "clip low 5.0 is above high 1.0"),
        ({"encoding": "hash"}, "encoding='hash' needs hash_buckets"),
        ({"hash_buckets": 8}, "hash_buckets is only used with encoding='hash'"),
        ({"transform": "exp"}, "Input should be 'none', 'log1p', 'square', 'sqrt' or 'abs'"),
        ({"scale": True}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_specs_are_rejected_when_parsed(column, message):
    with pytest.raises(ValidationError, match=message):
        PreprocessingSpec.model_validate({"columns": {"x": column}})


REQUEST = {"dataset": "d", "target": "y", "model_name": "m"}


def test_training_request_carries_the_spec():
    assert TrainingRequest.model_validate(REQUEST).preprocessing is None
    request = TrainingRequest.model_validate({**REQUEST, "preprocessing": SPEC.model_dump()})
    assert request.preprocessing == SPEC


def test_training_request_refuses_a_spec_for_another_target():
    base = REQUEST
    with pytest.raises(ValidationError, match="preprocessing.target 'x' differs from target 'y'"):
        TrainingRequest.model_validate({**base, "preprocessing": {"target": "x"}})
