"""Workers keep their shards across invocations of a warm container, keyed by the shard's ETag, and the run's
summary reports the cache's hits and misses."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlcore.infra import layout
from mlcore.infra.storage import ArrayCache, S3Store
from mlcore.steps import training
from tests.helpers import load_event


def test_a_shard_is_read_once_while_its_etag_is_unchanged(cloud, monkeypatch):
    store = S3Store(cloud.stack.bucket)
    monkeypatch.setattr(training, "SHARD_CACHE", ArrayCache(2**20))
    first = np.arange(12, dtype=np.float32).reshape(4, 3)
    store.put_array("processed/r/shard-00000.npy", first)
    calls = []
    get_object = store.client.get_object

    def counting(**kwargs):
        resp = get_object(**kwargs)
        calls.append(kwargs.get("IfNoneMatch"))
        return resp

    monkeypatch.setattr(store.client, "get_object", counting)
    a = training.load_shard(store, "processed/r/shard-00000.npy").array
    b = training.load_shard(store, "processed/r/shard-00000.npy").array
    assert b is a and np.array_equal(a, first)
    assert calls == [None]  # the second read was a 304 Not Modified (raised, so not counted as a body)
    with pytest.raises(ValueError):
        a[0, 0] = 1.0  # shared between invocations: read-only
    base = a
    while isinstance(base, np.ndarray):
        base = base.base
    assert isinstance(base, bytes)  # a view over the received bytes, not a copy of them

    second = first + 1
    store.put_array("processed/r/shard-00000.npy", second)  # a new ETag: read again
    c = training.load_shard(store, "processed/r/shard-00000.npy").array
    assert np.array_equal(c, second) and len(calls) == 2 and calls[-1] is not None


ROUNDS, SHARDS = 4, 3


def test_a_local_run_downloads_each_shard_once_and_its_summary_reports_the_hit_rate(cloud, monkeypatch):
    """Locally one process holds every worker's cache: each shard is downloaded in round 0 and hit in the
    ROUNDS - 1 rounds after, a hit rate of (ROUNDS - 1) / ROUNDS."""
    cache = ArrayCache(2**20)
    monkeypatch.setattr(training, "SHARD_CACHE", cache)
    cloud.invoke("IngestFunction", load_event("ingest_api"))
    request = {
        "dataset": "housing-sample",
        "target": "price_k",
        "model_name": "cached",
        "n_shards": SHARDS,
        "hyperparameters": {"max_epochs": ROUNDS, "tolerance": 0.0, "solver": "sgd"},
    }
    started = json.loads(cloud.request("POST", "/training-runs", request)["body"])
    run_id = started["run_id"]
    execution = cloud.wait(
        cloud.state_machine_arns["TrainingStateMachine"].replace(":stateMachine:", ":execution:") + f":{run_id}"
    )
    assert execution["status"] == "SUCCEEDED", execution
    manifest = json.loads(
        cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=layout.manifest_key(run_id))["Body"].read()
    )
    shard_keys = sorted(s["key"] for s in manifest["shards"])
    sizes = [cloud.s3.head_object(Bucket=cloud.stack.bucket, Key=k)["ContentLength"] for k in shard_keys]
    assert len(shard_keys) == SHARDS
    assert sorted(cache.cached_keys()) == shard_keys
    assert cache.max_bytes == 1024 * 2**20 // 4  # the worker's bound: a quarter of its memory (locally the default)
    assert (cache.hits, cache.misses, cache.bytes_downloaded) == ((ROUNDS - 1) * SHARDS, SHARDS, sum(sizes))

    run = json.loads(cloud.request("GET", f"/training-runs/{run_id}", query={"curve": "true"})["body"])
    assert run["rounds_completed"] == ROUNDS
    assert run["shard_cache"] == {
        "hits": (ROUNDS - 1) * SHARDS,
        "misses": SHARDS,
        "hit_rate": (ROUNDS - 1) / ROUNDS,
        "bytes_downloaded": sum(sizes),
    }
    # each round's summary holds the run's totals so far: round 0 missed every shard, each later round hit them
    assert [(r["shard_cache"]["hits"], r["shard_cache"]["misses"]) for r in run["curve"]] == [
        (r * SHARDS, SHARDS) for r in range(ROUNDS)
    ]
