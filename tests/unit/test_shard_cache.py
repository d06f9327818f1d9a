"""The per-container array cache of the workers' shards: a least-recently-used cache bounded by bytes, keyed by
S3 key and ETag, and the run's shard-cache summary built from the workers' results (fake store, no AWS)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from mlcore.infra import layout
from mlcore.infra.settings import Settings
from mlcore.infra.storage import ArrayCache
from mlcore.steps import asynchronous, training
from mlcore.steps.schemas import (
    AggregateTask,
    AsyncWorkerTask,
    FailedShard,
    Hyperparameters,
    InitTask,
    Shard,
    WorkerResult,
    WorkerTask,
)

from .fakes import FakeStore


def stored(store: FakeStore, key: str, rows: int, value: float = 0.0) -> int:
    """Store a (rows, 4) float32 array at ``key``; its size in bytes as an ``.npy`` object."""
    store.put_array(key, np.full((rows, 4), value, dtype=np.float32))
    return len(store.get_bytes(key))


def test_entries_are_evicted_by_bytes_in_least_recently_used_order():
    store = FakeStore()
    sizes = {key: stored(store, key, 100) for key in ("a", "b", "c")}
    assert len(set(sizes.values())) == 1  # same-sized entries: two fit, three do not
    cache = ArrayCache(max_bytes=2 * sizes["a"] + 10)
    cache.get_array(store, "a")
    cache.get_array(store, "b")
    assert cache.get_array(store, "a").hit  # "a" is now the most recently used
    cache.get_array(store, "c")  # over the bound: the least recently used ("b") goes
    assert cache.cached_keys() == ["a", "c"]
    assert cache.bytes == sizes["a"] + sizes["c"]
    again = cache.get_array(store, "b")
    assert not again.hit and again.downloaded == sizes["b"]
    assert cache.cached_keys() == ["c", "b"]  # and "a" went in turn
    assert (cache.hits, cache.misses, cache.bytes_downloaded) == (1, 4, 4 * sizes["a"])


def test_an_array_larger_than_the_bound_is_returned_but_not_cached():
    store = FakeStore()
    size = stored(store, "small", 10, 1.0)
    big = stored(store, "big", 1000, 2.0)
    cache = ArrayCache(max_bytes=size + 1)
    cache.get_array(store, "small")
    read = cache.get_array(store, "big")
    assert not read.hit and read.downloaded == big and np.all(read.array == 2.0) and read.array.shape == (1000, 4)
    assert cache.cached_keys() == ["small"] and cache.bytes == size  # nothing evicted to make room for what cannot fit
    assert not cache.get_array(store, "big").hit  # downloaded again
    assert cache.bytes_downloaded == size + 2 * big


def test_a_replaced_object_has_a_new_etag_and_misses():
    store = FakeStore()
    stored(store, "shard", 5, 1.0)
    cache = ArrayCache(max_bytes=2**20)
    first = cache.get_array(store, "shard")
    assert cache.get_array(store, "shard").array is first.array  # unchanged ETag: the cached array
    stored(store, "shard", 7, 3.0)  # replaced: a new ETag
    read = cache.get_array(store, "shard")
    assert not read.hit and read.array.shape == (7, 4) and np.all(read.array == 3.0)
    assert cache.get_array(store, "shard").array is read.array
    assert cache.cached_keys() == ["shard"] and cache.bytes == len(store.get_bytes("shard"))
    assert (cache.hits, cache.misses) == (2, 2)


def test_every_read_asks_s3_unless_the_object_is_write_once():
    store = FakeStore()
    stored(store, "shard", 5)
    stored(store, "block", 5)
    store.reads.clear()
    cache = ArrayCache(max_bytes=2**20)
    cache.get_array(store, "shard")
    cache.get_array(store, "shard")
    assert store.reads["shard"] == 2  # the hit was an If-None-Match request (a 304)
    cache.get_array(store, "block", write_once=True)
    assert cache.get_array(store, "block", write_once=True).hit
    assert store.reads["block"] == 1  # a write-once object is not asked for again


def test_cached_arrays_are_read_only():
    store = FakeStore()
    stored(store, "shard", 5)
    array = ArrayCache(max_bytes=2**20).get_array(store, "shard").array
    with pytest.raises(ValueError):
        array[0, 0] = 1.0


def test_a_smaller_bound_evicts_at_once():
    store = FakeStore()
    sizes = [stored(store, key, 10) for key in ("a", "b", "c")]
    cache = ArrayCache(max_bytes=sum(sizes))
    for key in ("a", "b", "c"):
        cache.get_array(store, key)
    cache.resize(sizes[0])
    assert cache.cached_keys() == ["c"] and cache.bytes == sizes[2]


def test_concurrent_readers_keep_the_counts_and_bytes_consistent():
    store = FakeStore()
    sizes = {f"shard-{i}": stored(store, f"shard-{i}", 50, float(i)) for i in range(8)}
    cache = ArrayCache(max_bytes=4 * sizes["shard-0"])
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        try:
            for n in range(40):
                key = f"shard-{(offset + n) % 8}"
                assert np.all(cache.get_array(store, key).array == float(key.split("-")[1]))
        except BaseException as err:  # reported by the main thread
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert cache.hits + cache.misses == 160
    assert cache.bytes == sum(sizes[k] for k in cache.cached_keys()) <= cache.max_bytes
    assert cache.bytes_downloaded == cache.misses * sizes["shard-0"]


def test_the_bound_is_a_quarter_of_the_function_memory(monkeypatch):
    monkeypatch.setenv("DATA_BUCKET", "b")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1769")
    assert Settings.from_env().shard_cache_bytes == 1769 * 2**20 // 4
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
    assert Settings.from_env().shard_cache_bytes == 256 * 2**20  # absent (local runs): the template's 1024 MiB


def result(shard: int, round_: int, hit: bool | None, downloaded: int = 0) -> WorkerResult:
    cache = {} if hit is None else {"shard_cache_hit": hit, "shard_bytes_downloaded": downloaded}
    return WorkerResult(shard=shard, round=round_, rows=1, loss_sum=0.0, gradient_key=f"g{shard}", **cache)


def task(round_: int, results: list) -> AggregateTask:
    return AggregateTask(run_id="r", round=round_, params_key="p", hyperparameters=Hyperparameters(), results=results)


def test_the_summary_adds_each_rounds_reads_to_the_previous_rounds_totals():
    store = FakeStore()
    first = task(0, [result(0, 0, False, 100), result(1, 0, False, 120), result(0, 0, False, 100)])
    totals = training.shard_cache_summary(store, first)  # the duplicated delivery of shard 0 counts once
    assert totals == {"hits": 0, "misses": 2, "hit_rate": 0.0, "bytes_downloaded": 220}
    store.put_json(layout.round_key("r", 0), {"round": 0, "shard_cache": totals})
    failed = FailedShard(failed=True, shard=2, round=1, rows=1, error="Boom")
    late = result(3, 0, False, 999)  # a late delivery from round 0: not this round's
    second = task(1, [result(0, 1, True), result(1, 1, False, 120), failed, late, result(4, 1, None)])
    assert training.shard_cache_summary(store, second) == {
        "hits": 1,
        "misses": 3,
        "hit_rate": 0.25,
        "bytes_downloaded": 340,
    }


def test_a_run_without_cache_reads_has_no_hit_rate():
    assert training.shard_cache_summary(FakeStore(), task(0, [result(0, 0, None)])) == {
        "hits": 0,
        "misses": 0,
        "hit_rate": None,
        "bytes_downloaded": 0,
    }


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_worker_result_says_whether_its_shard_was_a_hit_and_what_it_downloaded(mode, monkeypatch):
    monkeypatch.setattr(training, "SHARD_CACHE", ArrayCache(2**20))
    store = FakeStore()
    size = stored(store, "shards/0.npy", 16, 1.0)
    hp = Hyperparameters(optimizer="sgd", solver="sgd", batch_size=4)
    init = InitTask(action="init", run_id="r", n_features=3, hyperparameters=hp, mode=mode)
    shard = Shard(index=0, key="shards/0.npy", rows=16)
    if mode == "sync":
        state = training.init_run(store, init)

        def call(round_: int):
            task = WorkerTask(run_id="r", round=round_, params_key=state.params_key, shard=shard, hyperparameters=hp)
            return training.compute_gradient(store, task)
    else:
        asynchronous.init_async_run(store, init)

        def call(round_: int):
            task = AsyncWorkerTask(action="async_steps", run_id="r", round=round_, shard=shard, hyperparameters=hp)
            return asynchronous.run_async_steps(store, task)

    first, second = call(0), call(1)
    assert (first.shard_cache_hit, first.shard_bytes_downloaded) == (False, size)
    assert (second.shard_cache_hit, second.shard_bytes_downloaded) == (True, 0)
    passed_in = training.compute_gradient(
        store,
        WorkerTask(run_id="r", round=2, params_key=layout.params_key("r", 0), shard=shard),
        shard=np.zeros((4, 4), dtype=np.float32),
    )
    assert (passed_in.shard_cache_hit, passed_in.shard_bytes_downloaded) == (None, 0)  # not read: not counted
