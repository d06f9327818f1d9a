"""Preprocess in bounded memory: statistics in a first streaming pass, transform and shards in a second.

For data sets too large to hold as one frame (``STREAM_THRESHOLD_BYTES``), the CSV is read from S3 in
chunks of ``chunk_rows`` rows, twice:

1. every row gets its split (train / validation / test) from a seeded generator per chunk, and the
   training rows feed running statistics: per numeric column the count, sum and sum of squares of the
   clipped, transformed observed values and a fixed-size reservoir sample (for the median); per
   categorical column the category counts (bounded). Mean imputation and standardization are exact;
   the median is the median of a uniform reservoir sample of ``RESERVOIR`` observed values (exact
   below that many rows) - an approximation, documented in the README.
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

import numpy as np
import pandas as pd

from mlcore.infra.errors import InvalidInput
from mlcore.infra.storage import S3Store
from mlcore.math import linear
from mlcore.math.preprocessing import (
    Moments,
    NumericColumn,
    PreprocessingSpec,
    Preprocessor,
    _categorical,
    _numeric,
    _shape,
    fit_text_counts,
    numeric_fill,
    resolve_kinds,
    rows_to_drop,
)
from mlcore.steps.preparation.in_memory import encode_target, processed_prefix
from mlcore.steps.schemas import Block, PreprocessResult, Shard, TrainingRequest
from mlcore.steps.tabular import to_columns

STREAM_THRESHOLD_BYTES = 64 * 1024 * 1024
CHUNK_ROWS = 50_000
RESERVOIR = 100_000
MAX_TRACKED_CATEGORIES = 100_000
TRAIN, VALIDATION, TEST = 0, 1, 2


def _chunks(store: S3Store, key: str, kinds: dict[str, str], chunk_rows: int) -> Iterator[pd.DataFrame]:
    dtypes = {name: (np.float64 if kind == "numeric" else object) for name, kind in kinds.items()}
    body = store.open(key)
    try:
        yield from pd.read_csv(body, chunksize=chunk_rows, skipinitialspace=True, dtype=dtypes)
    except (pd.errors.ParserError, ValueError) as err:
        raise InvalidInput(f"the file could not be read in chunks: {err}") from None
    finally:
        body.close()


def _split(n_rows: int, start: int, request: TrainingRequest) -> np.ndarray:
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
        self.shaped.add(_shape(self.name, observed, self.clip, self.transform))
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
            shaped.add_constant(float(_shape(self.name, np.array([fill]), self.clip, self.transform)[0]), self.missing)
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
    store: S3Store, request: TrainingRequest, run_id: str, meta: dict, chunk_rows: int | None = None
) -> PreprocessResult:
    chunk_rows = chunk_rows or CHUNK_ROWS
    if meta.get("format", "csv") != "csv":
        raise InvalidInput("streaming preprocessing reads CSV; re-ingest the data set as CSV")
    kinds = {c["name"]: c["kind"] for c in meta["columns"]}
    target = request.target
    if target not in kinds:
        raise InvalidInput(f"target column {target!r} is not in the data set (columns: {', '.join(kinds)})")
    spec = request.preprocessing or PreprocessingSpec()
    resolved, dropped_columns = resolve_kinds(kinds, target, spec)
    classifier = request.hyperparameters.model in linear.CLASSIFIERS
    numeric = {
        n: _Numeric(n, spec.rules(n).clip, spec.rules(n).transform, request.seed)
        for n, k in resolved.items()
        if k == "numeric"
    }
    counters = {n: Counter() for n, k in resolved.items() if k != "numeric"}
    labels: set[str] = set()
    counts = [0, 0, 0]
    dropped = 0

    def rows(columns: dict[str, np.ndarray], start: int):
        """(kept-row mask, split of the kept rows, target as float or labels) for one chunk."""
        keep, _, _ = encode_target(columns[target], kinds[target], target, classifier)
        keep = keep & ~rows_to_drop(columns, kinds, spec)
        split = _split(len(keep), start, request)
        return keep, split

    # pass 1: statistics of the training rows
    start = 0
    for frame in _chunks(store, meta["key"], kinds, chunk_rows):
        columns = to_columns(frame, kinds)
        keep, split = rows(columns, start)
        start += len(frame)
        dropped += int((~keep).sum())
        for part in (TRAIN, VALIDATION, TEST):
            counts[part] += int((keep & (split == part)).sum())
        if classifier:
            labels.update(v for v in _categorical(columns[target][keep]) if v is not None)
        train = keep & (split == TRAIN)
        for name, acc in numeric.items():
            acc.update(_numeric(name, columns[name][train]))
        for name, counter in counters.items():
            counter.update(v for v in _categorical(columns[name][train]) if v is not None)
            if len(counter) > MAX_TRACKED_CATEGORIES:
                raise InvalidInput(
                    f"column {name!r} has more than {MAX_TRACKED_CATEGORIES} categories; drop or hash it"
                )
    if counts[TRAIN] + counts[TEST] + counts[VALIDATION] == 0:
        raise InvalidInput(f"target column {target!r} has no values")
    if counts[TEST] < 1 or counts[TRAIN] < 2:
        raise InvalidInput(f"{sum(counts)} usable rows are too few to split with test_fraction={request.test_fraction}")
    if request.n_shards > counts[TRAIN]:
        raise InvalidInput(f"n_shards={request.n_shards} is more than the {counts[TRAIN]} training rows")
    classes = None
    if classifier:
        classes = sorted(labels, key=float) if kinds[target] == "numeric" else sorted(labels)
        try:
            linear.n_outputs(request.hyperparameters.model, len(classes))
        except ValueError as err:
            raise InvalidInput(f"target column {target!r}: {err}") from None
    fitted = []
    for name, kind in resolved.items():
        rules = spec.rules(name)
        fitted.append(
            numeric[name].fit(rules, spec)
            if kind == "numeric"
            else fit_text_counts(name, counters[name], rules, spec, kind)
        )
    if not fitted:
        raise InvalidInput("the data set has no feature columns besides the target")
    prep = Preprocessor(target=target, columns=fitted, classes=classes, spec=spec, dropped_columns=dropped_columns)
    width = len(prep.feature_names) + 1

    # pass 2: transform and stream the rows into the shards and the held-out blocks
    prefix = processed_prefix(run_id)
    shard_rows = [len(a) for a in np.array_split(np.empty(counts[TRAIN]), request.n_shards)]
    shards = [Shard(index=i, key=f"{prefix}shards/shard-{i:05d}.npy", rows=r) for i, r in enumerate(shard_rows) if r]
    test_block = Block(key=f"{prefix}test.npy", rows=counts[TEST])
    validation_block = Block(key=f"{prefix}validation.npy", rows=counts[VALIDATION]) if counts[VALIDATION] else None
    index = {label: i for i, label in enumerate(classes or [])}

    def transformed() -> Iterator[tuple[int, np.ndarray]]:
        start = 0
        for frame in _chunks(store, meta["key"], kinds, chunk_rows):
            columns = to_columns(frame, kinds)
            keep, split = rows(columns, start)
            start += len(frame)
            kept = {n: v[keep] for n, v in columns.items()}
            X = prep.transform({n: kept[n] for n in prep.input_names})
            if classifier:
                y = np.array([index[v] for v in _categorical(kept[target])], dtype=np.float64)
            else:
                y = kept[target].astype(np.float64)
            block = np.hstack([X, y[:, None]]).astype(np.float32)
            for part in (TRAIN, VALIDATION, TEST):
                rows_of_part = block[split[keep] == part]
                if rows_of_part.size:
                    yield part, rows_of_part

    writers = _Writers(store, shards, test_block, validation_block, width)
    try:
        for part, block in transformed():
            writers.write(part, block)
        writers.close()
        manifest = {
            "run_id": run_id,
            "dataset": {k: meta.get(k) for k in ("dataset", "version", "sha256", "key", "rows")},
            "target": target,
            "dropped_rows_missing_target": dropped,
            "dropped_columns": dropped_columns,
            "spec": spec.model_dump(),
            "classes": classes,
            "feature_names": prep.feature_names,
            "schema": [{"name": c.name, "kind": c.kind} for c in prep.columns],
            "preprocessor": prep.model_dump(),
            "shards": [s.model_dump() for s in shards],
            "test": test_block.model_dump(),
            "validation": validation_block.model_dump() if validation_block else None,
            "format": {"dtype": "float32", "layout": "[X | y], target in the last column"},
            "streaming": {"chunk_rows": chunk_rows, "median": f"reservoir sample of {RESERVOIR} values"},
        }
        manifest_key = f"{prefix}manifest.json"
        store.put_json(manifest_key, manifest)
    except BaseException:
        writers.abort()
        store.delete(writers.written)
        raise
    return PreprocessResult(
        run_id=run_id,
        manifest_key=manifest_key,
        shards=shards,
        n_features=len(prep.feature_names),
        n_outputs=linear.n_outputs(request.hyperparameters.model, len(classes or ())),
        classes=classes,
        validation=validation_block,
        train_rows=counts[TRAIN],
        test_rows=counts[TEST],
    )


class _Stream:
    """One .npy object written by multipart upload: header first, then rows as they come."""

    def __init__(self, store: S3Store, key: str, rows: int, width: int):
        self.store, self.key, self.rows, self.left = store, key, rows, rows
        self.parts: list[bytes] = [_npy_header(rows, width)]
        self.buffered = len(self.parts[0])
        self.upload = None

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
    def __init__(self, store, shards: list[Shard], test: Block, validation: Block | None, width: int):
        self.shards = [_Stream(store, s.key, s.rows, width) for s in shards]
        self.current = 0
        self.held = {TEST: _Stream(store, test.key, test.rows, width)}
        if validation is not None:
            self.held[VALIDATION] = _Stream(store, validation.key, validation.rows, width)
        self.written: list[str] = []

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
                self.written.append(shard.key)
                self.current += 1

    def close(self) -> None:
        if self.current != len(self.shards):
            raise RuntimeError(f"{len(self.shards) - self.current} shard(s) short of the rows counted in pass 1")
        for stream in self.held.values():
            stream.close()
            self.written.append(stream.key)

    def abort(self) -> None:
        for stream in [*self.shards, *self.held.values()]:
            stream.abort()
