"""Worker results in the Map's result: exact base64 transport, the per-shard share of the round's budget, the
S3 fallback (read concurrently), and the same aggregation either way (fake store, no AWS)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from pydantic import ValidationError

from mlcore.infra import layout
from mlcore.math import cost, linear
from mlcore.steps import schemas, training
from mlcore.steps.preparation import shared
from mlcore.steps.schemas import (
    AggregateTask,
    FailedShard,
    Hyperparameters,
    InitTask,
    Shard,
    WorkerResult,
    WorkerTask,
    pack_vector,
    packed_size,
    unpack_vector,
)

from .fakes import FakeStore

SGD = Hyperparameters(solver="sgd", optimizer="momentum", max_epochs=10)
LOCAL = Hyperparameters(solver="sgd", worker_mode="local_steps", steps_per_invocation=3, batch_size=4, max_epochs=10)
GRADIENT_TEXT = packed_size(4)  # 3 features + intercept: 32 bytes, 44 characters of base64


# -- the encoding ----------------------------------------------------------------------------------------------
def test_a_packed_vector_comes_back_bit_for_bit():
    values = np.array([0.1, -0.0, 1e-308, -1.7976931348623157e308, 5e-324, 3.0, np.pi])
    back = unpack_vector(pack_vector(values))
    assert back.dtype == np.float64 and back.flags.writeable
    assert back.tobytes() == values.astype("<f8").tobytes()
    assert pack_vector(np.array([1.0])) == "AAAAAAAA8D8="  # little-endian IEEE 754 1.0: 00 .. 00 f0 3f


def test_the_packed_size_is_the_length_of_the_text():
    assert [packed_size(n) for n in range(1, 7)] == [len(pack_vector(np.ones(n))) for n in range(1, 7)]
    assert [packed_size(n) for n in range(1, 7)] == [12, 24, 32, 44, 56, 64]


def _result(**fields) -> dict:
    return {"shard": 0, "round": 0, "rows": 1, "loss_sum": 0.0, **fields}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"gradient": "not base64!"}, "an inline result is not base64 text"),
        (
            {"gradient": "AAAAAAAA8D8AAAA="},
            "an inline result decodes to 11 bytes, not a whole number of float64 values",
        ),
        ({"gradient": ""}, "an inline result decodes to 0 bytes, not a whole number of float64 values"),
        ({"gradient": pack_vector(np.array([1.0, np.nan]))}, "an inline result holds a value that is not finite"),
        (
            {"gradient_key": "g", "update": pack_vector(np.array([np.inf]))},
            "an inline result holds a value that is not finite",
        ),
        ({}, "a worker result carries its vector either inline (gradient) or in S3 (gradient_key)"),
        (
            {"gradient": "AAAAAAAA8D8=", "gradient_key": "g"},
            "a worker result carries its vector either inline (gradient) or in S3 (gradient_key)",
        ),
        (
            {"gradient_key": "g", "update": "AAAAAAAA8D8=", "update_key": "u"},
            "a worker result carries its local update either inline (update) or in S3 (update_key)",
        ),
    ],
)
def test_a_malformed_inline_result_is_refused_with_its_problem(fields, message):
    with pytest.raises(ValidationError) as info:
        WorkerResult.model_validate(_result(**fields))
    assert message in str(info.value)


def test_the_round_budget_is_shared_by_the_runs_shards():
    assert schemas.INLINE_RESULTS_BYTES == 128 * 1024
    assert schemas.inline_result_bytes(8) == 16_384
    assert schemas.inline_result_bytes(40) == 3_276
    assert schemas.inline_result_bytes(None) == 0  # a shard that does not know the count: through S3


def test_preprocess_tells_every_shard_the_runs_shard_count():
    shards = shared.plan_shards("run", 10, 3)
    assert [(s.rows, s.n_shards) for s in shards] == [(4, 3), (3, 3), (3, 3)]


# -- the worker ------------------------------------------------------------------------------------------------
def _data(rows: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 3)).astype(np.float32)
    return X, (X @ np.array([1.0, -2.0, 0.5]) + 3.0 + rng.normal(size=rows)).astype(np.float32)


def _worker(store: FakeStore, hp: Hyperparameters, n_shards: int | None, index: int = 0, round_: int = 0):
    X, y = _data(seed=index)
    task = WorkerTask(
        run_id="run",
        round=round_,
        params_key=layout.params_key("run", round_),
        shard=Shard(index=index, key=f"shard-{index}", rows=len(y), n_shards=n_shards),
        hyperparameters=hp,
    )
    data = np.column_stack([X, y])
    return training.compute_gradient(store, task, shard=data), data[:, :-1], data[:, -1]


def _initialized(hp: Hyperparameters) -> FakeStore:
    store = FakeStore()
    training.init_run(store, InitTask(run_id="run", n_features=3, hyperparameters=hp))
    return store


def test_a_result_within_the_shards_share_travels_inline_and_writes_nothing():
    store = _initialized(SGD)
    writes = dict(store.writes)
    result, X, y = _worker(store, SGD, n_shards=8)
    _, expected = linear.loss_grad_sums("linear_regression", np.zeros(4), X, y)
    assert result.gradient_key is None and result.update is None and result.update_key is None
    assert unpack_vector(result.gradient).tobytes() == expected.tobytes()  # exactly the worker's float64 values
    assert store.writes == writes and not [k for k in store.arrays if k.startswith(layout.SCRATCH)]


@pytest.mark.parametrize(("budget", "inline"), [(GRADIENT_TEXT, True), (GRADIENT_TEXT - 1, False), (0, False)])
def test_a_result_over_the_shards_share_goes_to_s3(monkeypatch, budget, inline):
    monkeypatch.setattr(schemas, "INLINE_RESULTS_BYTES", budget)
    store = _initialized(SGD)
    result, X, y = _worker(store, SGD, n_shards=1)
    _, expected = linear.loss_grad_sums("linear_regression", np.zeros(4), X, y)
    key = layout.gradient_key("run", 0, 0)
    if inline:
        assert (result.gradient_key, key in store.arrays) == (None, False)
    else:
        assert (result.gradient, result.gradient_key) == (None, key)
        assert store.arrays[key].tobytes() == expected.tobytes()


def test_a_shard_without_the_count_writes_its_result_to_s3():
    store = _initialized(SGD)
    result, _, _ = _worker(store, SGD, n_shards=None)
    assert (result.gradient, result.gradient_key) == (None, layout.gradient_key("run", 0, 0))


@pytest.mark.parametrize(
    ("budget", "gradient_inline", "update_inline"),
    [(2 * GRADIENT_TEXT, True, True), (2 * GRADIENT_TEXT - 1, True, False), (GRADIENT_TEXT - 1, False, False)],
)
def test_a_local_update_shares_the_room_its_gradient_left(monkeypatch, budget, gradient_inline, update_inline):
    monkeypatch.setattr(schemas, "INLINE_RESULTS_BYTES", budget)
    store = _initialized(LOCAL)
    result, X, y = _worker(store, LOCAL, n_shards=1)
    change = training.local_steps(LOCAL, np.zeros((4, 1)), X, y, 0, 0)
    assert (result.gradient is not None, result.update is not None) == (gradient_inline, update_inline)
    update_key = layout.local_update_key("run", 0, 0)
    assert (result.update_key == update_key) is (update_key in store.arrays) is not update_inline
    update = unpack_vector(result.update) if result.update is not None else store.arrays[update_key]
    assert update.tobytes() == change.tobytes()


# -- the aggregator --------------------------------------------------------------------------------------------
def _round(store: FakeStore, hp: Hyperparameters, n_shards: list[int | None]) -> list[WorkerResult]:
    return [_worker(store, hp, n, index=i)[0] for i, n in enumerate(n_shards)]


def _aggregate(store: FakeStore, hp: Hyperparameters, results: list) -> training.RoundState:
    task = AggregateTask(
        run_id="run", round=0, params_key=layout.params_key("run", 0), hyperparameters=hp, results=results
    )
    return training.aggregate(store, task)


def _record(store: FakeStore) -> dict:
    doc = dict(store.documents[layout.round_key("run", 0)])
    return {k: v for k, v in doc.items() if k not in ("seconds", "finished_at")}


@pytest.mark.parametrize("hp", [SGD, LOCAL, Hyperparameters(solver="exact")], ids=["sgd", "local_steps", "exact"])
def test_inline_s3_and_mixed_results_aggregate_to_the_same_bits(hp):
    outcomes = []
    for n_shards in ([3, 3, 3], [None, None, None], [3, None, 3]):
        store = _initialized(hp)
        results = _round(store, hp, n_shards)
        state = _aggregate(store, hp, results)
        scratch = sorted(k for k in store.arrays if k.startswith(layout.SCRATCH))
        outcomes.append((state, store.archives[state.params_key]["theta"].tobytes(), _record(store), scratch))
    (inline, s3, mixed) = outcomes
    assert inline[:3] == s3[:3] == mixed[:3]
    assert inline[3] == []  # nothing went through S3
    assert len(s3[3]) == (6 if hp.worker_mode == "local_steps" else 3) and len(mixed[3]) == len(s3[3]) // 3


def test_a_replayed_aggregation_of_inline_results_changes_nothing():
    store = _initialized(SGD)
    results = _round(store, SGD, [2, 2])
    state = _aggregate(store, SGD, results)
    writes = dict(store.writes)
    assert _aggregate(store, SGD, [results[1], results[0], results[1]]) == state
    assert store.writes == writes


def test_late_and_failed_inline_results_are_left_out_as_before():
    hp = SGD.model_copy(update={"tolerated_failure_percentage": 50})
    store = _initialized(hp)
    results = _round(store, hp, [3, 3])
    late = results[1].model_copy(update={"shard": 7, "round": 4})
    failed = FailedShard(failed=True, shard=2, round=0, rows=40, error="Lambda.ServiceException")
    state = _aggregate(store, hp, [results[0], late, failed, results[1]])
    expected = _initialized(hp)
    assert _aggregate(expected, hp, _round(expected, hp, [3, 3])).loss == state.loss
    record = store.documents[layout.round_key("run", 0)]
    assert (record["ignored_shards"], record["failed_shards"], record["shards"]) == ([7], [2], 2)


class BarrierStore(FakeStore):
    """Each array read waits until ``parties`` reads are under way at once: sequential reads would break it."""

    def __init__(self, parties: int):
        super().__init__()
        self.barrier = threading.Barrier(parties, timeout=30)

    def get_array(self, key: str) -> np.ndarray:
        if key.startswith(layout.SCRATCH):
            self.barrier.wait()
        return super().get_array(key)


def test_results_from_s3_are_read_concurrently():
    store = BarrierStore(parties=4)
    training.init_run(store, InitTask(run_id="run", n_features=3, hyperparameters=SGD))
    results = _round(store, SGD, [None] * 4)
    state = _aggregate(store, SGD, results)  # would raise BrokenBarrierError if read one at a time
    assert state.round == 1 and [store.reads[layout.gradient_key("run", 0, i)] for i in range(4)] == [1] * 4


# -- the cost model ----------------------------------------------------------------------------------------------
def test_the_cost_model_uses_the_workers_budget():
    assert cost.INLINE_RESULTS_BYTES == schemas.INLINE_RESULTS_BYTES
    for shards in (1, 2, 8, 40, 41, 100, 420, 421, 1000):
        for values in (1, 29, 100, 307, 308, 871, 1536, 1537, 12_289):
            fits = packed_size(values) <= schemas.inline_result_bytes(shards)
            assert cost.results_inline(values, shards) is fits, (values, shards)
    assert cost.results_inline(0, 8) is False  # unknown size: counted through S3


def test_per_round_s3_requests_by_hand():
    # 8 shards, 28 features: 29 values = 312 characters, within 131,072 // 8 = 16,384. Each worker GETs the
    # parameters and its shard (2 x 8 = 16), the Aggregator GETs its summary check, parameters, round 0 and the
    # previous round (4) and PUTs the parameters and the summary (2): 20 GET, 2 PUT.
    assert cost.round_s3_requests(8, 29) == {"get": 20, "put": 2}
    # exact solver, 60 features: (61^2 + 62) = 3,783 values = 40,440 characters > 16,384: a PUT and a GET a shard
    assert cost.round_s3_requests(8, 61**2 + 62) == {"get": 28, "put": 10}
    # 1,000 shards: 131 characters a shard, 29 values do not fit
    assert cost.round_s3_requests(1000, 29) == {"get": 3004, "put": 1002}


def test_estimate_s3_counts_a_runs_inline_results():
    usage = cost.Usage(rounds=10, shards=4, result_values=29)
    usage.functions["GradientWorker"] = cost.FunctionUsage(40, 4_000, 1769)
    usage.functions["Aggregator"] = cost.FunctionUsage(11, 550, 1024)
    cost.estimate_s3(usage)
    # workers 40 x 2 GET; Aggregator 11 x (4 GET, 2 PUT); Preprocess's 4 shards; no result through S3
    assert (usage.s3_get, usage.s3_put) == (40 * 2 + 11 * 4, 11 * 2 + 4)
    usage.result_values = 0  # unknown: every result through S3, a PUT and a GET per shard and round
    cost.estimate_s3(usage)
    assert (usage.s3_get, usage.s3_put) == (40 * 2 + 11 * 4 + 40, 11 * 2 + 4 + 40)


def test_an_estimate_before_a_run_counts_the_reference_gradients_inline():
    usage = cost.estimate(1_000_000, 8, 100)
    assert usage.result_values == 29
    # 800 workers x 2 GET, 101 aggregations x 4 GET (the init is counted as one), 101 x 2 + 8 shards PUT
    assert (usage.s3_get, usage.s3_put) == (800 * 2 + 101 * 4 + 3 + 5, 101 * 2 + 8 + 2 + 3)
