"""Batch inference pieces without AWS: record boundaries (quoted newlines) and per-row coercion messages."""

from __future__ import annotations

import pytest

from mlcore import batch
from mlcore.errors import InvalidInput

from .test_serving import make_artifact


def test_records_keep_quoted_newlines_and_byte_offsets():
    data = b'a,b\n1,"x\ny"\n2,z\n\n3,"q"\n'
    records = list(batch._records(data))
    assert [r for _, r in records] == [b"a,b\n", b'1,"x\ny"\n', b"2,z\n", b"\n", b'3,"q"\n']
    assert all(data[o : o + len(r)] == r for o, r in records)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["160", "a"], {"sqft": 160.0, "city": "a"}),
        (["", " "], {"sqft": None, "city": None}),
        (["1e2", "zzz"], {"sqft": 100.0, "city": "zzz"}),
    ],
)
def test_coerce(values, expected):
    assert batch._coerce(make_artifact(), ["sqft", "city"], values, 0) == expected


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["12x", "a"], "sqft must be a number, got '12x'"),
        (["nan", "a"], "sqft must be finite, got 'nan'"),
        (["1"], "row 4 has 1 fields, the header has 2"),
    ],
)
def test_coerce_errors_name_the_field(values, message):
    with pytest.raises(InvalidInput) as info:
        batch._coerce(make_artifact(), ["sqft", "city"], values, 4)
    assert str(info.value) == message
