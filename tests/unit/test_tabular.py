"""CSV parsing errors and the column arrays handed to preprocessing."""

from __future__ import annotations

import numpy as np
import pytest

from mlcore.infra.errors import InvalidInput
from mlcore.steps import tabular


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "^the file is empty$"),
        (b" \n\r\n\t", "^the file is empty$"),
        (b"a,b\n", "^the file has a header but no data rows$"),
        (b"a,b", "^the file has a header but no data rows$"),
        (b"a,b\n1,\xff\n", r"^the file is not UTF-8 text \(byte 6: b'\\xff'\)$"),
        (b"name,city\nx,caf\xe9\n", r"^the file is not UTF-8 text \(byte 15: b'\\xe9'\)$"),
        (b"a,b,a,c,b\n1,2,3,4,5\n", "^duplicate column name\\(s\\) in the header: a, b$"),
        (b"a, a\n1,2\n", "^duplicate column name\\(s\\) in the header: a$"),
        (b"a,,b\n1,2,3\n", "^the header has an empty column name$"),
    ],
    ids=[
        "empty",
        "whitespace",
        "header-only",
        "header-no-newline",
        "non-utf8",
        "latin-1",
        "duplicates",
        "duplicates-after-strip",
        "empty-name",
    ],
)
def test_read_csv_errors(data, message):
    with pytest.raises(InvalidInput, match=message):
        tabular.read_csv(data)


def test_row_with_too_many_fields_names_the_line():
    with pytest.raises(InvalidInput, match=r"line 3\b.*fields|fields.*line 3\b") as info:
        tabular.read_csv(b"a,b\n1,2\n3,4,5\n6,7\n")
    assert "well-formed" in str(info.value) or "header" in str(info.value)


def test_too_many_columns():
    header = ",".join(f"c{i}" for i in range(tabular.MAX_COLUMNS + 1)).encode()
    with pytest.raises(InvalidInput, match="^the file has 1001 columns, more than the limit of 1000$"):
        tabular.read_csv(header + b"\n" + b",".join([b"1"] * 1001) + b"\n")


@pytest.mark.parametrize("data", [b"a,b\n1,2,3\n4,5\n", b"a,b\n1,2,3\n4,5,6\n"], ids=["first-row", "every-row"])
def test_extra_field_in_the_first_data_row_is_rejected(data):
    with pytest.raises(InvalidInput, match="fields"):
        tabular.read_csv(data)


def test_blank_line_before_the_header_is_not_a_crash():
    try:
        frame = tabular.read_csv(b"\na,b\n1,2\n")
    except InvalidInput:
        return  # rejecting it with a message is acceptable too
    assert list(frame.columns) == ["a", "b"]


PADDED = "\ufeff a , b , city\n1, 2, paris\n3, 4,  rome\n".encode()


def test_a_byte_order_mark_is_stripped_from_the_header():
    frame = tabular.read_csv(PADDED)
    assert list(frame.columns) == ["a", "b", "city"]


def test_spaces_around_values_are_stripped():
    frame = tabular.read_csv(PADDED)
    assert tabular.column_kinds(frame) == {"a": "numeric", "b": "numeric", "city": "categorical"}
    np.testing.assert_array_equal(frame["b"].to_numpy(), [2, 4])
    assert frame["city"].tolist() == ["paris", "rome"]


MIXED = b"""x,name,flag,y,score
1,a,True,1.5,10
2,,False,,
3,b,True,2.5,30
"""


def test_column_kinds_on_a_mixed_frame():
    frame = tabular.read_csv(MIXED)
    assert tabular.column_kinds(frame) == {
        "x": "numeric",
        "name": "categorical",
        "flag": "categorical",  # booleans are categories, not 0/1 numbers
        "y": "numeric",
        "score": "numeric",
    }


def test_to_columns_on_a_mixed_frame():
    columns = tabular.to_columns(tabular.read_csv(MIXED))
    assert list(columns) == ["x", "name", "flag", "y", "score"]
    assert columns["x"].dtype == np.float64
    np.testing.assert_array_equal(columns["x"], [1.0, 2.0, 3.0])
    assert columns["name"].dtype == object
    assert columns["name"].tolist() == ["a", None, "b"]
    assert columns["flag"].dtype == object
    assert [str(v) for v in columns["flag"]] == ["True", "False", "True"]
    assert columns["y"].dtype == np.float64
    np.testing.assert_array_equal(columns["y"], [1.5, np.nan, 2.5])
    np.testing.assert_array_equal(columns["score"], [10.0, np.nan, 30.0])


def test_a_short_row_is_rejected_as_ragged():
    with pytest.raises(InvalidInput, match="^line 3 has 1 fields, fewer than the 3 in the header$"):
        tabular.read_csv(b"a,b,c\n1,2,3\n4\n")


def test_empty_fields_are_missing_values():
    columns = tabular.to_columns(tabular.read_csv(b"a,b,c\n1,2,3\n4,,\n"))
    np.testing.assert_array_equal(columns["b"], [2.0, np.nan])
    np.testing.assert_array_equal(columns["c"], [3.0, np.nan])
