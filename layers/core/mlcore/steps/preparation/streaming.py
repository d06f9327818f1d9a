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
from mlcore.math import models
from mlcore.math.preprocessing import (
    Moments,
    NumericColumn,
    PreprocessingSpec,
    Preprocessor,
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


def read_chunks(
    store: ObjectStore, keys: list[str], kinds: dict[str, str], chunk_rows: int, delimiter: str = ","
) -> Iterator[pd.DataFrame]:
    """The rows of the files ``keys`` (a version's file, or its parts in order, a header each) as one table, in
    frames of at most ``chunk_rows`` rows (a part's last frame may be shorter)."""
    for key in keys:
        body = store.open(key)
        try:
            yield from csv_frames(body, kinds, chunk_rows, delimiter)
        finally:
            body.close()


def csv_frames(body: Any, kinds: dict[str, str], chunk_rows: int, delimiter: str = ",") -> Iterator[pd.DataFrame]:
    """The rows of one CSV (``body`` has ``read()``, a header first) in frames of at most ``chunk_rows`` rows."""
    dtypes = {name: (np.float64 if kind == "numeric" else object) for name, kind in kinds.items()}
    try:
        # pandas reads the body with read() only (the stubs ask for a seekable file)
        yield from pd.read_csv(
            cast(Any, body), sep=delimiter, chunksize=chunk_rows, skipinitialspace=True, dtype=dtypes
        )
    except (pd.errors.ParserError, ValueError) as err:
        raise InvalidInput(f"the file could not be read in chunks: {err}") from None


def row_splits(n_rows: int, start: int, request: TrainingRequest, stream: tuple[int, ...] = ()) -> np.ndarray:
    """The split (TRAIN, VALIDATION or TEST) of each of ``n_rows`` rows from row ``start`` on: seeded per chunk.

    ``stream`` tells apart rows numbered from a place other than the data set's first row (a byte range of a part
    whose first row's number is not known: ``distributed``); empty, ``start`` is the row's number in the data set."""
    u = np.random.default_rng([request.seed, *stream, start]).random(n_rows)
    out = np.full(n_rows, TRAIN, dtype=np.int8)
    out[u < request.test_fraction] = TEST
    validation_edge = request.test_fraction + (1 - request.test_fraction) * request.validation_fraction
    out[(u >= request.test_fraction) & (u < validation_edge)] = VALIDATION
    return out


class _Numeric:
    def __init__(self, name: str, clip, transform: str, seed: int | list[int]):
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

    def merge(self, other: _Numeric, rng: np.random.Generator) -> None:
        """Add another piece's statistics of the same column. The moments merge exactly; the merged reservoir is a
        uniform sample of both pieces' observed values: how many come from each is drawn from the hypergeometric
        law (a uniform ``RESERVOIR``-subset of the union takes that many from each side), then that many are drawn
        without replacement from each reservoir. Below ``RESERVOIR`` values in all, every value is kept."""
        self.raw.merge(other.raw)
        self.shaped.merge(other.shaped)
        self.missing += other.missing
        if self.seen + other.seen <= RESERVOIR:
            self.sample = np.concatenate([self.sample, other.sample])
        else:
            mine = int(rng.hypergeometric(self.seen, other.seen, RESERVOIR))
            self.sample = np.concatenate(
                [
                    rng.choice(self.sample, mine, replace=False),
                    rng.choice(other.sample, RESERVOIR - mine, replace=False),
                ]
            )
        self.seen += other.seen

    def state(self) -> dict:
        return {"raw": self.raw.state(), "shaped": self.shaped.state(), "missing": self.missing, "seen": self.seen}

    def restore(self, state: dict, sample: np.ndarray) -> None:
        self.raw, self.shaped = Moments.from_state(state["raw"]), Moments.from_state(state["shaped"])
        self.missing, self.seen, self.sample = int(state["missing"]), int(state["seen"]), sample

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


class Statistics:
    """Pass 1: the running statistics of the training rows of a data set, or of one piece of it (mergeable:
    ``merge`` adds another piece's, ``state``/``restore`` carry them through S3).

    ``request`` is the run's request with the sensitive columns already dropped (``shared.drop_sensitive``);
    ``reservoir_seed`` seeds the reservoir samples (the request's seed for one pass over the whole data set)."""

    def __init__(self, request: TrainingRequest, kinds: dict[str, str], reservoir_seed: int | list[int]):
        self.request, self.kinds, self.target = request, kinds, request.target
        shared.check_target(self.target, kinds)
        self.spec = request.preprocessing or PreprocessingSpec()
        self.resolved, self.dropped_columns = resolve_kinds(kinds, self.target, self.spec)
        self.classifier = request.hyperparameters.model in models.CLASSIFIERS
        self.numeric = {
            n: _Numeric(n, self.spec.rules(n).clip, self.spec.rules(n).transform, reservoir_seed)
            for n, k in self.resolved.items()
            if k == "numeric"
        }
        self.counters: dict[str, Counter[str]] = {n: Counter() for n, k in self.resolved.items() if k != "numeric"}
        self.labels: set[str] = set()
        self.counts = [0, 0, 0]
        self.with_target = self.dropped = self.rows = 0

    def keep_and_split(
        self, columns: dict[str, np.ndarray], start: int, stream: tuple[int, ...] = ()
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """(kept-row mask, split of every row, rows with a target) for one chunk."""
        keep, _, _ = shared.encode_target(columns[self.target], self.kinds[self.target], self.target, self.classifier)
        has_target = int(keep.sum())
        keep = keep & ~rows_to_drop(columns, self.kinds, self.spec)
        return keep, row_splits(len(keep), start, self.request, stream), has_target

    def add(self, columns: dict[str, np.ndarray], start: int, stream: tuple[int, ...] = ()) -> None:
        """The rows of one chunk, the first numbered ``start``."""
        keep, split, has_target = self.keep_and_split(columns, start, stream)
        self.rows += len(keep)
        self.with_target += has_target
        self.dropped += int((~keep).sum())
        for part in (TRAIN, VALIDATION, TEST):
            self.counts[part] += int((keep & (split == part)).sum())
        if self.classifier:
            self.labels.update(v for v in as_categories(columns[self.target][keep]) if v is not None)
        train = keep & (split == TRAIN)
        for name, acc in self.numeric.items():
            acc.update(as_numeric(name, columns[name][train]))
        for name, counter in self.counters.items():
            counter.update(v for v in as_categories(columns[name][train]) if v is not None)
            _check_tracked(name, counter)

    def merge(self, other: Statistics, rng: np.random.Generator) -> None:
        """Add the statistics of another piece of the same data set (``_Numeric.merge`` for the reservoirs)."""
        self.rows += other.rows
        self.with_target += other.with_target
        self.dropped += other.dropped
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.labels |= other.labels
        for name, acc in self.numeric.items():
            acc.merge(other.numeric[name], rng)
        for name, counter in self.counters.items():
            counter.update(other.counters[name])
            _check_tracked(name, counter)

    def fit(self) -> Preprocessor:
        """Refuse what the single-function paths refuse, then fit the ``Preprocessor`` on the statistics."""
        request, target = self.request, self.target
        shared.check_rows(target, self.with_target, sum(self.counts))
        classes = shared.ordered_classes(self.labels, self.kinds[target] == "numeric") if self.classifier else None
        shared.check_classes(request.hyperparameters.model, target, classes)
        shared.check_split(
            request.test_fraction,
            request.validation_fraction,
            self.counts[TRAIN],
            self.counts[VALIDATION],
            self.counts[TEST],
        )
        shared.check_shards(request.n_shards, self.counts[TRAIN])
        spec = self.spec
        fitted = [
            self.numeric[name].fit(spec.rules(name), spec)
            if kind == "numeric"
            else fit_text_counts(name, self.counters[name], spec.rules(name), spec, kind)
            for name, kind in self.resolved.items()
        ]
        return assemble(target, fitted, spec, self.dropped_columns, classes)

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(a JSON document, the reservoir samples by column): what ``restore`` reads back."""
        doc = {
            "rows": self.rows,
            "with_target": self.with_target,
            "dropped": self.dropped,
            "counts": self.counts,
            "labels": sorted(self.labels),
            "counters": {name: dict(counter) for name, counter in self.counters.items()},
            "numeric": [[name, acc.state()] for name, acc in self.numeric.items()],
        }
        return doc, {f"c{i}": acc.sample for i, acc in enumerate(self.numeric.values())}

    def restore(self, doc: dict, samples: dict[str, np.ndarray]) -> None:
        self.rows, self.with_target, self.dropped = int(doc["rows"]), int(doc["with_target"]), int(doc["dropped"])
        self.counts = [int(c) for c in doc["counts"]]
        self.labels = set(doc["labels"])
        self.counters = {name: Counter(counts) for name, counts in doc["counters"].items()}
        for i, (name, state) in enumerate(doc["numeric"]):
            self.numeric[name].restore(state, samples[f"c{i}"])


def _check_tracked(name: str, counter: Counter) -> None:
    if len(counter) > MAX_TRACKED_CATEGORIES:
        raise InvalidInput(f"column {name!r} has more than {MAX_TRACKED_CATEGORIES} categories; drop or hash it")


def npy_stream_header(rows: int, cols: int) -> bytes:
    """The .npy v1 header of a C-ordered float32 (rows, cols) array."""
    header = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}"
    pad = 64 - (10 + len(header) + 1) % 64
    text = (header + " " * pad + "\n").encode("latin1")
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text


def transformed_blocks(
    stats: Statistics, prep: Preprocessor, frames: Iterator[tuple[pd.DataFrame, int]], stream: tuple[int, ...] = ()
) -> Iterator[tuple[int, np.ndarray]]:
    """Pass 2: (split, float32 ``[X | y]`` rows) of each chunk ``frames`` gives with its first row's number, in the
    rows' order: the same rows, splits and keep rules as pass 1."""
    index = {label: i for i, label in enumerate(prep.classes or [])}
    target = stats.target
    for frame, start in frames:
        columns = to_columns(frame, stats.kinds)
        keep, split, _ = stats.keep_and_split(columns, start, stream)
        kept = {n: v[keep] for n, v in columns.items()}
        X = prep.transform({n: kept[n] for n in prep.input_names})
        if stats.classifier:
            y = np.array([index[v] for v in as_categories(kept[target]) if v is not None], dtype=np.float64)
        else:
            y = kept[target].astype(np.float64)
        block = np.hstack([X, y[:, None]]).astype(np.float32)
        for part in (TRAIN, VALIDATION, TEST):
            rows_of_part = block[split[keep] == part]
            if rows_of_part.size:
                yield part, rows_of_part


def numbered(frames: Iterator[pd.DataFrame], start: int = 0) -> Iterator[tuple[pd.DataFrame, int]]:
    """Each frame with the number of its first row (``start`` for the first)."""
    for frame in frames:
        yield frame, start
        start += len(frame)


def preprocess_streaming(
    store: ObjectStore, request: TrainingRequest, run_id: str, meta: dict, chunk_rows: int | None = None
) -> PreprocessResult:
    chunk_rows = chunk_rows or CHUNK_ROWS
    if meta["format"] != "csv":
        raise InvalidInput("streaming preprocessing reads CSV; re-ingest the data set as CSV")
    kinds = {c["name"]: c["kind"] for c in meta["columns"]}
    request, dropped_sensitive, problem = shared.setup_request(request, meta)
    stats = Statistics(request, kinds, request.seed)

    def frames() -> Iterator[tuple[pd.DataFrame, int]]:
        keys = ingestion.data_keys(meta)
        return numbered(read_chunks(store, keys, kinds, chunk_rows, meta.get("delimiter", ",")))

    # pass 1: statistics of the training rows
    for frame, start in frames():
        stats.add(to_columns(frame, kinds), start)
    prep = stats.fit()
    counts = stats.counts
    shards = shared.plan_shards(run_id, counts[TRAIN], request.n_shards)

    # pass 2: transform and stream the rows into the shards and the held-out blocks
    test_block = shared.held_out(run_id, "test", counts[TEST])
    validation_block = shared.held_out(run_id, "validation", counts[VALIDATION]) if counts[VALIDATION] else None
    writers = BlockWriters(store, shards, test_block, validation_block, len(prep.feature_names) + 1)
    try:
        for part, block in transformed_blocks(stats, prep, frames()):
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
            stats.dropped,
            streaming=streaming,
            dropped=dropped_sensitive,
            problem=problem.to_dict(),
        )
    except BaseException:
        writers.abort()
        store.delete(shared.written_keys(run_id, shards))
        raise


class NpyWriter:
    """One .npy object written by multipart upload: header first, then rows as they come."""

    def __init__(self, store: ObjectStore, key: str, rows: int, width: int):
        self.store, self.key, self.rows, self.left = store, key, rows, rows
        self.parts: list[bytes] = [npy_stream_header(rows, width)]
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


class BlockWriters:
    def __init__(self, store: ObjectStore, shards: list[Shard], test: Block, validation: Block | None, width: int):
        self.shards = [NpyWriter(store, s.key, s.rows, width) for s in shards]
        self.current = 0
        self.held = {TEST: NpyWriter(store, test.key, test.rows, width)}
        if validation is not None:
            self.held[VALIDATION] = NpyWriter(store, validation.key, validation.rows, width)

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
