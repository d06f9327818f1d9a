"""JSON text from outside (request bodies, JSON Lines files, batch rows) parsed within bounds.

Python's parser recurses once per nesting level (a body nested 100,000 deep raises RecursionError), refuses
integer literals over 4,300 digits with a bare ValueError, and accepts escaped lone surrogates (``"\\ud800"``)
that no UTF-8 encoder, and so no S3 key or document, can carry. ``loads`` refuses all three with
``JsonRefused`` naming the problem, before anything recursive runs; plain syntax errors stay
``json.JSONDecodeError``.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

MAX_DEPTH = 64  # objects and arrays nested in one another
MAX_INT_DIGITS = 4300  # Python's own int-string limit: beyond it no int() converts the literal

# a string token, to its closing quote or to the end of an unterminated one: possessive, so linear in the text
_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+(?:"|\Z)', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class JsonRefused(ValueError):
    """JSON text outside the bounds above (the message names which)."""


def depth(text: str) -> int:
    """The nesting depth of ``text``: its brackets outside strings, counted without recursion. With no backslash
    in the text every quote opens or closes a string, so the text between quotes alternates outside/inside (an
    unterminated last string included): a split, much cheaper than the string pattern escapes need."""
    outside = "".join(text.split('"')[::2]) if "\\" not in text else _STRING.sub("", text)
    brackets = _NOT_BRACKET.sub("", outside)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def _bounded_int(literal: str) -> int:
    if len(literal.lstrip("-")) > MAX_INT_DIGITS:
        raise JsonRefused(f"an integer literal has {len(literal.lstrip('-'))} digits, more than {MAX_INT_DIGITS}")
    return int(literal)


def _check_text(value: Any) -> None:
    """Every string (keys included) is encodable text: no lone surrogate."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as err:
            bad = value[err.start]
            raise JsonRefused(f"a string holds a lone surrogate (\\u{ord(bad):04x}), which is not text") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key)
            _check_text(item)
    elif isinstance(value, list):
        for item in value:
            _check_text(item)


def loads(text: str | bytes) -> Any:
    """``json.loads`` within the bounds: ``JsonRefused`` beyond them, ``json.JSONDecodeError`` for bad syntax."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    if depth(text) > MAX_DEPTH:
        raise JsonRefused(f"JSON nested more than {MAX_DEPTH} levels deep")
    value = json.loads(text, parse_int=_bounded_int)
    if "\\u" in text:  # escapes are the only way a lone surrogate gets in
        _check_text(value)
    return value
