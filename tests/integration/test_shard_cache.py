"""Workers keep their shard across invocations of a warm container, keyed by the shard's ETag."""

from __future__ import annotations

import numpy as np
import pytest

from mlcore.infra.storage import S3Store
from mlcore.steps import training


def test_a_shard_is_read_once_while_its_etag_is_unchanged(cloud, monkeypatch):
    store = S3Store(cloud.stack.bucket)
    monkeypatch.setattr(training, "SHARD_CACHE", {})
    first = np.arange(12, dtype=np.float32).reshape(4, 3)
    store.put_array("processed/r/shard-00000.npy", first)
    calls = []
    get_object = store.client.get_object

    def counting(**kwargs):
        resp = get_object(**kwargs)
        calls.append(kwargs.get("IfNoneMatch"))
        return resp

    monkeypatch.setattr(store.client, "get_object", counting)
    a = training.load_shard(store, "processed/r/shard-00000.npy")
    b = training.load_shard(store, "processed/r/shard-00000.npy")
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
    c = training.load_shard(store, "processed/r/shard-00000.npy")
    assert np.array_equal(c, second) and len(calls) == 2 and calls[-1] is not None
