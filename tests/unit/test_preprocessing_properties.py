"""Property-based tests (hypothesis): arbitrary small tables never crash preprocessing, and the
serve-time transform equals the train-time transform on the same rows."""

from __future__ import annotations

import csv
import io
import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlcore.infra.errors import InvalidInput
from mlcore.steps.preparation.in_memory import build_matrices
from mlcore.steps.tabular import column_kinds, read_csv, to_columns

numbers = st.one_of(
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False, width=32, min_value=-1e6, max_value=1e6),
    st.integers(-1000, 1000),
    st.sampled_from([math.inf, -math.inf, 1e300]),
)
words = st.one_of(st.none(), st.sampled_from(["a", "b", "c", "north", "South", "x y", "é", "1", ""]))


@st.composite
def tables(draw):
    n_rows = draw(st.integers(0, 30))
    kinds = draw(st.lists(st.sampled_from(["num", "cat"]), min_size=1, max_size=4))
    header = [f"f{i}" for i in range(len(kinds))] + ["target"]
    rows = []
    for _ in range(n_rows):
        row = [draw(numbers if k == "num" else words) for k in kinds] + [draw(numbers)]
        rows.append(["" if v is None else (repr(v) if isinstance(v, float) else str(v)) for v in row])
    buf = io.StringIO()
    csv.writer(buf).writerows([header, *rows])
    return buf.getvalue().encode()


def _prepare(data: bytes, seed: int, model: str):
    """The table's columns and build_matrices' result; InvalidInput (a table that cannot be used) passes."""
    frame = read_csv(data)
    kinds = column_kinds(frame)
    columns = to_columns(frame)
    return columns, build_matrices(columns, kinds, "target", 0.25, seed, model)


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ARGUMENTS = given(
    data=tables(), seed=st.integers(0, 5), model=st.sampled_from(["linear_regression", "softmax_regression"])
)


@SETTINGS
@ARGUMENTS
def test_small_tables_succeed_or_fail_cleanly(data, seed, model):
    try:
        _, prepared = _prepare(data, seed, model)
    except InvalidInput as err:
        assert str(err)  # a message for the user, never an empty one
        return
    assert np.isfinite(prepared.train).all() and np.isfinite(prepared.test).all()


@SETTINGS
@ARGUMENTS
def test_serving_matches_training_on_small_tables(data, seed, model):
    try:
        columns, prepared = _prepare(data, seed, model)
    except InvalidInput:
        return  # refused tables are test_small_tables_succeed_or_fail_cleanly's
    prep = prepared.preprocessor
    # serve time: the same raw rows as JSON instances would arrive (lists with None for missing)
    raw = {
        name: [None if (isinstance(v, float) and math.isnan(v)) else v for v in columns[name].tolist()]
        for name in prep.input_names
    }
    served = prep.transform(raw)
    trained = prep.transform({name: columns[name] for name in prep.input_names})
    np.testing.assert_allclose(served, trained, rtol=0, atol=0)
