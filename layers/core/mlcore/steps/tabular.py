"""CSV / JSON Lines parsing, validation and profiling (the only module that imports pandas).

Imported only by the functions that parse CSV (Ingest, Preprocess); Predict,
GradientWorker and Aggregator never load pandas.
"""

from __future__ import annotations

import csv
import io

import numpy as np
import pandas as pd

from mlcore.infra import jsontext
from mlcore.infra.errors import InvalidInput

MAX_COLUMNS = 1000
FORMATS = ("csv", "jsonl")
TOP_CATEGORIES = 5


def read_table(data: bytes, fmt: str = "csv") -> pd.DataFrame:
    """Parse ``data`` as CSV with a header or JSON Lines (one flat object per line)."""
    if fmt == "jsonl":
        return read_jsonl(data)
    if fmt != "csv":
        raise InvalidInput(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
    return read_csv(data)


def _decode(data: bytes) -> str:
    if not data.strip():
        raise InvalidInput("the file is empty")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        bad = data[err.start : err.start + 1]
        raise InvalidInput(f"the file is not UTF-8 text (byte {err.start}: {bad!r})") from None


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
    text = _decode(data)
    records: list[dict] = []
    names: dict[str, None] = {}
    for number, line in enumerate(text.splitlines(), start=1):
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
    if not records:
        raise InvalidInput("the file has no JSON objects")
    if any(not str(n).strip() for n in names):
        raise InvalidInput("a record has an empty field name")
    frame = pd.DataFrame.from_records(records, columns=list(names))
    frame = frame.infer_objects()
    _check_finite(frame, 1)
    return frame


def profile(frame: pd.DataFrame) -> list[dict]:
    """Per column: kind, missing count, and min/max/mean (numeric) or distinct count and top categories."""
    kinds = column_kinds(frame)
    out = []
    for name in frame.columns:
        column = frame[name]
        entry: dict = {"name": str(name), "kind": kinds[name], "missing": int(column.isna().sum())}
        observed = column.dropna()
        if kinds[name] == "numeric":
            values = observed.to_numpy(dtype=np.float64)
            entry.update(
                {
                    "min": float(values.min()) if values.size else None,
                    "max": float(values.max()) if values.size else None,
                    "mean": float(values.mean()) if values.size else None,
                }
            )
        else:
            counts = observed.astype(str).value_counts()
            entry["distinct"] = int(counts.size)
            entry["top"] = [[str(k), int(v)] for k, v in counts.head(TOP_CATEGORIES).items()]
        out.append(entry)
    return out


def read_csv(data: bytes) -> pd.DataFrame:
    """Parse a CSV with a header row, or raise InvalidInput naming what is wrong."""
    text = _decode(data)
    reader = csv.reader(io.StringIO(text))
    try:
        names = _header_of_even_rows(reader)
    except csv.Error as err:  # e.g. a field longer than csv.field_size_limit() characters
        raise InvalidInput(f"line {reader.line_num} is not well-formed CSV: {err}") from None
    try:
        frame = pd.read_csv(io.StringIO(text), skipinitialspace=True)
    except pd.errors.ParserError as err:
        raise InvalidInput(f"the file is not a well-formed CSV: {err}") from None
    except pd.errors.EmptyDataError:
        raise InvalidInput("the file has no header row") from None
    frame.columns = names
    if len(frame) == 0:
        raise InvalidInput("the file has a header but no data rows")
    _check_finite(frame, 1)
    return frame


def _header_of_even_rows(reader) -> list[str]:
    """The header's column names, once every row is checked to have as many fields as the header."""
    rows = (row for row in reader if row)  # blank lines are skipped, as pandas does
    names = [h.strip() for h in next(rows, [])]
    if len(names) > MAX_COLUMNS:
        raise InvalidInput(f"the file has {len(names)} columns, more than the limit of {MAX_COLUMNS}")
    if any(not n for n in names):
        raise InvalidInput("the header has an empty column name")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InvalidInput(f"duplicate column name(s) in the header: {', '.join(dupes)}")
    for row in rows:  # pandas would take an over-long first row's extra field as an index, silently
        if len(row) > len(names):
            raise InvalidInput(
                f"line {reader.line_num} has {len(row)} fields, more than the {len(names)} in the header"
            )
        if len(row) < len(names):  # a short row is ragged too (an empty field is written as ",,")
            raise InvalidInput(
                f"line {reader.line_num} has {len(row)} fields, fewer than the {len(names)} in the header"
            )
    return names


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
