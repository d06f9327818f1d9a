"""JSON text from outside within bounds (mlcore.infra.jsontext): depth, integer size, lone surrogates."""

import json
import re
from itertools import accumulate

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlcore.infra import jsontext

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='ab[]{}"\\,:'),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(alphabet='x[]"\\{', max_size=3), inner, max_size=3)
    ),
    max_leaves=20,
)


def nesting(value) -> int:
    if isinstance(value, list):
        return 1 + max((nesting(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((nesting(v) for v in value.values()), default=0)
    return 0


@given(JSON)
def test_depth_counts_brackets_outside_strings_only(value):
    assert jsontext.depth(json.dumps(value)) == nesting(value)


@given(JSON)
def test_values_within_the_bounds_parse_as_json_does(value):
    text = json.dumps(value)
    assert jsontext.loads(text) == json.loads(text)


def test_deep_nesting_is_refused_before_parsing():
    with pytest.raises(jsontext.JsonRefused, match="^JSON nested more than 64 levels deep$"):
        jsontext.loads("[" * 100_000 + "]" * 100_000)
    assert jsontext.loads("[" * 64 + "]" * 64) is not None


def test_a_huge_integer_literal_is_refused():
    with pytest.raises(jsontext.JsonRefused, match="^an integer literal has 5000 digits, more than 4300$"):
        jsontext.loads('{"n": ' + "9" * 5000 + "}")
    assert jsontext.loads("-" + "9" * 4300) == -int("9" * 4300)


@pytest.mark.parametrize("text", ['"\\ud800"', '{"\\udfff": 1}', '["ok", ["\\ud83d x"]]'])
def test_a_lone_surrogate_is_refused(text):
    with pytest.raises(jsontext.JsonRefused, match="lone surrogate"):
        jsontext.loads(text)


def test_a_surrogate_pair_is_text():
    assert jsontext.loads('"\\ud83d\\ude00"') == "\U0001f600"


@pytest.mark.parametrize("text", ['"unterminated', "[1,", "{'a': 1}", '"' + '\\"' * 1000])
def test_bad_syntax_stays_a_decode_error(text):
    with pytest.raises(json.JSONDecodeError):
        jsontext.loads(text)


_STRING_TOKEN = re.compile(r'"(?:[^"\\]++|\\.)*+(?:"|\Z)', re.DOTALL)


def depth_by_pattern(text: str) -> int:
    """The depth as the string pattern alone counts it (the reference for the split taken without escapes)."""
    steps = [{"[": 1, "{": 1, "]": -1, "}": -1}[c] for c in _STRING_TOKEN.sub("", text) if c in "[]{}"]
    return max(accumulate(steps), default=0)


@given(st.text(alphabet='a[]{}"') | st.text(alphabet='a[]{}"\\'))
def test_depth_of_any_text_valid_or_not_is_the_string_patterns(text):
    assert jsontext.depth(text) == depth_by_pattern(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [('["[[", ["]"]]', 2), ('"[[[', 0), ('[["a"], "{{"', 2), ('["\\"[[", []]', 2), ('{"a\\\\": [[]]}', 3)],
)
def test_depth_skips_strings_with_and_without_escapes(text, expected):
    assert jsontext.depth(text) == expected
