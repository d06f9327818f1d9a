"""Preprocess in bounded memory: statistics in a first streaming pass, transform and shards in a second.

For data sets too large to hold as one frame (``dispatch.STREAM_THRESHOLD_BYTES``), the CSV is read from S3 in
chunks of ``chunk_rows`` rows, twice:

1. every row gets its split (train / validation / test) from a seeded generator per chunk, and the
   training rows feed running statistics: per numeric column the count, mean and squared deviations of the
   clipped, transformed observed values (``Moments``) and a fixed-size reservoir sample (for the median); per
   categorical column the category counts (bounded). Mean imputation and standardization are exact;
   the median is the median of a uniform reservoir sample of ``RESERVOIR`` observed values (exact
   below that many rows) - an approximation, documented in docs/preprocessing.md.
2. the same rows in the same order are transformed with the fitted ``Preprocessor`` (the one Predict
   uses) and streamed into the ``.npy`` shards and the test/validation blocks by multipart upload: each
   ``.npy`` header is written first from the row counts known after pass 1, so no block is ever held
   whole in memory.

The split is per row (each row independently in test with probability ``test_fraction``), so the test
size is ``test_fraction`` of the rows in expectation rather than exactly as in the in-memory path.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterator
from typing import Any, cast

import numpy as np
import pandas as pd

from mlcore.infra.errors import InvalidInput
from mlcore.infra.storage import Multipart, ObjectStore
from mlcore.math import linear
from mlcore.math.preprocessing import (
    Moments,
    NumericColumn,
    PreprocessingSpec,
    as_categories,
    as_numeric,
    assemble,
    clip_and_transform,
    fit_text_counts,
    numeric_fill,
    resolve_kinds,
    rows_to_drop,
)
from mlcore.steps import ingestion
from mlcore.steps.preparation import shared
from mlcore.steps.schemas import Block, PreprocessResult, Shard, TrainingRequest
from mlcore.steps.tabular import to_columns

CHUNK_ROWS = 50_000
RESERVOIR = 100_000
MAX_TRACKED_CATEGORIES = 100_000
TRAIN, VALIDATION, TEST = 0, 1, 2


def _chunks(
    store: ObjectStore, keys: list[str], kinds: dict[str, str], chunk_rows: int, delimiter: str = ","
) -> Iterator[pd.DataFrame]:
    """The rows of the files ``keys`` (a version's file, or its parts in order, a header each) as one table, in
    frames of at most ``chunk_rows`` rows (a part's last frame may be shorter)."""
    dtypes = {name: (np.float64 if kind == "numeric" else object) for name, kind in kinds.items()}
    for key in keys:
        body = store.open(key)
        try:
            # pandas reads the body with read() only (the stubs ask for a seekable file)
            yield from pd.read_csv(
                cast(Any, body), sep=delimiter, chunksize=chunk_rows, skipinitialspace=True, dtype=dtypes
            )
        except (pd.errors.ParserError, ValueError) as err:
            raise InvalidInput(f"the file could not be read in chunks: {err}") from None
        finally:
            body.close()


def row_splits(n_rows: int, start: int, request: TrainingRequest) -> np.ndarray:
    """The split (TRAIN, VALIDATION or TEST) of each of ``n_rows`` rows from row ``start`` on: seeded per chunk."""
    u = np.random.default_rng([request.seed, start]).random(n_rows)
    out = np.full(n_rows, TRAIN, dtype=np.int8)
    out[u < request.test_fraction] = TEST
    validation_edge = request.test_fraction + (1 - request.test_fraction) * request.validation_fraction
    out[(u >= request.test_fraction) & (u < validation_edge)] = VALIDATION
    return out


class _Numeric:
    def __init__(self, name: str, clip, transform: str, seed: int):
        self.name, self.clip, self.transform = name, clip, transform
        self.raw = Moments()  # of the observed values (mean imputation)
        self.shaped = Moments()  # of the clipped and transformed values (standardization)
        self.missing = 0
        self.sample = np.empty(0)
        self.seen = 0
        self.rng = np.random.default_rng(seed)

    def update(self, x: np.ndarray) -> None:
        missing = np.isnan(x)
        self.missing += int(missing.sum())
        observed = x[~missing]
        if observed.size == 0:
            return
        self.raw.add(observed)
        self.shaped.add(clip_and_transform(self.name, observed, self.clip, self.transform))
        # reservoir sampling (Algorithm R, vectorized per chunk): a uniform sample of the observed values
        room = RESERVOIR - self.sample.size
        if room > 0:
            self.sample = np.concatenate([self.sample, observed[:room]])
        rest = observed[max(room, 0) :]
        if rest.size:
            positions = self.seen + max(room, 0) + np.arange(rest.size)
            slots = (self.rng.random(rest.size) * (positions + 1)).astype(np.int64)
            keep = slots < RESERVOIR
            self.sample[slots[keep]] = rest[keep]
        self.seen += observed.size

    def fit(self, rules, spec: PreprocessingSpec) -> NumericColumn:
        if self.raw.n == 0:
            raise InvalidInput(f"column {self.name!r} has no values in the training split")
        impute, fill = numeric_fill(self.name, rules, spec, lambda: self.raw.mean, lambda: np.median(self.sample))
        shaped = copy.copy(self.shaped)  # plus the fills of the missing values, which the transform will see
        if fill is not None and self.missing:
            shaped.add_constant(
                float(clip_and_transform(self.name, np.array([fill]), self.clip, self.transform)[0]), self.missing
            )
        standardize = spec.standardize if rules.standardize is None else rules.standardize
        mean, scale = shaped.standardization() if standardize else (0.0, 1.0)
        return NumericColumn(
            name=self.name, fill=fill, impute=impute, clip=self.clip, transform=self.transform, mean=mean, scale=scale
        )


def _npy_header(rows: int, cols: int) -> bytes:
    """The .npy v1 header of a C-ordered float32 (rows, cols) array."""
    header = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}"
    pad = 64 - (10 + len(header) + 1) % 64
    text = (header + " " * pad + "\n").encode("latin1")
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text


def preprocess_streaming(
    store: ObjectStore, request: TrainingRequest, run_id: str, meta: dict, chunk_rows: int | None = None
) -> PreprocessResult:
    chunk_rows = chunk_rows or CHUNK_ROWS
    if meta["format"] != "csv":
        raise InvalidInput("streaming preprocessing reads CSV; re-ingest the data set as CSV")
    kinds = {c["name"]: c["kind"] for c in meta["columns"]}
    request, dropped_sensitive = shared.drop_sensitive(request, meta)
    target = request.target
    shared.check_target(target, kinds)
    spec = request.preprocessing or PreprocessingSpec()
    resolved, dropped_columns = resolve_kinds(kinds, target, spec)
    classifier = request.hyperparameters.model in linear.CLASSIFIERS
    numeric = {
        n: _Numeric(n, spec.rules(n).clip, spec.rules(n).transform, request.seed)
        for n, k in resolved.items()
        if k == "numeric"
    }
    counters: dict[str, Counter[str]] = {n: Counter() for n, k in resolved.items() if k != "numeric"}
    labels: set[str] = set()
    counts = [0, 0, 0]
    with_target = dropped = 0

    def rows(columns: dict[str, np.ndarray], start: int) -> tuple[np.ndarray, np.ndarray, int]:
        """(kept-row mask, split of every row, rows with a target) for one chunk."""
        keep, _, _ = shared.encode_target(columns[target], kinds[target], target, classifier)
        has_target = int(keep.sum())
        keep = keep & ~rows_to_drop(columns, kinds, spec)
        return keep, row_splits(len(keep), start, request), has_target

    # pass 1: statistics of the training rows
    start = 0
    for frame in _chunks(store, ingestion.data_keys(meta), kinds, chunk_rows, meta.get("delimiter", ",")):
        columns = to_columns(frame, kinds)
        keep, split, has_target = rows(columns, start)
        start += len(frame)
        with_target += has_target
        dropped += int((~keep).sum())
        for part in (TRAIN, VALIDATION, TEST):
            counts[part] += int((keep & (split == part)).sum())
        if classifier:
            labels.update(v for v in as_categories(columns[target][keep]) if v is not None)
        train = keep & (split == TRAIN)
        for name, acc in numeric.items():
            acc.update(as_numeric(name, columns[name][train]))
        for name, counter in counters.items():
            counter.update(v for v in as_categories(columns[name][train]) if v is not None)
            if len(counter) > MAX_TRACKED_CATEGORIES:
                raise InvalidInput(
                    f"column {name!r} has more than {MAX_TRACKED_CATEGORIES} categories; drop or hash it"
                )
    shared.check_rows(target, with_target, sum(counts))
    classes = shared.ordered_classes(labels, kinds[target] == "numeric") if classifier else None
    shared.check_classes(request.hyperparameters.model, target, classes)
    shared.check_split(
        request.test_fraction, request.validation_fraction, counts[TRAIN], counts[VALIDATION], counts[TEST]
    )
    shards = shared.plan_shards(run_id, counts[TRAIN], request.n_shards)
    fitted = [
        numeric[name].fit(spec.rules(name), spec)
        if kind == "numeric"
        else fit_text_counts(name, counters[name], spec.rules(name), spec, kind)
        for name, kind in resolved.items()
    ]
    prep = assemble(target, fitted, spec, dropped_columns, classes)

    # pass 2: transform and stream the rows into the shards and the held-out blocks
    test_block = shared.held_out(run_id, "test", counts[TEST])
    validation_block = shared.held_out(run_id, "validation", counts[VALIDATION]) if counts[VALIDATION] else None
    index = {label: i for i, label in enumerate(classes or [])}

    def transformed() -> Iterator[tuple[int, np.ndarray]]:
        start = 0
        for frame in _chunks(store, ingestion.data_keys(meta), kinds, chunk_rows, meta.get("delimiter", ",")):
            columns = to_columns(frame, kinds)
            keep, split, _ = rows(columns, start)
            start += len(frame)
            kept = {n: v[keep] for n, v in columns.items()}
            X = prep.transform({n: kept[n] for n in prep.input_names})
            if classifier:
                y = np.array([index[v] for v in as_categories(kept[target]) if v is not None], dtype=np.float64)
            else:
                y = kept[target].astype(np.float64)
            block = np.hstack([X, y[:, None]]).astype(np.float32)
            for part in (TRAIN, VALIDATION, TEST):
                rows_of_part = block[split[keep] == part]
                if rows_of_part.size:
                    yield part, rows_of_part

    writers = _Writers(store, shards, test_block, validation_block, len(prep.feature_names) + 1)
    try:
        for part, block in transformed():
            writers.write(part, block)
        writers.close()
        streaming = {"chunk_rows": chunk_rows, "median": f"reservoir sample of {RESERVOIR} values"}
        return shared.finish(
            store,
            request,
            run_id,
            meta,
            prep,
            shards,
            test_block,
            validation_block,
            dropped,
            streaming=streaming,
            dropped=dropped_sensitive,
        )
    except BaseException:
        writers.abort()
        store.delete(shared.written_keys(run_id, shards))
        raise


class _Stream:
    """One .npy object written by multipart upload: header first, then rows as they come."""

    def __init__(self, store: ObjectStore, key: str, rows: int, width: int):
        self.store, self.key, self.rows, self.left = store, key, rows, rows
        self.parts: list[bytes] = [_npy_header(rows, width)]
        self.buffered = len(self.parts[0])
        self.upload: Multipart | None = None

    def write(self, block: np.ndarray) -> None:
        self.parts.append(np.ascontiguousarray(block, dtype="<f4").tobytes())
        self.buffered += len(self.parts[-1])
        self.left -= block.shape[0]
        if self.buffered >= self.store.MIN_PART_BYTES:
            self.flush()

    def flush(self) -> None:
        if self.upload is None:
            self.upload = self.store.start_multipart(self.key)
        self.upload.part(b"".join(self.parts))
        self.parts, self.buffered = [], 0

    def close(self) -> None:
        if self.left != 0:
            raise RuntimeError(f"{self.key}: {self.left} rows short of the {self.rows} counted in pass 1")
        if self.upload is None:
            self.store.put_bytes(self.key, b"".join(self.parts))
        else:
            if self.parts:
                self.flush()
            self.upload.complete()

    def abort(self) -> None:
        if self.upload is not None:
            self.upload.abort()


class _Writers:
    def __init__(self, store: ObjectStore, shards: list[Shard], test: Block, validation: Block | None, width: int):
        self.shards = [_Stream(store, s.key, s.rows, width) for s in shards]
        self.current = 0
        self.held = {TEST: _Stream(store, test.key, test.rows, width)}
        if validation is not None:
            self.held[VALIDATION] = _Stream(store, validation.key, validation.rows, width)

    def write(self, part: int, block: np.ndarray) -> None:
        if part != TRAIN:
            self.held[part].write(block)
            return
        while block.shape[0]:
            shard = self.shards[self.current]
            take = min(shard.left, block.shape[0])
            shard.write(block[:take])
            block = block[take:]
            if shard.left == 0:
                shard.close()
                self.current += 1

    def close(self) -> None:
        if self.current != len(self.shards):
            raise RuntimeError(f"{len(self.shards) - self.current} shard(s) short of the rows counted in pass 1")
        for stream in self.held.values():
            stream.close()

    def abort(self) -> None:
        for stream in [*self.shards, *self.held.values()]:
            stream.abort()
