"""CSV parsing and validation (the only module that imports pandas).

Imported only by the functions that parse CSV (Ingest, Preprocess); Predict,
GradientWorker and Aggregator never load pandas.
"""

from __future__ import annotations

import csv
import io

import numpy as np
import pandas as pd

from .errors import InvalidInput

MAX_COLUMNS = 1000


def read_csv(data: bytes) -> pd.DataFrame:
    """Parse a CSV with a header row, or raise InvalidInput naming what is wrong."""
    if not data.strip():
        raise InvalidInput("the file is empty")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        bad = data[err.start : err.start + 1]
        raise InvalidInput(f"the file is not UTF-8 text (byte {err.start}: {bad!r})") from None
    reader = csv.reader(io.StringIO(text))
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
    try:
        frame = pd.read_csv(io.StringIO(text), skipinitialspace=True)
    except pd.errors.ParserError as err:
        raise InvalidInput(f"the file is not a well-formed CSV: {err}") from None
    except pd.errors.EmptyDataError:
        raise InvalidInput("the file has no header row") from None
    frame.columns = names
    if len(frame) == 0:
        raise InvalidInput("the file has a header but no data rows")
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


def to_columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Column arrays as the numpy preprocessing expects them (numeric: float64 with NaN; else object)."""
    kinds = column_kinds(frame)
    return {
        name: (
            frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
            if kinds[name] == "numeric"
            else frame[name].astype(object).where(frame[name].notna(), None).to_numpy(dtype=object)
        )
        for name in frame.columns
    }
