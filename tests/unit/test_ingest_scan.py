"""Ingestion's streaming scan (tabular.scan) on the in-memory FakeStore: delimiters, binary files, chunk
boundaries, the copy of exactly the bytes read."""

from __future__ import annotations

import pytest

from mlcore.infra import layout
from mlcore.infra.errors import ConflictError, InvalidInput
from mlcore.steps import ingestion, tabular
from tests.unit.fakes import FakeStore


def _chunked(data: bytes, size: int):
    return lambda: (data[i : i + size] for i in range(0, len(data), size))


@pytest.mark.parametrize(
    ("lines", "delimiter"),
    [
        (["a;b;c\n", "1;2;3\n"], ";"),
        (["a\tb\n", "1\t2\n"], "\t"),
        (["a|b\n", "1|2\n"], "|"),
        (["a,b\n", "1,x;y;z\n", "2,p;q\n"], ","),  # semicolons in a comma CSV's text
        (["name;price\n", "Smith, J;3,5\n"], ";"),  # commas in a semicolon CSV's text
        (["a;b;c\n", "1;2\n"], ";"),  # ragged: the header's widest split, so the ragged row is named
        (["y\n", "1\n"], ","),
    ],
)
def test_the_delimiter_is_detected_from_the_first_lines(lines, delimiter):
    assert tabular.sniff_delimiter(lines) == delimiter


def test_a_nul_byte_is_found_at_its_offset_in_a_later_chunk():
    data = b"a,b\n" + b"1,2\n" * 100 + b"3,\x00\n"
    with pytest.raises(InvalidInput, match=r"^the file is binary \(NUL byte at offset 406\), not CSV or JSON"):
        tabular.scan(_chunked(data, 64))


def test_a_character_cut_by_a_chunk_boundary_is_decoded_and_a_bad_byte_named_at_its_offset():
    data = b"city,y\n" + "Zürich,1\n".encode() * 50
    for size in range(1, 12):
        assert tabular.scan(_chunked(data, size)).columns[0]["top"] == [["Zürich", 50]]
    with pytest.raises(InvalidInput, match=r"^the file is not UTF-8 text \(byte 508: b'\\xfc'\)$"):
        tabular.scan(_chunked(data + b"Z\xfcrich,2\n", 5))


def test_an_unclosed_quote_names_the_line_it_opens_on():
    data = b'a,b\n1,"ok\nstill ok"\n2,"never\nclosed\n3,4\n'
    with pytest.raises(InvalidInput, match="^unclosed quote: the quoted field that opens on line 4 never closes$"):
        tabular.scan(_chunked(data, 3))
    with pytest.raises(InvalidInput, match="^unclosed quote: the quoted field that opens on line 4 never closes$"):
        tabular.read_csv(data)


def test_distinct_counts_are_exact_up_to_the_cap(monkeypatch):
    monkeypatch.setattr(tabular, "DISTINCT_CAP", 3)
    data = b"k\n" + b"a\na\nb\nc\nd\na\ne\n"
    column = tabular.scan(_chunked(data, 4)).columns[0]
    assert column == {
        "name": "k",
        "kind": "categorical",
        "missing": 0,
        "distinct": ">= 3",
        "top": [["a", 3], ["b", 1], ["c", 1]],
    }
    assert tabular.scan(_chunked(b"k\na\nb\nc\na\n", 4)).columns[0]["distinct"] == 3


def test_a_column_that_turns_to_text_after_the_first_chunk_is_counted_whole():
    data = b"k\n" + b"1\n" * 30 + b"x\n"
    tabular_chunk = tabular.CHUNK_CHARS
    try:
        tabular.CHUNK_CHARS = 8
        column = tabular.scan(_chunked(data, 5)).columns[0]
    finally:
        tabular.CHUNK_CHARS = tabular_chunk
    assert column == {"name": "k", "kind": "categorical", "missing": 0, "distinct": 2, "top": [["1", 30], ["x", 1]]}


@pytest.mark.parametrize(
    ("values", "sensitive"),
    [
        ([f"user{i}@example.org" for i in range(3)] * 2, "email"),
        (["+1 (555) 010-0000", "020 7946 0000", "x"] * 2, "phone"),
        ([f"id-{i}" for i in range(20)], "identifier"),
        ([f"id-{i}" for i in range(19)], None),
        (["2024-01-01", "2024-01-02", "2024-01-01"], None),  # dates are not phone numbers
        (["a", "b", "a"], None),
    ],
)
def test_sensitivity_of_a_text_column(values, sensitive):
    data = ("k,y\n" + "".join(f"{v},{i}\n" for i, v in enumerate(values))).encode()
    column = tabular.scan(lambda: [data]).columns[0]
    assert column.get("sensitive") == sensitive
    assert ("top" in column) == (sensitive is None)


def test_an_object_that_changed_before_its_copy_is_a_conflict_and_writes_nothing():
    store = FakeStore()
    store.put_bytes("landing/x.csv", b"a,b\n1,2\n")
    stale = ingestion.StoredObject(store, "landing/x.csv", None, '"0"')  # an ETag the object no longer has
    with pytest.raises(ConflictError, match="^object 'landing/x.csv' changed while it was read; register it again$"):
        ingestion.ingest(store, "x", stale, source="s3://fake-bucket/landing/x.csv")
    assert store.list_keys(layout.RAW) == []


def test_an_object_is_read_in_chunks_and_copied_not_held(monkeypatch):
    store = FakeStore()
    data = b"a,b\n" + b"1,2\n" * 1000
    store.put_bytes("landing/x.csv", data)
    reads: list[int] = []
    opened = store.open

    class Body:
        def __init__(self, key, version_id=None):
            self.inner = opened(key)

        def read(self, amt=None):
            chunk = self.inner.read(amt)
            reads.append(len(chunk))
            return chunk

        def close(self):
            pass

    monkeypatch.setattr(store, "open", Body)
    monkeypatch.setattr(ingestion, "READ_CHUNK_BYTES", 512)
    meta = ingestion.register_object(store, "x", "landing/x.csv")
    assert max(reads) == 512 and sum(reads) == len(data)
    assert store.objects[meta["key"]] == data and meta["rows"] == 1000 and meta["delimiter"] == ","
