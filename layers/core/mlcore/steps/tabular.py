"""CSV / JSON Lines parsing, validation and profiling (the only module that imports pandas).

Imported only by the functions that parse CSV (Ingest, Preprocess); Predict,
GradientWorker and Aggregator never load pandas.

``scan`` validates and profiles a file read as a stream of byte chunks, in bounded memory: the bytes are
hashed as they are read, checked to be UTF-8, cut into whole records and parsed about ``CHUNK_CHARS`` bytes
at a time, and each column keeps running aggregates (missing, min, max, sum; for text the counts of at most
``DISTINCT_CAP`` distinct values). ``read_table`` parses a whole file into one frame (Preprocess in memory).

Each record is parsed once, by pandas: the checks csv.reader would make (fields per record, quoted fields that
never close, over-long fields, stray carriage returns) are made with numpy over the bytes of each block of
records (``_check_block``); only a block they cannot vouch for is read again by csv.reader (``_CsvBlocks``),
which names the first bad line, and a file with a quote csv.reader does not read as quoting (one inside an
unquoted field, say) is read by csv.reader from there on.
"""

from __future__ import annotations

import codecs
import csv
import functools
import hashlib
import io
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain, islice
from typing import Any

import numpy as np
import pandas as pd

from mlcore.infra import jsontext
from mlcore.infra.errors import InvalidInput

MAX_COLUMNS = 1000
FORMATS = ("csv", "jsonl")
TOP_CATEGORIES = 5
DELIMITERS = (",", ";", "\t", "|")  # detected from the first SNIFF_LINES lines; comma wins a tie
SNIFF_LINES = 50
CHUNK_CHARS = 8 * 1024 * 1024  # bytes of text parsed per step of the scan
SUM_BLOCK = 65_536  # a numeric column's mean: exact sum (fsum) of the sums of blocks of this many values
DISTINCT_CAP = 10_000  # distinct text values counted exactly per column; beyond, "distinct" is ">= 10000"
TOP_VALUE_CHARS = 64  # longer values are shown truncated in a profile's "top"
SENSITIVE_MIN_ROWS = 20  # fewer observed values never make a column an identifier
IDENTIFIER_SHARE = 0.95  # distinct values / observed values from which a text column is an identifier
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
PHONE = re.compile(r"\+?[\d\s().\-/]+")
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{2}[./-]\d{2}[./-]\d{4}")
MAGIC = (  # the start of a file in a binary format people mistake for a table
    (b"\x1f\x8b", "a gzip magic number"),
    (b"PK\x03\x04", "a zip magic number (zip, xlsx, ...)"),
    (b"PAR1", "a Parquet magic number"),
    (b"BZh", "a bzip2 magic number"),
    (b"\xfd7zXZ\x00", "an xz magic number"),
    (b"(\xb5/\xfd", "a zstd magic number"),
    (b"7z\xbc\xaf'\x1c", "a 7z magic number"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an OLE2 magic number (xls, ...)"),
    (b"%PDF-", "a PDF magic number"),
    (b"\x89PNG", "a PNG magic number"),
    (b"SQLite format 3\x00", "an SQLite magic number"),
)
MAGIC_BYTES = max(len(magic) for magic, _ in MAGIC)
BOM = "\ufeff".encode()


def _binary(what: str) -> InvalidInput:
    return InvalidInput(f"the file is binary ({what}), not CSV or JSON Lines text")


def _not_utf8(data: bytes, err: UnicodeDecodeError, offset: int) -> InvalidInput:
    bad = data[err.start : err.start + 1]
    return InvalidInput(f"the file is not UTF-8 text (byte {offset + err.start}: {bad!r})")


class _Decoder:
    """Byte chunks checked to be UTF-8 text: counted (and hashed, once: ``hashed``) as they are read; a binary
    or non-UTF-8 file is refused."""

    def __init__(self, chunks: Iterable[bytes], hashed: bool = True):
        self.chunks = chunks
        self.digest = hashlib.sha256() if hashed else None
        self.size = 0

    def pieces(self) -> Iterator[bytes]:
        """The bytes as read, each piece ending on a character boundary, without a byte order mark."""
        carry = b""  # the start of a character cut by the chunk boundary
        head = b""  # the first bytes, for the magic numbers
        blank = True
        chunks = (c for c in self.chunks if c)
        following = next(chunks, None)
        while following is not None:
            chunk, following = following, next(chunks, None)
            if len(head) < MAGIC_BYTES:
                head += chunk[: MAGIC_BYTES - len(head)]
                for magic, what in MAGIC:
                    if head.startswith(magic):
                        raise _binary(what)
            nul = chunk.find(b"\x00")
            if nul >= 0:
                raise _binary(f"NUL byte at offset {self.size + nul}")
            if self.digest is not None:
                self.digest.update(chunk)
            start = self.size - len(carry)
            self.size += len(chunk)
            blank = blank and not chunk.strip()
            if blank and following is None:
                raise InvalidInput("the file is empty")
            data = carry + chunk if carry else chunk
            carry = b""
            if not data.isascii():
                try:
                    data.decode("utf-8")
                except UnicodeDecodeError as err:
                    if err.reason != "unexpected end of data" or err.end != len(data) or following is None:
                        raise _not_utf8(data, err, start) from None
                    data, carry = data[: err.start], data[err.start :]
                if start == 0 and data.startswith(BOM):
                    data = data[len(BOM) :]
            if data:
                yield data
        if blank:
            raise InvalidInput("the file is empty")

    def texts(self) -> Iterator[str]:
        return (piece.decode("utf-8") for piece in self.pieces())

    @property
    def sha256(self) -> str:
        assert self.digest is not None
        return self.digest.hexdigest()


def _lines(texts: Iterable[str]) -> Iterator[str]:
    """The lines of the text, each with its "\\n" (the last one may lack it)."""
    pending = ""
    for text in texts:
        parts = (pending + text).split("\n")
        pending = parts.pop()
        for part in parts:
            yield part + "\n"
    if pending:
        yield pending


def sniff_delimiter(lines: list[str], complete: bool = True) -> str:
    """The delimiter (one of DELIMITERS) that splits the header into most columns and every sampled row into
    as many; comma when it does so at all, so a comma CSV with semicolons in its text stays comma-separated.
    With no consistent candidate, the one giving the header most fields (comma on a tie). ``complete``: the
    lines are the whole file (else the last record may be cut, and is not judged)."""
    widths: dict[str, tuple[int, bool]] = {}
    for delimiter in DELIMITERS:
        try:
            rows = [row for row in csv.reader(lines, delimiter=delimiter) if row]
        except csv.Error:
            continue
        if not complete and len(rows) > 1:
            rows = rows[:-1]
        if rows:
            widths[delimiter] = (len(rows[0]), all(len(row) == len(rows[0]) for row in rows))
    consistent = [d for d, (width, even) in widths.items() if even and width > 1]
    if consistent:
        return max(consistent, key=lambda d: widths[d][0]) if "," not in consistent else ","
    return max(widths, key=lambda d: widths[d][0]) if widths else ","


class _Feed:
    """The lines csv.reader reads, kept until they are parsed: ``full`` once about CHUNK_CHARS are kept;
    ``exhausted`` once the file ends."""

    def __init__(self, lines: Iterator[str]):
        self.taken: list[str] = []
        self.full = False
        self.exhausted = False
        self.lines = self._feed(lines)

    def _feed(self, lines: Iterator[str]) -> Iterator[str]:
        taken, size, limit = self.taken, 0, CHUNK_CHARS
        for line in lines:
            taken.append(line)
            size += len(line)
            if size >= limit:
                self.full, size = True, 0
            yield line
        self.exhausted = True

    def take(self) -> list[str]:
        block = self.taken[:]
        self.taken.clear()
        self.full = False
        return block


def _opening_line(lines: list[str], first: int) -> int:
    """The line (numbered from ``first``) on which the quoted field left open at the end of ``lines`` opens."""
    inside, opened = False, first
    for number, line in enumerate(lines, start=first):
        if line.count('"') % 2:
            if not inside:
                opened = number
            inside = not inside
    return opened


class _CsvBlocks:
    """Records as csv.reader reads them, the first that is not well-formed named by its line: the header
    (``header``), then the data rows as blocks of about CHUNK_CHARS of text (whole records) once each record's
    field count is checked. ``names``: the header, when ``lines`` start after it; ``before``: the lines of the
    file before ``lines``."""

    def __init__(self, lines: Iterator[str], delimiter: str, names: list[str] | None = None, before: int = 0):
        self.feed = _Feed(lines)
        self.reader = csv.reader(self.feed.lines, delimiter=delimiter)
        self.names = names
        self.before = before

    @property
    def line(self) -> int:
        """The number of the last line read."""
        return self.before + self.reader.line_num

    def _records(self) -> Iterator[list[str]]:
        feed, reader = self.feed, self.reader
        while True:
            first, start = self.line + 1, len(feed.taken)
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as err:  # e.g. a field longer than csv.field_size_limit() characters
                raise InvalidInput(f"line {self.line} is not well-formed CSV: {err}") from None
            if feed.exhausted:  # the reader ran out of lines inside a quoted field
                line = _opening_line(feed.taken[start:], first)
                raise InvalidInput(f"unclosed quote: the quoted field that opens on line {line} never closes")
            yield row

    def header(self) -> list[str]:
        """The column names: the first record that is not a blank line, checked."""
        for row in self._records():
            if row:  # blank lines are skipped, as pandas does
                self.names = _header(row)
                self.feed.take()
                return self.names
        raise InvalidInput("the file has no header row")

    def __iter__(self) -> Iterator[list[str]]:
        width = len(self.names if self.names is not None else self.header())
        feed = self.feed
        for row in self._records():
            if len(row) > width:  # pandas would take an over-long first row's extra field as an index
                raise InvalidInput(f"line {self.line} has {len(row)} fields, more than the {width} in the header")
            if row and len(row) < width:  # a short row is ragged too (an empty field is written as ",,")
                raise InvalidInput(f"line {self.line} has {len(row)} fields, fewer than the {width} in the header")
            if feed.full:
                yield feed.take()
        if feed.taken:
            yield feed.take()


class _Stream:
    """The checked bytes of a file (``_Decoder.pieces``) as they are read: its first lines (``peek``), then its
    lines one at a time (``lines``), then the bytes not taken followed by the pieces not read (``rest``)."""

    def __init__(self, pieces: Iterator[bytes]):
        self.pieces = pieces
        self.buffer = b""
        self.pos = 0  # the bytes of the buffer taken

    def _more(self) -> bool:
        piece = next(self.pieces, None)
        if piece is None:
            return False
        self.buffer = self.buffer[self.pos :] + piece
        self.pos = 0
        return True

    def _line_end(self, offset: int) -> int:
        """The end (after its newline) of the line ``offset`` bytes after those taken, as an offset from them,
        reading pieces as needed; -1 when the file ends first."""
        search = offset
        while True:
            end = self.buffer.find(b"\n", self.pos + search)
            if end >= 0:
                return end + 1 - self.pos
            search = len(self.buffer) - self.pos
            if not self._more():
                return -1

    def peek(self, n: int) -> list[str]:
        """The first ``n`` lines not taken (fewer at the end of the file), each with its "\\n" (the last one may
        lack it), leaving them to be taken."""
        offset = 0
        for _ in range(n):
            end = self._line_end(offset)
            if end < 0:
                offset = len(self.buffer) - self.pos
                break
            offset = end
        return list(_lines([self.buffer[self.pos : self.pos + offset].decode("utf-8")]))

    def lines(self) -> Iterator[str]:
        """The lines not taken, each taken as it is yielded."""
        while True:
            end = self._line_end(0)
            if end < 0:
                end = len(self.buffer) - self.pos
                if not end:
                    return
            line = self.buffer[self.pos : self.pos + end].decode("utf-8")
            self.pos += end
            yield line

    def rest(self) -> Iterator[bytes]:
        rest, self.buffer, self.pos = self.buffer[self.pos :], b"", 0  # held once, by the caller
        return chain([rest], self.pieces)


NEWLINE, RETURN, QUOTE = b"\n"[0], b"\r"[0], b'"'[0]


def _plain_quotes(data: np.ndarray, quotes: np.ndarray, sep: int) -> bool:
    """Whether every quote (at ``quotes``, in order) opens a field, closes one or doubles a quote inside one: the
    quotes csv.reader reads as quoting. Then a byte is inside a quoted field exactly when an odd number of quotes
    precede it."""
    opening, closing = quotes[0::2], quotes[1::2]
    before = data[opening[opening > 0] - 1]  # the first byte of the data starts a record
    after = data[closing[closing + 1 < data.size] + 1]  # the last byte ends the file
    return bool(np.isin(before, (sep, NEWLINE, QUOTE)).all() and np.isin(after, (sep, NEWLINE, RETURN, QUOTE)).all())


def _outside(quotes: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Which of the ``positions`` an even number of ``quotes`` precede."""
    before = np.searchsorted(quotes, positions)
    before &= 1
    return before == 0


def _check_block(buffer: bytes, delimiter: str, width: int, final: bool) -> tuple[int, bool] | None:
    """How many bytes at the start of ``buffer`` (which starts with a record) are whole records, and whether
    csv.reader would surely read each of them without error as a blank line or ``width`` fields; None when some
    quote in them is not one that opens a field, closes one or doubles a quote inside one (``_plain_quotes``),
    where only csv.reader knows where records end. ``final``: the buffer ends the file (and its last record).

    A newline ends a record when an even number of quotes precede it (CSV's "" inside a quoted field keeps the
    parity), a delimiter separates fields on the same condition; numpy finds them over the bytes."""
    data = np.frombuffer(buffer, dtype=np.uint8)
    ends = np.flatnonzero(data == NEWLINE)
    quoted = buffer.find(b'"') >= 0
    quotes = np.flatnonzero(data == QUOTE) if quoted else ends[:0]
    if quoted:
        ends = ends[_outside(quotes, ends)]
    cut = len(buffer) if final else int(ends[-1]) + 1 if ends.size else 0
    if not cut:
        return 0, True
    data = data[:cut]
    sep = ord(delimiter)
    delimiters = np.flatnonzero(data == sep)
    if quoted:
        quotes = quotes[quotes < cut]
        if not _plain_quotes(data, quotes, sep):
            return None
        if quotes.size % 2:  # a quoted field still open where the file ends
            return cut, False
        delimiters = delimiters[_outside(quotes, delimiters)]
    if not ends.size or ends[-1] != cut - 1:  # the last record of the file, without its newline
        ends = np.append(ends, cut)
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts
    blank = (lengths == 0) | ((lengths == 1) & (data[np.minimum(starts, cut - 1)] == RETURN))
    fields = np.diff(np.searchsorted(delimiters, ends), prepend=0) + 1
    if not np.all((fields == width) | blank):
        return cut, False
    returns = np.flatnonzero(data == RETURN)
    if returns.size:  # csv.reader takes a carriage return only before a newline or at the end of the file
        following = returns + 1
        if not np.all((following == cut) | (data[np.minimum(following, cut - 1)] == NEWLINE)):
            return cut, False
    limit = csv.field_size_limit()
    if lengths.max() > limit:  # a field over the limit (in characters; its bytes are at least as many)?
        bounds = np.sort(np.concatenate((delimiters, ends)))
        if (np.diff(bounds, prepend=-1) - 1).max() > limit:
            return cut, False
    return cut, True


def _decoded(pieces: Iterable[bytes]) -> Iterator[str]:
    """Checked UTF-8 bytes as text, a character cut by the end of a piece decoded with the next."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    for piece in pieces:
        yield decoder.decode(piece)
    yield decoder.decode(b"", final=True)


def _data_blocks(stream: _Stream, before: int, delimiter: str, names: list[str]) -> Iterator[bytes | str]:
    """The data rows after the header (``before``: the lines up to it) as blocks of about CHUNK_CHARS bytes of
    whole records, each once its records are checked: by ``_check_block``, or where it cannot vouch for them by
    csv.reader (``_CsvBlocks``), which names the first bad line."""
    width, line = len(names), before
    block: list[bytes] = []
    size = 0
    rest = b""
    pieces = stream.rest()
    final = False
    while not final:
        piece = next(pieces, None)
        final = piece is None
        buffer = rest + piece if rest and piece else piece or rest
        checked = _check_block(buffer, delimiter, width, final)
        if checked is None or (checked[0] == 0 and len(buffer) >= CHUNK_CHARS):  # csv.reader from here on
            if block:
                yield b"".join(block)
            for lines in _CsvBlocks(_lines(_decoded(chain([buffer], pieces))), delimiter, names, line):
                yield "".join(lines)
            return
        cut, surely = checked
        records, rest = buffer[:cut], buffer[cut:]
        del piece, buffer  # only ``records`` is held while it is parsed
        if not surely:
            for _ in _CsvBlocks(_lines([records.decode("utf-8")]), delimiter, names, line):
                pass
        line += records.count(b"\n")
        if records:
            block.append(records)
            size += len(records)
        if block and (size >= CHUNK_CHARS or final):
            yield b"".join(block)
            block, size = [], 0


def _header(row: list[str]) -> list[str]:
    names = [h.strip() for h in row]
    if len(names) > MAX_COLUMNS:
        raise InvalidInput(f"the file has {len(names)} columns, more than the limit of {MAX_COLUMNS}")
    if any(not n for n in names):
        raise InvalidInput("the header has an empty column name")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InvalidInput(f"duplicate column name(s) in the header: {', '.join(dupes)}")
    return names


def _csv_chunks(
    stream: _Stream, delimiter: str, as_text: Iterable[str] = ()
) -> Iterator[tuple[list[str], pd.DataFrame]]:
    """The data rows as frames typed as pandas types them (the ``as_text`` columns: raw strings), about
    CHUNK_CHARS bytes of text each."""
    header = _CsvBlocks(stream.lines(), delimiter)
    names = header.header()
    text = [i for i, n in enumerate(names) if n in as_text]
    for block in _data_blocks(stream, header.line, delimiter, names):
        yield names, _parse(block, delimiter, len(names), text)


def _parse(block: bytes | str, delimiter: str, width: int, as_text: list[int]) -> pd.DataFrame:
    try:
        return pd.read_csv(
            io.BytesIO(block) if isinstance(block, bytes) else io.StringIO(block),
            sep=delimiter,
            header=None,
            names=list(range(width)),
            index_col=False,
            dtype=dict.fromkeys(as_text, str),
            skipinitialspace=True,
        )
    except pd.errors.ParserError as err:
        raise InvalidInput(f"the file is not a well-formed CSV: {err}") from None


def _jsonl_chunks(lines: Iterator[str], names: dict[str, None]) -> Iterator[list[dict]]:
    """The records of a JSON Lines file, about CHUNK_CHARS of text at a time; ``names`` collects the field
    names in order of first appearance."""
    records: list[dict] = []
    size = 0
    number = 0
    for physical in lines:
        for line in physical.splitlines():
            number += 1
            if not line.strip():
                continue
            try:
                record = jsontext.loads(line)
            except jsontext.JsonRefused as err:
                raise InvalidInput(f"line {number} is refused: {err}") from None
            except ValueError as err:
                raise InvalidInput(f"line {number} is not valid JSON: {err}") from None
            if not isinstance(record, dict):
                raise InvalidInput(f"line {number} is not a JSON object")
            for key, value in record.items():
                if isinstance(value, dict | list):
                    raise InvalidInput(f"line {number}: field {key!r} is nested; only flat objects are supported")
                names.setdefault(key)
            if len(names) > MAX_COLUMNS:
                raise InvalidInput(f"the file has more than the limit of {MAX_COLUMNS} columns (line {number})")
            records.append(record)
            size += len(line)
            if size >= CHUNK_CHARS:
                yield records
                records, size = [], 0
    if records:
        yield records


def _display(value: str) -> str:
    return value.split("\x00", 1)[0]


def _counted(value: str) -> str:
    """A text value as counted: a value over TOP_VALUE_CHARS characters is kept as its truncation plus a digest
    (distinct values stay distinct; the profile shows only the truncation)."""
    if len(value) <= TOP_VALUE_CHARS:
        return value
    digest = hashlib.blake2b(value.encode(), digest_size=16).hexdigest()
    return f"{value[: TOP_VALUE_CHARS - 1]}\u2026\x00{digest}"


def _is_phone(value: str) -> bool:
    if not PHONE.fullmatch(value) or ISO_DATE.fullmatch(value):
        return False
    return 7 <= sum(c.isdigit() for c in value) <= 15


def sensitivity(counts: Counter[str]) -> str | None:
    """email or phone when most counted values look like one; identifier when nearly every value is distinct
    (at least IDENTIFIER_SHARE of SENSITIVE_MIN_ROWS or more counted values); else None."""
    counted = sum(counts.values())
    if not counted:
        return None
    if 2 * sum(n for v, n in counts.items() if EMAIL.fullmatch(_display(v))) > counted:
        return "email"
    if 2 * sum(n for v, n in counts.items() if _is_phone(_display(v))) > counted:
        return "phone"
    if counted >= SENSITIVE_MIN_ROWS and len(counts) >= IDENTIFIER_SHARE * counted:
        return "identifier"
    return None


class _Column:
    """The running profile of one column."""

    def __init__(self, name: str, missing: int = 0):
        self.name = name
        self.missing = missing
        self.observed = 0
        self.absent = missing  # JSON Lines: records without the field (an all-null field is numeric if any)
        self.numeric = True  # every observed value so far is a number
        self.booleans = False  # some chunk's values were read as booleans (counted as True / False)
        self.texts = False  # some chunk's values were read as text
        self.n = 0
        self.sums: list[float] = []  # of the observed values in consecutive blocks of SUM_BLOCK
        self.pending = np.empty(0)  # the observed values of the block not yet full
        self.low = np.inf
        self.high = -np.inf
        self.first_infinite: int | None = None
        self.counts: Counter[str] = Counter()
        self.capped = False
        self.uncounted = False  # turned to text after numbers that were not counted
        self.integer = True  # every observed number so far is a whole number
        self.numbers: set[float] = set()  # the distinct whole numbers, while they are at most DISTINCT_CAP
        self.numbers_capped = False

    def add(
        self,
        missing: int,
        observed: int,
        numbers: np.ndarray | None,
        texts: Callable[[], list[str]],
        row: int,
        booleans: bool = False,
    ):
        """One chunk: ``numbers`` (all its values, NaN when missing) is None when some value is not a number;
        ``booleans``: its values were read as booleans."""
        self.missing += missing
        if self.numeric and numbers is None:
            self.numeric = False
            self.uncounted = self.uncounted or self.observed > 0
        elif not self.numeric and numbers is not None and observed:  # numbers in a text column: not as written
            self.uncounted = True
        self.observed += observed
        if numbers is None and observed:
            self.booleans = self.booleans or booleans
            self.texts = self.texts or not booleans
        if self.numeric:
            assert numbers is not None
            values = numbers[~np.isnan(numbers)]
            if values.size:
                self.n += values.size
                self._sum(values)
                self.low = min(self.low, float(values.min()))
                self.high = max(self.high, float(values.max()))
                self._count_numbers(values)
            if self.first_infinite is None:
                infinite = np.isinf(numbers)
                if infinite.any():
                    self.first_infinite = row + int(np.argmax(infinite)) + 1
        elif observed:
            self.count(texts())

    def _sum(self, values: np.ndarray) -> None:
        """Sums of blocks of SUM_BLOCK values however the chunks fall, so the mean does not depend on the chunking
        (and is numpy's mean, bit for bit, for up to SUM_BLOCK values)."""
        values = np.concatenate([self.pending, values]) if self.pending.size else values
        full = values.size - values.size % SUM_BLOCK
        self.sums.extend(float(np.add.reduce(values[i : i + SUM_BLOCK])) for i in range(0, full, SUM_BLOCK))
        self.pending = values[full:].copy()

    def _count_numbers(self, values: np.ndarray) -> None:
        """Whether every number is whole and, while they are, their distinct values (at most DISTINCT_CAP): what
        tells a class label or a row number from a measurement (``mlcore.steps.problem``)."""
        if not self.integer:
            return
        if not np.all(np.isfinite(values) & (values == np.floor(values))):
            self.integer, self.numbers = False, set()
            return
        if not self.numbers_capped:
            self._add_numbers(np.unique(values).tolist())

    def _add_numbers(self, values: Iterable[float]) -> None:
        self.numbers.update(values)
        if len(self.numbers) > DISTINCT_CAP:
            self.numbers_capped, self.numbers = True, set()

    def mean(self) -> float:
        return math.fsum([*self.sums, float(np.add.reduce(self.pending))]) / self.n

    def count(self, texts: list[str]) -> None:
        if texts and max(map(len, texts)) > TOP_VALUE_CHARS:
            texts = [_counted(t) for t in texts]
        counts = self.counts
        if not self.capped and len(counts) + len(texts) <= DISTINCT_CAP:
            counts.update(texts)
            return
        chunk = Counter(texts)
        known = chunk.keys() & counts.keys()
        for value in known:
            counts[value] += chunk[value]
        room = max(DISTINCT_CAP - len(counts), 0)
        if len(chunk) - len(known) > room:
            self.capped = True
        if room:  # new values join in order of first appearance while there is room
            for value in islice((v for v in chunk if v not in known), room):
                counts[value] = chunk[value]

    @property
    def kind(self) -> str:
        """numeric, categorical, or empty (no observed value: either kind's values may join it)."""
        if not self.observed:
            return "empty"
        return "numeric" if self.numeric else "categorical"

    def merge(self, other: _Column) -> None:
        """Add the profile of the same column in the rows after these (another part of the data set)."""
        self.missing += other.missing
        self.observed += other.observed
        self.absent += other.absent
        self.numeric = self.numeric and other.numeric
        self.booleans = self.booleans or other.booleans
        self.texts = self.texts or other.texts
        self.n += other.n
        self.sums = [*self.sums, float(np.add.reduce(self.pending)), *other.sums]
        self.pending = other.pending.copy()
        self.low, self.high = min(self.low, other.low), max(self.high, other.high)
        self.capped = self.capped or other.capped
        self.integer = self.integer and other.integer
        self.numbers_capped = self.numbers_capped or other.numbers_capped
        if not self.integer or self.numbers_capped:
            self.numbers = set()
        else:
            self._add_numbers(other.numbers)
        for value, n in other.counts.items():
            if value in self.counts or len(self.counts) < DISTINCT_CAP:
                self.counts[value] += n
            else:
                self.capped = True

    def state(self) -> dict:
        """The running profile as a JSON document (``from_state`` reads it back), to carry it between the
        invocations that scan the parts of one data set."""
        return {
            "name": self.name,
            "missing": self.missing,
            "observed": self.observed,
            "absent": self.absent,
            "numeric": self.numeric,
            "booleans": self.booleans,
            "texts": self.texts,
            "n": self.n,
            "sums": [*self.sums, float(np.add.reduce(self.pending))],
            "low": self.low if self.n else None,
            "high": self.high if self.n else None,
            "counts": [[value, n] for value, n in self.counts.items()],
            "capped": self.capped,
            "integer": self.integer,
            "numbers": sorted(self.numbers),
            "numbers_capped": self.numbers_capped,
        }

    @classmethod
    def from_state(cls, doc: dict) -> _Column:
        column = cls(str(doc["name"]), int(doc["missing"]))
        column.observed, column.absent, column.n = int(doc["observed"]), int(doc["absent"]), int(doc["n"])
        column.numeric, column.booleans, column.texts = bool(doc["numeric"]), bool(doc["booleans"]), bool(doc["texts"])
        column.sums = [float(v) for v in doc["sums"]]
        column.low = np.inf if doc["low"] is None else float(doc["low"])
        column.high = -np.inf if doc["high"] is None else float(doc["high"])
        column.counts = Counter({str(value): int(n) for value, n in doc["counts"]})
        column.capped = bool(doc["capped"])
        column.integer = bool(doc.get("integer", False))  # a state from before these were kept: no claim
        column.numbers = {float(v) for v in doc.get("numbers", [])}
        column.numbers_capped = bool(doc.get("numbers_capped", False))
        return column

    @property
    def recount(self) -> bool:
        """Text whose values were not all counted as themselves: count them again, as text, in a second pass."""
        return not self.numeric and (self.uncounted or (self.booleans and self.texts))

    def entry(self, fmt: str) -> dict:
        entry: dict = {"name": self.name, "missing": self.missing}
        if self.numeric and (fmt == "csv" or self.observed or self.absent):  # as pandas types an all-null field
            entry["kind"] = "numeric"
            entry["min"] = self.low if self.n else None
            entry["max"] = self.high if self.n else None
            entry["mean"] = self.mean() if self.n else None
            if self.n and self.integer:  # whole numbers only: how many distinct ones (class labels, row numbers)
                entry["integer"] = True
                entry["distinct"] = f">= {DISTINCT_CAP}" if self.numbers_capped else len(self.numbers)
            return entry
        entry["kind"] = "categorical"
        counts = self.counts
        entry["distinct"] = f">= {DISTINCT_CAP}" if self.capped else len(counts)
        sensitive = sensitivity(counts)
        if sensitive:
            entry["sensitive"] = sensitive  # counts only: no value of the column is shown
        else:
            entry["top"] = [[_display(v), n] for v, n in counts.most_common(TOP_CATEGORIES)]
        return entry


def _add_csv(columns: dict[str, _Column], names: list[str], frame: pd.DataFrame, row: int) -> None:
    for i, name in enumerate(names):
        column = columns.setdefault(name, _Column(name))
        values = frame[i]  # typed by pandas, as it types a whole file: numbers, booleans or text
        mask = values.isna().to_numpy()
        observed = values[~mask]
        numbers, booleans = None, False
        if pd.api.types.is_bool_dtype(values.dtype):
            booleans = True
        elif pd.api.types.is_numeric_dtype(values.dtype):
            numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
        elif values.dtype == object:  # booleans with missing values (or values of mixed types)
            booleans = len(observed) > 0 and all(isinstance(v, bool | np.bool_) for v in observed)
        column.add(
            len(mask) - len(observed), len(observed), numbers, functools.partial(_texts, observed), row, booleans
        )


def _add_jsonl(columns: dict[str, _Column], names: Iterable[str], records: list[dict], row: int) -> None:
    for name in names:
        column = columns.setdefault(name, _Column(name, missing=row))  # absent from the rows before
        values = [r.get(name) for r in records]
        observed = [v for v in values if v is not None]
        column.absent += sum(name not in r for r in records)
        numbers = None
        if column.numeric and all(type(v) in (int, float) for v in observed):
            numbers = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        column.add(len(values) - len(observed), len(observed), numbers, functools.partial(_texts, observed), row)


def _texts(values: pd.Series | list) -> list[str]:
    if isinstance(values, pd.Series):
        if pd.api.types.infer_dtype(values, skipna=False) == "string":  # every value a str already
            return values.tolist()
        values = values.tolist()
    return [v if type(v) is str else str(v) for v in values]


@dataclass
class Scan:
    """What ``scan`` found: the file's size and SHA-256, its delimiter (CSV), rows and column profile;
    ``running``: the running profile of each column, which ``Profile`` merges across the parts of a data set."""

    format: str
    delimiter: str | None
    rows: int
    columns: list[dict]
    sha256: str
    size: int
    running: dict[str, _Column] = field(default_factory=dict, repr=False, compare=False)


def scan(read: Callable[[], Iterable[bytes]], fmt: str = "csv") -> Scan:
    """Validate and profile the file ``read()`` yields in chunks, or raise InvalidInput naming what is wrong.

    Memory is bounded by the chunk sizes and DISTINCT_CAP, not by the file. ``read`` is called once more when a
    column that began with numbers turns out to be text (its values are then counted in a second pass)."""
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
    columns: dict[str, _Column] = {}
    decoder = _Decoder(read())
    delimiter, chunks = _open(decoder, fmt)
    rows = 0
    for names, chunk in chunks:
        if len(chunk) == 0:  # only blank lines: no values to type
            continue
        if fmt == "csv":
            _add_csv(columns, names, chunk, rows)
        else:
            _add_jsonl(columns, names, chunk, rows)
        rows += len(chunk)
    if rows == 0:
        raise InvalidInput("the file has a header but no data rows" if fmt == "csv" else "the file has no JSON objects")
    if not columns:
        raise InvalidInput("the records have no fields")
    if any(not str(n).strip() for n in columns):
        raise InvalidInput("a record has an empty field name")
    for column in columns.values():
        if column.numeric and column.first_infinite is not None:
            raise InvalidInput(
                f"column {column.name!r} has infinite values (first in data row {column.first_infinite})"
            )
    again = {n for n, c in columns.items() if c.recount}
    if again:
        for name in again:
            columns[name].counts, columns[name].capped = Counter(), False
        for names, chunk in _open(_Decoder(read(), hashed=False), fmt, again)[1]:
            for i, name in enumerate(names):
                if name in again:
                    if fmt == "csv":
                        columns[name].count(chunk[i].dropna().tolist())
                    else:
                        columns[name].count([str(r[name]) for r in chunk if r.get(name) is not None])
    entries = [c.entry(fmt) for c in columns.values()]
    return Scan(fmt, delimiter, rows, entries, decoder.sha256, decoder.size, columns)


class Profile:
    """The profile of a data set made of CSV parts (one file each, every one with its header), merged part by
    part in key order: each part is scanned alone (``scan``), must have the first part's columns in the same order,
    its delimiter, and for each column the same kind (a column without values in a part fits either kind); then its
    running profile is added to the merged one. ``state`` / ``from_state`` carry it between invocations."""

    def __init__(self) -> None:
        self.first: str | None = None  # the first part's key
        self.names: list[str] = []
        self.delimiter: str | None = None
        self.rows = 0
        self.columns: dict[str, _Column] = {}

    def add(self, part: str, found: Scan) -> None:
        """Merge the scan of ``part``, or raise InvalidInput naming the part and the first differing column."""
        names = [c["name"] for c in found.columns]
        if self.first is None:
            self.first, self.names, self.delimiter = part, names, found.delimiter
            self.rows, self.columns = found.rows, dict(found.running)
            return
        self._check(part, names, found)
        for name in self.names:
            self.columns[name].merge(found.running[name])
        self.rows += found.rows

    def _check(self, part: str, names: list[str], found: Scan) -> None:
        unlike = f"part {part!r} does not match the first part {self.first!r}"
        for i, (want, got) in enumerate(zip(self.names, names, strict=False), start=1):
            if want != got:
                raise InvalidInput(f"{unlike}: column {i} is {got!r} where the first part has {want!r}")
        if len(names) > len(self.names):
            extra = names[len(self.names)]
            raise InvalidInput(f"{unlike}: it has an extra column {extra!r} (column {len(self.names) + 1})")
        if len(names) < len(self.names):
            lacking = self.names[len(names)]
            raise InvalidInput(f"{unlike}: it lacks the column {lacking!r} (column {len(names) + 1})")
        if found.delimiter != self.delimiter:
            raise InvalidInput(
                f"{unlike}: it is separated by {found.delimiter!r}, the first part by {self.delimiter!r}"
            )
        for name in self.names:
            before, here = self.columns[name].kind, found.running[name].kind
            if "empty" not in (before, here) and before != here:
                raise InvalidInput(f"{unlike}: column {name!r} is {here} in it and {before} in the parts before")

    def entries(self) -> list[dict]:
        return [self.columns[name].entry("csv") for name in self.names]

    def state(self) -> dict:
        return {
            "first": self.first,
            "names": self.names,
            "delimiter": self.delimiter,
            "rows": self.rows,
            "columns": [self.columns[name].state() for name in self.names],
        }

    @classmethod
    def from_state(cls, doc: dict) -> Profile:
        profile = cls()
        profile.first, profile.names = doc["first"], [str(n) for n in doc["names"]]
        profile.delimiter, profile.rows = doc["delimiter"], int(doc["rows"])
        profile.columns = {str(c["name"]): _Column.from_state(c) for c in doc["columns"]}
        return profile


def _open(
    decoder: _Decoder, fmt: str, as_text: Iterable[str] = ()
) -> tuple[str | None, Iterator[tuple[list[str], Any]]]:
    """The delimiter (CSV) and the file's chunks: (column names so far, a frame or a list of records)."""
    if fmt == "jsonl":
        names: dict[str, None] = {}
        return None, ((list(names), records) for records in _jsonl_chunks(_lines(decoder.texts()), names))
    stream = _Stream(decoder.pieces())
    sample = stream.peek(SNIFF_LINES)
    delimiter = sniff_delimiter(sample, complete=len(sample) < SNIFF_LINES)
    return delimiter, _csv_chunks(stream, delimiter, as_text)


def read_table(data: bytes, fmt: str = "csv", delimiter: str | None = None) -> pd.DataFrame:
    """Parse ``data`` as CSV with a header (``delimiter``, detected when None) or JSON Lines (one flat object
    per line)."""
    if fmt == "jsonl":
        return read_jsonl(data)
    if fmt != "csv":
        raise InvalidInput(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
    return read_csv(data, delimiter)


def read_tables(files: list[bytes], fmt: str = "csv", delimiter: str | None = None) -> pd.DataFrame:
    """The files (a version's file, or its parts in order, a header each) parsed as one table."""
    frames = [read_table(data, fmt, delimiter) for data in files]
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def _decode(data: bytes) -> str:
    return "".join(_Decoder([data], hashed=False).texts())


def _check_finite(frame: pd.DataFrame, first_line: int) -> None:
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_float_dtype(column):
            infinite = np.isinf(column.to_numpy())
            if infinite.any():
                line = first_line + int(np.argmax(infinite))
                raise InvalidInput(f"column {name!r} has infinite values (first in data row {line})")


def read_jsonl(data: bytes) -> pd.DataFrame:
    """JSON Lines: each non-blank line one object of scalars; columns in order of first appearance."""
    names: dict[str, None] = {}
    records = [r for chunk in _jsonl_chunks(iter([_decode(data)]), names) for r in chunk]
    if not records:
        raise InvalidInput("the file has no JSON objects")
    if any(not str(n).strip() for n in names):
        raise InvalidInput("a record has an empty field name")
    frame = pd.DataFrame.from_records(records, columns=list(names))
    frame = frame.infer_objects()
    _check_finite(frame, 1)
    return frame


def read_csv(data: bytes, delimiter: str | None = None) -> pd.DataFrame:
    """Parse a CSV with a header row (``delimiter``, detected when None), or raise InvalidInput naming what is
    wrong."""
    text = b"".join(_Decoder([data], hashed=False).pieces())
    stream = _Stream(text[i : i + CHUNK_CHARS] for i in range(0, len(text), CHUNK_CHARS))
    if not delimiter:
        sample = stream.peek(SNIFF_LINES + 1)
        delimiter = sniff_delimiter(sample[:SNIFF_LINES], complete=len(sample) <= SNIFF_LINES)
    header = _CsvBlocks(stream.lines(), delimiter)
    names = header.header()
    for _ in _data_blocks(stream, header.line, delimiter, names):  # the checks, block by block
        pass
    try:
        frame = pd.read_csv(io.BytesIO(text), sep=delimiter, skipinitialspace=True)
    except pd.errors.ParserError as err:
        raise InvalidInput(f"the file is not a well-formed CSV: {err}") from None
    except pd.errors.EmptyDataError:
        raise InvalidInput("the file has no header row") from None
    frame.columns = names
    if len(frame) == 0:
        raise InvalidInput("the file has a header but no data rows")
    _check_finite(frame, 1)
    return frame


def column_kinds(frame: pd.DataFrame) -> dict[str, str]:
    """numeric for numeric dtypes, categorical for everything else."""
    return {
        str(c): (
            "numeric"
            if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
            else "categorical"
        )
        for c in frame.columns
    }


def to_columns(frame: pd.DataFrame, kinds: dict[str, str] | None = None) -> dict[str, np.ndarray]:
    """Column arrays as the numpy preprocessing expects them (numeric: float64 with NaN; else object).

    ``kinds`` fixes the columns' kinds (the streaming path reads every chunk with the first pass's)."""
    kinds = column_kinds(frame) if kinds is None else kinds
    return {
        name: (
            frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
            if kinds[name] == "numeric"
            else frame[name].astype(object).where(frame[name].notna(), None).to_numpy(dtype=object)
        )
        for name in frame.columns
    }
