"""An error message quotes at most ECHO_CHARS characters of a user's value, then its length."""

from __future__ import annotations

import pytest

from mlcore.infra.errors import ECHO_CHARS, InvalidInput, echo
from mlcore.steps import ingestion

from .fakes import FakeStore


def test_a_short_value_is_quoted_whole_and_a_long_one_cut_with_its_length():
    assert echo("housing") == "'housing'"
    assert echo("x" * 98) == repr("x" * 98)  # 100 characters with the quotes
    assert echo("x" * 1_000_000) == "'" + "x" * (ECHO_CHARS - 1) + "… (1000000 characters)"


def test_ingestion_quotes_a_1_mb_data_set_name_cut():
    with pytest.raises(InvalidInput) as err:
        ingestion.ingest(FakeStore(), "n" * 1_000_000, b"a,b\n1,2\n", source="api", fmt="csv")
    assert str(err.value).startswith("invalid data set name 'nnn")
    assert "… (1000000 characters): use " in str(err.value) and len(str(err.value)) < 300
