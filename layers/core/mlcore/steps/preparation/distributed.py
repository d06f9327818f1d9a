"""Preparation by many functions at once, for a CSV data set above ``DISTRIBUTED_THRESHOLD_BYTES``: no function
reads the whole data set, and none reads more than its piece twice.

The training workflow runs the steps (statemachines/training.asl.json, from ``Preprocess``):

1. ``plan`` (the Preprocess task itself): the data set is cut into pieces of about ``PIECE_BYTES``: consecutive
   whole parts, or byte ranges of a part larger than that when no column of the data set is text (the profile says
   every column is numeric, so no quoted field can hold a newline and every newline ends a record). A range
   reader starts after the first newline at or after its start and reads past its end to finish its last record.
   The plan (pieces and request) goes to ``scratch/<run>/preparation/plan.json``; the state carries piece numbers.
2. ``piece_stats`` (a Map, one task per piece): pass 1 of ``streaming`` over the piece (``streaming.Statistics``),
   written to ``scratch/<run>/preparation/stats/``. Rows of whole parts are numbered from the data set's first row
   (the parts' row counts are in the version's metadata), so their train/validation/test split is the one the
   single-function paths give; rows of a byte range are numbered within the range (``row_splits``' ``stream``).
3. ``merge_and_fit``: the pieces' statistics merged in piece order (moments exactly, category counts summed,
   reservoirs by ``_Numeric.merge``), checked and fitted once; each piece's share of the shards is fixed
   (``allocate_shards``) and written with the fit to ``fit.json``.
4. ``write_piece`` (a Map): pass 2 over the piece, into its shards (``.npy`` headers exact from the counts of
   step 2), its test block ``processed/<run>/test/piece-*.npy`` and its validation rows.
5. ``finish``: the validation pieces joined into one block (the aggregator reads it whole each round), then the
   shard list and the manifest, last; the request it returns has ``rounds_per_execution`` lowered to leave the
   preparation's history events room in the run's first execution (``rounds_per_execution``).

A failure in any step runs ``abort``: everything under ``processed/<run>/`` and ``scratch/<run>/preparation/`` is
deleted, so no manifest and no half-written block remain.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Generator, Iterator
from typing import Any

import numpy as np
import pandas as pd

from mlcore.infra import layout
from mlcore.infra.errors import InvalidInput
from mlcore.infra.storage import ObjectStore
from mlcore.math.preprocessing import Preprocessor
from mlcore.steps.preparation import shared, streaming
from mlcore.steps.preparation.streaming import (
    TEST,
    TRAIN,
    VALIDATION,
    BlockWriters,
    NpyWriter,
    Statistics,
    csv_frames,
    numbered,
    transformed_blocks,
)
from mlcore.steps.schemas import (
    EVENTS_FIXED,
    HISTORY_EVENTS_LIMIT,
    Block,
    PreparationTask,
    PreprocessResult,
    Shard,
    TrainingRequest,
)
from mlcore.steps.tabular import to_columns

DISTRIBUTED_THRESHOLD_BYTES = 512 * 1024 * 1024  # above: statistics and shards by one function per piece
PIECE_BYTES = 256 * 1024 * 1024  # about what one function reads (two passes of ~10-15 s each)
READ_BLOCK_BYTES = 8 * 1024 * 1024  # a range reader's GET
HEADER_MAX_BYTES = 1024 * 1024
MERGE_STREAM = 2**32  # seeds the merge of the reservoirs apart from every piece's own reservoir seed
# execution history events of the preparation: per piece, an iteration of each of the two inline Maps (7 events
# each: iteration started/succeeded, task entered/scheduled/started/succeeded/exited); the Choice and 4 states
EVENTS_PER_PIECE = 14
PREPARATION_EVENTS = 30


def rounds_per_execution(request: TrainingRequest, pieces: int) -> int | None:
    """The request's ``rounds_per_execution`` lowered in proportion to the history events the preparation of
    ``pieces`` pieces takes in the run's first execution (the request's own check counts only ``EVENTS_FIXED``)."""
    if request.rounds_per_execution is None:
        return None
    room = HISTORY_EVENTS_LIMIT - EVENTS_FIXED
    left = max(0, room - PREPARATION_EVENTS - EVENTS_PER_PIECE * pieces)
    return max(1, request.rounds_per_execution * left // room)


def wanted(meta: dict, threshold: int | None = None) -> bool:
    """Whether the data set version ``meta`` describes is prepared by many functions."""
    limit = DISTRIBUTED_THRESHOLD_BYTES if threshold is None else threshold
    return meta["format"] == "csv" and meta["bytes"] > limit


def _parts(meta: dict) -> list[dict]:
    """The version's files with their first row's number in the data set: its parts, or its one file."""
    files = meta.get("parts") or [{"key": meta["key"], "bytes": meta["bytes"], "rows": meta["rows"]}]
    out, row = [], 0
    for i, part in enumerate(files):
        name = f"part {i} ({part.get('source', part['key'])})" if meta.get("parts") else "the data set's file"
        out.append({"part": i, "key": part["key"], "bytes": int(part["bytes"]), "row": row, "name": name})
        row += int(part["rows"])
    return out


def plan_pieces(meta: dict, piece_bytes: int | None = None) -> list[list[dict]]:
    """The pieces: each a list of segments ``{part, key, name, start, end, size, row}`` (``row`` None for a byte
    range of a part, whose first row's number is not known). Consecutive whole parts fill a piece up to
    ``piece_bytes``; a larger part is cut into byte ranges only when every column is numeric (no field can hold a
    newline)."""
    size = piece_bytes or PIECE_BYTES
    cuttable = all(c.get("kind") == "numeric" for c in meta["columns"])
    pieces: list[list[dict]] = []
    current: list[dict] = []
    filled = 0
    for part in _parts(meta):
        whole = {"part": part["part"], "key": part["key"], "name": part["name"], "start": 0, "end": part["bytes"]}
        whole["size"] = part["bytes"]
        if cuttable and part["bytes"] > size:
            if current:
                pieces.append(current)
                current, filled = [], 0
            n = math.ceil(part["bytes"] / size)
            edges = [k * part["bytes"] // n for k in range(n + 1)]
            pieces += [[{**whole, "start": a, "end": b, "row": None}] for a, b in itertools.pairwise(edges)]
            continue
        current.append({**whole, "row": part["row"]})
        filled += part["bytes"]
        if filled >= size:
            pieces.append(current)
            current, filled = [], 0
    if current:
        pieces.append(current)
    return pieces


def plan(store: ObjectStore, request: TrainingRequest, run_id: str, meta: dict) -> dict:
    """Check what can be checked before reading (target, spec), write the plan; return ``{key, pieces}`` with the
    piece numbers (the Maps' items)."""
    kinds = {c["name"]: c["kind"] for c in meta["columns"]}
    Statistics(shared.setup_request(request, meta)[0], kinds, request.seed)  # refuses a bad target or spec now
    pieces = plan_pieces(meta)
    doc = {"request": request.model_dump(), "meta": meta, "pieces": pieces, "chunk_rows": streaming.CHUNK_ROWS}
    key = layout.preparation_plan_key(run_id)
    store.put_json(key, doc)
    return {"key": key, "pieces": list(range(len(pieces)))}


class _Plan:
    """The plan of a run, read back by each step."""

    def __init__(self, store: ObjectStore, run_id: str):
        doc = store.get_json(layout.preparation_plan_key(run_id))
        self.original = TrainingRequest.model_validate(doc["request"])
        self.meta: dict = doc["meta"]
        self.pieces: list[list[dict]] = doc["pieces"]
        self.chunk_rows = int(doc["chunk_rows"])
        self.request, self.dropped_sensitive, self.problem = shared.setup_request(self.original, self.meta)
        self.kinds = {c["name"]: c["kind"] for c in self.meta["columns"]}
        self.delimiter = self.meta.get("delimiter", ",")

    def statistics(self, piece: int | None = None) -> Statistics:
        seed = self.request.seed if piece is None else [self.request.seed, piece]
        return Statistics(self.request, self.kinds, seed)

    def frames(self, store: ObjectStore, segment: dict) -> Iterator[tuple[pd.DataFrame, int]]:
        """The segment's rows in chunks, each with its first row's number (in the data set, or in the range)."""
        if segment["row"] is not None:
            body: Any = store.open(segment["key"])
            start = segment["row"]
        else:
            body = RangeReader(store, segment["key"], segment["start"], segment["end"], segment["size"])
            start = 0
        try:
            yield from numbered(csv_frames(body, self.kinds, self.chunk_rows, self.delimiter), start)
        finally:
            body.close()


def stream_of(segment: dict) -> tuple[int, ...]:
    """What tells a byte range's rows apart in ``row_splits`` (nothing for whole parts: numbered in the data set)."""
    return () if segment["row"] is not None else (segment["part"], segment["start"])


def _naming[T](segment: dict, work: Callable[[], T]) -> T:
    """Run ``work``; a refusal names the part (and byte range) it comes from."""
    try:
        return work()
    except InvalidInput as err:
        where = segment["name"]
        if segment["row"] is None:
            where += f" bytes {segment['start']}-{segment['end']}"
        raise InvalidInput(f"{where}: {err}") from None


def piece_stats(store: ObjectStore, run_id: str, piece: int) -> dict:
    """Pass 1 over one piece: its statistics to ``scratch/<run>/preparation/stats/``."""
    run = _Plan(store, run_id)
    stats = run.statistics(piece)
    for segment in run.pieces[piece]:

        def add(segment: dict = segment) -> None:
            for frame, start in run.frames(store, segment):
                stats.add(to_columns(frame, run.kinds), start, stream_of(segment))

        _naming(segment, add)
    doc, samples = stats.state()
    store.put_arrays(layout.piece_stats_key(run_id, piece, "npz"), samples)
    store.put_json(layout.piece_stats_key(run_id, piece, "json"), doc)
    return {"piece": piece, "rows": stats.rows}


def allocate_shards(train_rows: list[int], n_shards: int) -> list[int]:
    """Shards per piece: in proportion to the pieces' training rows (largest remainders), at least one for a piece
    with training rows and never more than its rows. ``n_shards`` in all when it is at least the number of pieces
    with training rows, else one for each of them."""
    total = sum(train_rows)
    quotas = [n_shards * rows / total for rows in train_rows]
    counts = [min(rows, max(1, math.floor(q))) if rows else 0 for q, rows in zip(quotas, train_rows, strict=True)]
    order = sorted(range(len(train_rows)), key=lambda i: (counts[i] - quotas[i], i))
    while sum(counts) < n_shards:
        grown = False
        for i in order:
            if sum(counts) < n_shards and counts[i] < train_rows[i]:
                counts[i] += 1
                grown = True
        if not grown:
            break
    return counts


def merge_and_fit(store: ObjectStore, run_id: str) -> dict:
    """Merge the pieces' statistics in piece order, refuse what the single-function paths refuse, fit once, and
    fix each piece's shards and held-out rows (``fit.json``)."""
    run = _Plan(store, run_id)
    merged = run.statistics()
    rng = np.random.default_rng([run.request.seed, MERGE_STREAM])
    counts = []
    for piece in range(len(run.pieces)):
        stats = run.statistics(piece)
        doc = store.get_json(layout.piece_stats_key(run_id, piece, "json"))
        stats.restore(doc, store.get_arrays(layout.piece_stats_key(run_id, piece, "npz")))
        merged.merge(stats, rng)
        counts.append(stats.counts)
    prep = merged.fit()
    per_piece = allocate_shards([c[TRAIN] for c in counts], run.request.n_shards)
    total = sum(per_piece)
    shards, index = [], 0
    for c, n in zip(counts, per_piece, strict=True):
        base, extra = divmod(c[TRAIN], n) if n else (0, 0)
        shards.append([{"index": index + i, "rows": base + (i < extra)} for i in range(n)])
        index += n
    fit = {
        "preprocessor": prep.model_dump(),
        "dropped": merged.dropped,
        "n_shards": total,
        "pieces": [
            {"shards": s, "test": c[TEST], "validation": c[VALIDATION]} for s, c in zip(shards, counts, strict=True)
        ],
    }
    store.put_json(layout.preparation_fit_key(run_id), fit)
    return {"pieces": len(run.pieces), "shards": total}


def _piece_blocks(run_id: str, fit: dict, piece: int) -> tuple[list[Shard], Block, Block | None]:
    share = fit["pieces"][piece]
    shards = [
        Shard(index=s["index"], key=layout.shard_key(run_id, s["index"]), rows=s["rows"], n_shards=fit["n_shards"])
        for s in share["shards"]
    ]
    test = Block(key=layout.held_out_piece_key(run_id, piece), rows=share["test"])
    validation = None
    if share["validation"]:
        validation = Block(key=layout.validation_piece_key(run_id, piece), rows=share["validation"])
    return shards, test, validation


def write_piece(store: ObjectStore, run_id: str, piece: int) -> dict:
    """Pass 2 over one piece: its rows transformed into its shards and held-out blocks; on failure, none of them
    is left (and its multipart uploads are aborted)."""
    run = _Plan(store, run_id)
    fit = store.get_json(layout.preparation_fit_key(run_id))
    prep = Preprocessor.model_validate(fit["preprocessor"])
    stats = run.statistics(piece)
    shards, test, validation = _piece_blocks(run_id, fit, piece)
    writers = BlockWriters(store, shards, test, validation, len(prep.feature_names) + 1)
    try:
        for segment in run.pieces[piece]:

            def write(segment: dict = segment) -> None:
                for split, block in transformed_blocks(stats, prep, run.frames(store, segment), stream_of(segment)):
                    writers.write(split, block)

            _naming(segment, write)
        writers.close()
    except BaseException:
        writers.abort()
        store.delete([s.key for s in shards] + [test.key] + ([validation.key] if validation else []))
        raise
    return {"piece": piece, "shards": len(shards)}


def finish(store: ObjectStore, run_id: str) -> dict:
    """Join the validation pieces into one block, then write the shard list and the manifest (last); return the
    workflow's state ``{run_id, request, data}``."""
    run = _Plan(store, run_id)
    fit = store.get_json(layout.preparation_fit_key(run_id))
    prep = Preprocessor.model_validate(fit["preprocessor"])
    blocks = [_piece_blocks(run_id, fit, piece) for piece in range(len(run.pieces))]
    width = len(prep.feature_names) + 1
    validation = None
    validation_rows = sum(v.rows for _, _, v in blocks if v is not None)
    if validation_rows:
        validation = shared.held_out(run_id, "validation", validation_rows)
        writer = NpyWriter(store, validation.key, validation_rows, width)
        try:
            for _, _, piece_validation in blocks:
                if piece_validation is not None:
                    writer.write(store.get_array(piece_validation.key))
            writer.close()
        except BaseException:
            writer.abort()
            raise
    result: PreprocessResult = shared.finish(
        store,
        run.request,
        run_id,
        run.meta,
        prep,
        [s for shards, _, _ in blocks for s in shards],
        [test for _, test, _ in blocks if test.rows],
        validation,
        fit["dropped"],
        distributed={
            "pieces": len(run.pieces),
            "chunk_rows": run.chunk_rows,
            "median": f"reservoir samples of {streaming.RESERVOIR} values per piece, merged by weighted sampling",
        },
        dropped=run.dropped_sensitive,
        problem=run.problem.to_dict(),
    )
    rounds = rounds_per_execution(run.original, len(run.pieces))
    request = run.original.model_copy(update={"rounds_per_execution": rounds})
    return {"run_id": run_id, "request": request.model_dump(), "data": result.model_dump()}


def abort(store: ObjectStore, run_id: str) -> dict:
    """Delete everything a failed distributed preparation of ``run_id`` wrote (no manifest was written)."""
    keys = [*store.list_keys(layout.processed_prefix(run_id)), *store.list_keys(layout.preparation_prefix(run_id))]
    store.delete(keys)
    return {"run_id": run_id, "deleted": len(keys)}


def step(store: ObjectStore, task: PreparationTask) -> dict:
    """Run one step of a distributed preparation."""
    if task.action in ("stats", "write"):
        if task.piece is None:
            raise InvalidInput(f"action {task.action!r} needs a piece")
        work = piece_stats if task.action == "stats" else write_piece
        return work(store, task.run_id, task.piece)
    steps = {"merge": merge_and_fit, "finish": finish, "abort": abort}
    return steps[task.action](store, task.run_id)


class RangeReader:
    """Bytes ``[start, end)`` of a CSV part as a file of whole records: its header line, then every record that
    starts in the range (the one cut at ``start`` belongs to the range before; the one cut at ``end`` is read to
    its end). Valid only where every newline ends a record (no text column: ``plan_pieces``)."""

    def __init__(self, store: ObjectStore, key: str, start: int, end: int, size: int):
        self.store, self.key, self.start, self.end, self.size = store, key, start, end, size
        self.buffer = b""
        self.blocks = self._blocks()

    def _header(self) -> bytes:
        head = self.store.get_range(self.key, 0, min(self.size, HEADER_MAX_BYTES))
        cut = head.find(b"\n")
        if cut < 0:
            raise InvalidInput(f"the header line is longer than {HEADER_MAX_BYTES} bytes")
        return head[: cut + 1]

    def _blocks(self) -> Generator[bytes]:
        pos = 0
        if self.start:
            yield self._header()
            pos = self.start - 1  # skip through the first newline at or after start - 1: a record starts after it
            while True:
                data = self.store.get_range(self.key, pos, min(pos + READ_BLOCK_BYTES, self.size))
                if not data:
                    return
                cut = data.find(b"\n")
                if cut >= 0:
                    pos += cut + 1
                    break
                pos += len(data)
            if pos >= self.end:  # no record starts in the range
                return
        while pos < self.size:
            data = self.store.get_range(self.key, pos, min(pos + READ_BLOCK_BYTES, self.size))
            if pos + len(data) >= self.end:  # through the first newline at or after end - 1
                cut = data.find(b"\n", max(0, self.end - 1 - pos))
                if cut >= 0:
                    yield data[: cut + 1]
                    return
            yield data
            pos += len(data)

    def read(self, amount: int | None = -1) -> bytes:
        if amount is None or amount < 0:
            out = self.buffer + b"".join(self.blocks)
            self.buffer = b""
            return out
        while len(self.buffer) < amount:
            block = next(self.blocks, None)
            if block is None:
                break
            self.buffer += block
        out, self.buffer = self.buffer[:amount], self.buffer[amount:]
        return out

    def close(self) -> None:
        self.blocks.close()
