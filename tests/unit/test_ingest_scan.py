"""Ingestion's streaming scan (tabular.scan) on the in-memory FakeStore: delimiters, binary files, chunk
boundaries, the copy of exactly the bytes read."""

from __future__ import annotations

import csv
import hashlib
import re

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


# -- one parse: blocks of records checked with numpy, csv.reader only where a quote needs it ---------------------


OPEN = "do you need to open the file in universal-newline mode?"  # csv.reader's words


def _rows(n: int, newline: str = "\n") -> str:
    return "".join(f"{i},{i * 2},x{i}{newline}" for i in range(n))


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("7,8", "line 105 has 2 fields, fewer than the 3 in the header"),
        ("7", "line 105 has 1 fields, fewer than the 3 in the header"),
        ("  ", "line 105 has 1 fields, fewer than the 3 in the header"),  # spaces are a field, not a blank line
        ("7,8,9,10", "line 105 has 4 fields, more than the 3 in the header"),
        ('7,8,"9",10', "line 105 has 4 fields, more than the 3 in the header"),
        ("7,8,9\r10", f"line 105 is not well-formed CSV: new-line character seen in unquoted field - {OPEN}"),
        ("7,8," + "x" * 131_073, "line 105 is not well-formed CSV: field larger than field limit (131072)"),
    ],
)
def test_a_bad_row_in_a_later_block_is_named_by_its_line(monkeypatch, newline, bad, message):
    # 1 header line, 3 blank lines, 100 rows: the bad row is line 105, blocks of about 64 bytes before it
    data = ("a,b,c" + newline * 4 + _rows(100, newline) + bad + newline + _rows(20, newline)).encode()
    monkeypatch.setattr(tabular, "CHUNK_CHARS", 64)
    for size in (5, 64, 1000, len(data)):
        with pytest.raises(InvalidInput, match=f"^{re.escape(message)}$"):
            tabular.scan(_chunked(data, size))
    with pytest.raises(InvalidInput, match=f"^{re.escape(message)}$"):
        tabular.read_csv(data)


def test_blank_lines_carriage_returns_and_a_row_over_the_field_limit_in_length_are_accepted(monkeypatch):
    wide = ",".join(["y" * 100_000] * 2)  # a line over csv.field_size_limit() whose fields are not
    data = ("a,b,c\r\n\r\n" + _rows(50, "\r\n") + f"1,{wide}\r\n\n" + _rows(50, "\r\n")).encode()
    monkeypatch.setattr(tabular, "CHUNK_CHARS", 100)
    for size in (7, 4096, len(data)):
        found = tabular.scan(_chunked(data, size))
        assert found.rows == 101
        assert found.columns[0] == {
            "name": "a",
            "kind": "numeric",
            "missing": 0,
            "min": 0.0,
            "max": 49.0,
            "mean": 2451 / 101,
            "integer": True,  # whole numbers: their distinct count too
            "distinct": 50,
        }
    assert len(tabular.read_csv(data)) == 101


@pytest.mark.parametrize(
    ("rows", "kind"),
    [
        ("".join(f"{i},{i / 4},z{i % 3}\n" for i in range(2000)), "quote-free"),
        ("".join(f'{i},"{i / 4}","z,{i % 3}\nnext ""line"""\n' for i in range(2000)), "quoted"),
    ],
)
def test_records_are_checked_without_csv_reader_beyond_the_sample_and_the_header(monkeypatch, rows, kind):
    read: list[str] = []
    reader = csv.reader

    def counting(lines, **kwargs):
        def taken():
            for line in lines:
                read.append(line)
                yield line

        return reader(taken(), **kwargs)

    data = ("a,b,c\n" + rows).encode()
    monkeypatch.setattr(tabular.csv, "reader", counting)
    monkeypatch.setattr(tabular, "CHUNK_CHARS", 4096)
    found = tabular.scan(_chunked(data, 1000))
    assert found.rows == 2000
    # sniffing reads the first SNIFF_LINES lines once per candidate delimiter; the header is read once more
    assert len(read) <= len(tabular.DELIMITERS) * tabular.SNIFF_LINES + 1, kind
    read.clear()
    assert len(tabular.read_csv(data)) == 2000
    assert len(read) <= len(tabular.DELIMITERS) * tabular.SNIFF_LINES + 1, kind


def test_a_quoted_field_across_pieces_and_blocks_is_one_value(monkeypatch):
    long = 'a,"b"\n' + "x" * 50 + '\n, and more"'  # one record over three lines, around the cut points
    quoted = '"' + long.replace('"', '""') + '"'
    data = ("k,text\n" + "".join(f"{i},{quoted}\n" for i in range(5)) + "9,short\n").encode()
    monkeypatch.setattr(tabular, "CHUNK_CHARS", 32)
    for size in (1, 3, 40, len(data)):
        found = tabular.scan(_chunked(data, size))
        assert found.rows == 6
        assert found.columns[1]["top"][0] == [long[:63] + "\u2026", 5]


def test_a_quote_inside_an_unquoted_field_is_read_by_csv_reader_as_a_character(monkeypatch):
    data = b'a,b\n1,x"y\n2,"p\nq"\n3,z\n'  # parity would take the newline after x"y for the inside of a field
    monkeypatch.setattr(tabular, "CHUNK_CHARS", 8)
    for size in (2, len(data)):
        found = tabular.scan(_chunked(data, size))
        assert found.rows == 3
        assert found.columns[1]["top"] == [['x"y', 1], ["p\nq", 1], ["z", 1]]
    with pytest.raises(InvalidInput, match="^line 4 has 3 fields, more than the 2 in the header$"):
        tabular.scan(_chunked(b'a,b\n1,x"y\n2,"p\nq",3\n', 4))  # a record is named by its last line


def test_an_unclosed_quote_in_a_later_block_names_the_line_it_opens_on(monkeypatch):
    data = ("a,b\n" + "".join(f"{i},{i}\n" for i in range(40)) + '41,"open\n42,43\n44,45\n').encode()
    monkeypatch.setattr(tabular, "CHUNK_CHARS", 16)
    for size in (3, 64, len(data)):
        with pytest.raises(InvalidInput, match="^unclosed quote: the quoted field that opens on line 42 never closes$"):
            tabular.scan(_chunked(data, size))


def test_the_file_is_hashed_once_even_when_it_is_read_twice(monkeypatch):
    data = b"k\n" + b"1\n" * 30 + b"x\n"  # k turns to text: its values are counted in a second read
    hashed: list[int] = []
    sha256 = hashlib.sha256

    class Counting:
        def __init__(self):
            self.inner = sha256()

        def update(self, chunk):
            hashed.append(len(chunk))
            self.inner.update(chunk)

        def hexdigest(self):
            return self.inner.hexdigest()

    monkeypatch.setattr(tabular, "CHUNK_CHARS", 8)
    monkeypatch.setattr(tabular.hashlib, "sha256", Counting)
    found = tabular.scan(_chunked(data, 5))
    assert found.columns[0]["top"] == [["1", 30], ["x", 1]]
    assert sum(hashed) == len(data)
    assert found.sha256 == sha256(data).hexdigest()
