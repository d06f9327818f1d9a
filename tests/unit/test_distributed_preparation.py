"""Preparation by many functions (mlcore.steps.preparation.distributed) on a fake store: the same statistics, splits
and rows as the single-function streaming path on the same data set of many parts, deterministic, and nothing left
when a piece fails."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pytest

from mlcore.infra import layout
from mlcore.infra.errors import InvalidInput
from mlcore.math.preprocessing import Moments
from mlcore.steps import ingestion
from mlcore.steps.preparation import dispatch, distributed, streaming
from mlcore.steps.schemas import PreparationTask, PreprocessTask, TrainingRequest
from tests.unit.fakes import FakeStore

HEADER = "x,city,z,y\n"


def _rows(n: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(n):
        x = "" if i % 17 == 3 else f"{rng.normal(10, 3):.4f}"  # missing values: imputed with the median
        city = "" if i % 23 == 5 else rng.choice(["a", "b", "c"])
        lines.append(f"{x},{city},{rng.exponential(2):.4f},{rng.normal():.5f}\n")
    return "".join(lines)


def _ingest_parts(bodies: list[str], header: str = HEADER) -> FakeStore:
    store = FakeStore()
    for i, body in enumerate(bodies):
        store.put_bytes(f"landing/big/part-{i}.csv", (header + body).encode())
    ingestion.register_prefix(store, "big", "landing/big/")
    while requests := [k for k in store.list_keys("uploads/big/") if layout.is_prefix_request(k)]:
        ingestion.ingest_upload(store, requests[0])
    return store


def _request(**extra) -> TrainingRequest:
    return TrainingRequest.model_validate(
        {"dataset": "big", "target": "y", "model_name": "m", "n_shards": 3, "validation_fraction": 0.2, **extra}
    )


def _distributed(store: FakeStore, request: TrainingRequest, run_id: str = "run-d") -> dict:
    """The workflow's steps in order, as the state machine runs them."""
    meta = ingestion.describe(store, request.dataset)
    plan = distributed.plan(store, request, run_id, meta)
    for piece in plan["pieces"]:
        distributed.step(store, PreparationTask(action="stats", run_id=run_id, piece=piece))
    distributed.step(store, PreparationTask(action="merge", run_id=run_id))
    for piece in plan["pieces"]:
        distributed.step(store, PreparationTask(action="write", run_id=run_id, piece=piece))
    return distributed.step(store, PreparationTask(action="finish", run_id=run_id))


def _npy(store: FakeStore, key: str) -> np.ndarray:
    if key in store.arrays:
        return store.arrays[key]
    return np.load(io.BytesIO(store.objects[key]), allow_pickle=False)


@pytest.fixture
def small_pieces(monkeypatch):
    monkeypatch.setattr(streaming, "CHUNK_ROWS", 40)
    monkeypatch.setattr(distributed, "PIECE_BYTES", 1)  # every part is a piece of its own


BODIES = [_rows(130, 1), _rows(95, 2), _rows(160, 3)]


def test_the_pieces_give_the_streaming_paths_statistics_splits_and_rows(small_pieces):
    streamed_store, pieces_store = _ingest_parts(BODIES), _ingest_parts(BODIES)
    request = _request()
    streamed = dispatch.preprocess(streamed_store, request, "run-s", stream_threshold=0)
    state = _distributed(pieces_store, request)
    result = state["data"]
    assert result["n_features"] == streamed.n_features
    # the preparation's history events (3 pieces) take rounds from the run's first execution, nothing else changes
    rounds = request.rounds_per_execution
    assert state["request"] == {**request.model_dump(), "rounds_per_execution": rounds * (24_960 - 30 - 42) // 24_960}

    a = streamed_store.documents[layout.manifest_key("run-s")]
    b = pieces_store.documents[layout.manifest_key("run-d")]
    assert b["distributed"]["pieces"] == 3 and "distributed" not in a
    for col_a, col_b in zip(a["preprocessor"]["columns"], b["preprocessor"]["columns"], strict=True):
        if col_a["kind"] == "numeric":  # moments merged exactly (to rounding); medians exact below RESERVOIR
            assert col_b["fill"] == col_a["fill"]
            assert col_b["mean"] == pytest.approx(col_a["mean"], rel=1e-12, abs=1e-15)
            assert col_b["scale"] == pytest.approx(col_a["scale"], rel=1e-12)
        else:
            assert col_b == col_a
    assert b["dropped_rows_missing_target"] == a["dropped_rows_missing_target"]

    # the same rows, in the same order and splits: the shards end to end, the test and validation blocks
    shards_a = np.concatenate([_npy(streamed_store, s.key) for s in streamed.shards])
    shards_b = np.concatenate([_npy(pieces_store, s["key"]) for s in result["shards"]])
    np.testing.assert_allclose(shards_b, shards_a, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(shards_b[:, -1], shards_a[:, -1])
    assert len(result["shards"]) == 3 and [s["n_shards"] for s in result["shards"]] == [3, 3, 3]
    assert [s["index"] for s in result["shards"]] == [0, 1, 2]
    assert b["test"]["rows"] == a["test"]["rows"] == result["test_rows"] == streamed.test_rows
    assert [blk["key"] for blk in b["test"]["blocks"]] == [layout.held_out_piece_key("run-d", i) for i in range(3)]
    test_b = np.concatenate([_npy(pieces_store, blk["key"]) for blk in b["test"]["blocks"]])
    np.testing.assert_allclose(test_b, _npy(streamed_store, a["test"]["key"]), rtol=1e-6, atol=1e-6)
    assert result["validation"] == {"key": layout.held_out_key("run-d", "validation"), "rows": streamed.validation.rows}
    np.testing.assert_allclose(
        _npy(pieces_store, result["validation"]["key"]),
        _npy(streamed_store, streamed.validation.key),
        rtol=1e-6,
        atol=1e-6,
    )


def test_a_classifier_gets_the_classes_of_every_piece(small_pieces):
    bodies = [
        "".join(f"{i},a,1,{label}\n" for i, label in enumerate(["no", "yes"] * 30)),
        "".join(f"{i},b,2,{label}\n" for i, label in enumerate(["maybe", "no"] * 30)),
    ]
    request = _request(hyperparameters={"model": "softmax_regression"}, validation_fraction=0.0, n_shards=2)
    state = _distributed(_ingest_parts(bodies), request)
    assert state["data"]["classes"] == ["maybe", "no", "yes"] and state["data"]["n_outputs"] == 3


def test_the_same_request_prepares_the_same_bytes(small_pieces):
    first, second = _ingest_parts(BODIES), _ingest_parts(BODIES)
    a, b = _distributed(first, _request()), _distributed(second, _request())
    assert a == b
    for key in [s["key"] for s in a["data"]["shards"]] + [a["data"]["validation"]["key"]]:
        np.testing.assert_array_equal(_npy(first, key), _npy(second, key))


def test_the_preparation_leaves_room_in_the_execution_history():
    request = _request(mode="async", n_shards=40, hyperparameters={"solver": "sgd"})
    assert request.rounds_per_execution == 85  # 40 + 85 x (12 + 7 x 40) = 24,860 events of 25,000
    rounds = distributed.rounds_per_execution(request, 80)  # 80 pieces: 30 + 14 x 80 = 1,150 events more
    assert rounds == 81 and 40 + 30 + 14 * 80 + rounds * (12 + 7 * 40) <= 25_000
    assert distributed.rounds_per_execution(_request(rounds_per_execution=1), 500) == 1


def test_n_shards_is_shared_among_the_pieces_by_training_rows():
    assert distributed.allocate_shards([100, 50, 50], 4) == [2, 1, 1]
    assert distributed.allocate_shards([100, 50, 50], 8) == [4, 2, 2]
    assert distributed.allocate_shards([10, 1, 0], 5) == [4, 1, 0]  # never more shards than rows, none without rows
    assert distributed.allocate_shards([5, 5, 5], 2) == [1, 1, 1]  # fewer shards than pieces: one per piece
    assert sum(distributed.allocate_shards([7, 13, 29, 2], 11)) == 11


def test_merged_reservoirs_are_a_uniform_sample_of_all_pieces(monkeypatch):
    monkeypatch.setattr(streaming, "RESERVOIR", 500)
    rng = np.random.default_rng(0)
    values = [rng.normal(5, 2, 4_000), rng.normal(5, 2, 1_000)]
    merged = streaming._Numeric("x", None, "none", 1)
    for i, x in enumerate(values):
        piece = streaming._Numeric("x", None, "none", [1, i])
        for chunk in np.array_split(x, 7):
            piece.update(chunk)
        merged.merge(piece, np.random.default_rng(9))
    everything = np.concatenate(values)
    assert merged.sample.size == 500 and merged.seen == 5_000
    assert np.isin(merged.sample, everything).all() and np.unique(merged.sample).size == 500
    assert abs(np.median(merged.sample) - np.median(everything)) < 0.25  # the documented approximation
    assert merged.raw.mean == pytest.approx(everything.mean(), rel=1e-12)
    assert merged.raw.std == pytest.approx(everything.std(), rel=1e-12)


def test_moments_merge_as_if_the_values_had_come_in_one_stream():
    rng = np.random.default_rng(3)
    parts = [rng.normal(1e200, 1e199, 50), np.zeros(10), rng.normal(-3e200, 1e198, 20)]
    merged = Moments()
    for x in parts:
        merged.merge(Moments.from_state(Moments.of(x).state()))
    whole = Moments.of(np.concatenate(parts))
    assert merged.n == whole.n == 80
    assert merged.mean == pytest.approx(whole.mean, rel=1e-12)
    assert merged.std == pytest.approx(whole.std, rel=1e-12)


def test_a_bad_part_fails_its_piece_naming_the_part_and_nothing_is_left(small_pieces):
    store = _ingest_parts(BODIES)
    meta = ingestion.describe(store, "big")
    store.put_bytes(meta["parts"][1]["key"], (HEADER + '1.0,a,2.0,"3\n').encode())  # a quote that never closes
    plan = distributed.plan(store, _request(), "run-bad", meta)
    distributed.step(store, PreparationTask(action="stats", run_id="run-bad", piece=0))
    with pytest.raises(InvalidInput, match=r"^part 1 \(landing/big/part-1\.csv\): the file could not be read"):
        distributed.step(store, PreparationTask(action="stats", run_id="run-bad", piece=1))
    assert plan["pieces"] == [0, 1, 2]
    distributed.step(store, PreparationTask(action="abort", run_id="run-bad"))
    assert store.list_keys("processed/run-bad/") == [] and store.list_keys("scratch/run-bad/") == []


def test_a_piece_that_changed_since_its_statistics_writes_nothing(small_pieces):
    store = _ingest_parts(BODIES)
    request = _request()
    meta = ingestion.describe(store, "big")
    plan = distributed.plan(store, request, "run-x", meta)
    for piece in plan["pieces"]:
        distributed.step(store, PreparationTask(action="stats", run_id="run-x", piece=piece))
    distributed.step(store, PreparationTask(action="merge", run_id="run-x"))
    distributed.step(store, PreparationTask(action="write", run_id="run-x", piece=0))
    store.put_bytes(meta["parts"][1]["key"], (HEADER + BODIES[1][: len(BODIES[1]) // 2].rsplit("\n", 1)[0]).encode())
    with pytest.raises(RuntimeError, match=r"short of the"):
        distributed.step(store, PreparationTask(action="write", run_id="run-x", piece=1))
    written = store.list_keys("processed/run-x/")
    assert layout.held_out_piece_key("run-x", 1) not in written and layout.manifest_key("run-x") not in written
    assert layout.held_out_piece_key("run-x", 0) in written  # piece 0's own blocks: the workflow's abort deletes them
    distributed.step(store, PreparationTask(action="abort", run_id="run-x"))
    assert store.list_keys("processed/run-x/") == [] and store.list_keys("scratch/run-x/") == []


def test_refusals_of_the_merged_statistics_are_the_single_function_paths(small_pieces):
    store = _ingest_parts(BODIES)
    with pytest.raises(InvalidInput, match=r"^n_shards=900 is more than the \d+ training rows$"):
        _distributed(store, _request(n_shards=900), "run-many")
    with pytest.raises(InvalidInput, match=r"^target column 'nope' is not in the data set"):
        distributed.plan(store, _request(target="nope"), "run-t", ingestion.describe(store, "big"))
    assert store.list_keys("processed/run-t/") == [] and store.list_keys("scratch/run-t/") == []


def test_the_preprocess_task_plans_above_the_threshold_and_prepares_below(small_pieces, monkeypatch):
    store = _ingest_parts(BODIES)
    task = PreprocessTask(run_id="run-h", request=_request())
    prepared = dispatch.handle(store, task)
    assert set(prepared) == {"run_id", "request", "data"}  # below the threshold: as before
    monkeypatch.setattr(distributed, "DISTRIBUTED_THRESHOLD_BYTES", 100)
    planned = dispatch.handle(store, PreprocessTask(run_id="run-p", request=_request()))
    assert planned == {
        "run_id": "run-p",
        "request": _request().model_dump(),
        "plan": {"key": layout.preparation_plan_key("run-p"), "pieces": [0, 1, 2]},
    }
    assert store.list_keys("processed/run-p/") == []


# -- byte ranges of one large part of numbers ----------------------------------------------------------------------
def _numbers(n: int) -> str:
    return "".join(f"{i},{(i * 7919) % 1000 / 10},{i * 0.5}\n" for i in range(n))


@pytest.mark.parametrize("cuts", [1, 2, 3, 7, 40])
def test_byte_ranges_read_every_record_once(cuts):
    text = ("a,b,c\n" + _numbers(50)).encode()
    store = FakeStore()
    store.put_bytes("k.csv", text)
    edges = [k * len(text) // cuts for k in range(cuts + 1)]
    records: list[bytes] = []
    for start, end in itertools.pairwise(edges):
        lines = distributed.RangeReader(store, "k.csv", start, end, len(text)).read().splitlines()
        assert lines[0] == b"a,b,c"  # every range reads the header first
        records += lines[1:]
    assert records == text.splitlines()[1:]


def test_a_part_of_numbers_is_cut_into_byte_ranges_and_every_row_lands_once(monkeypatch):
    monkeypatch.setattr(streaming, "CHUNK_ROWS", 30)
    monkeypatch.setattr(distributed, "PIECE_BYTES", 1_000)
    store = _ingest_parts([_numbers(400)], header="i,x,y\n")
    meta = ingestion.describe(store, "big")
    pieces = distributed.plan_pieces(meta)
    assert len(pieces) == -(-meta["bytes"] // 1_000) and all(p[0]["row"] is None for p in pieces)
    state = _distributed(store, _request(validation_fraction=0.0, n_shards=4), "run-r")
    blocks = [s["key"] for s in state["data"]["shards"]]
    blocks += [b["key"] for b in store.documents[layout.manifest_key("run-r")]["test"]["blocks"]]
    y = np.concatenate([_npy(store, k)[:, -1] for k in blocks])
    np.testing.assert_array_equal(np.sort(y), np.arange(400) * 0.5)
    assert state["data"]["train_rows"] + state["data"]["test_rows"] == 400
    assert len(state["data"]["shards"]) >= 4


def test_parts_with_text_are_never_cut(monkeypatch):
    monkeypatch.setattr(distributed, "PIECE_BYTES", 100)
    meta = ingestion.describe(_ingest_parts(BODIES), "big")
    assert [[s["part"] for s in p] for p in distributed.plan_pieces(meta)] == [[0], [1], [2]]
    assert all(s["row"] is not None and s["start"] == 0 for p in distributed.plan_pieces(meta) for s in p)
    assert [p[0]["row"] for p in distributed.plan_pieces(meta)] == [0, 130, 225]
    whole = distributed.plan_pieces(meta, piece_bytes=10**9)
    assert [[s["part"] for s in p] for p in whole] == [[0, 1, 2]]  # small parts share a piece


def test_evaluate_samples_the_pieces_test_blocks_in_proportion_to_their_rows():
    from mlcore.steps.evaluation import held_out_sample

    store = FakeStore()
    blocks = []
    for i, rows in enumerate([300, 100]):
        block = np.column_stack([np.full(rows, i, dtype=np.float32), np.arange(rows, dtype=np.float32)])
        store.put_bytes(f"t{i}.npy", _npy_bytes(block))
        blocks.append({"key": f"t{i}.npy", "rows": rows})
    sample, rows = held_out_sample(store, {"rows": 400, "blocks": blocks}, 40)
    assert rows == 400 and sample.shape == (40, 2)
    assert (sample[:, 0] == 0).sum() == 30 and (sample[:, 0] == 1).sum() == 10
    everything, rows = held_out_sample(store, {"rows": 400, "blocks": blocks}, 1_000)
    assert rows == 400 and everything.shape == (400, 2)  # all rows when they fit
    one, rows = held_out_sample(store, {"key": "t1.npy", "rows": 100}, 1_000)  # one block, as before
    assert rows == 100 and one.shape == (100, 2)


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()
