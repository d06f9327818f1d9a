"""MemoryStore: the dict-backed ObjectStore of in-process runs, with S3's conditional-write semantics."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from mlcore.infra.storage import AlreadyExists, Conflict, MemoryStore, NeedsS3, NotFound, npy_sample_rows


def test_a_create_only_write_refuses_an_existing_key_and_leaves_it():
    store = MemoryStore()
    etag = store.put_bytes("a/1", b"first", if_absent=True)
    assert etag == f'"{hashlib.md5(b"first").hexdigest()}"'
    with pytest.raises(AlreadyExists):
        store.put_bytes("a/1", b"second", if_absent=True)
    assert store.get_bytes_with_etag("a/1") == (b"first", etag)


def test_a_compare_and_swap_write_needs_the_current_etag():
    store = MemoryStore()
    with pytest.raises(Conflict):  # nothing there to match
        store.put_bytes("k", b"x", if_match='"abc"')
    assert not store.exists("k")
    first = store.put_bytes("k", b"one")
    second = store.put_bytes("k", b"two", if_match=first)
    with pytest.raises(Conflict):  # the etag read before the last write
        store.put_bytes("k", b"three", if_match=first)
    assert store.get_bytes("k") == b"two" and second != first
    with pytest.raises(ValueError, match="exclusive"):
        store.put_bytes("k", b"x", if_absent=True, if_match=second)


def test_documents_and_arrays_go_through_the_byte_primitives():
    store = MemoryStore()
    etag = store.put_json("doc.json", {"a": 1})
    doc, tagged = store.get_json_tagged("doc.json")
    assert (doc, tagged) == ({"a": 1}, etag)
    store.put_json("doc.json", {"a": 2}, if_match=tagged)
    with pytest.raises(Conflict):
        store.put_json("doc.json", {"a": 3}, if_match=tagged)
    block = np.arange(40, dtype=np.float32).reshape(10, 4)
    store.put_array("block.npy", block)
    assert np.array_equal(store.get_array("block.npy"), block)
    sample, rows = npy_sample_rows(store, "block.npy", 4, windows=2)  # ranged reads
    assert rows == 10 and np.array_equal(sample, block[[0, 1, 5, 6]])
    store.put_arrays("p.npz", {"theta": block[0]})
    assert np.array_equal(store.get_arrays("p.npz")["theta"], block[0])


def test_reads_listing_and_deletion():
    store = MemoryStore()
    for key in ("b/2", "a/1", "b/1", "c"):
        store.put_bytes(key, key.encode(), content_type="text/plain")
    assert store.list_keys("b/") == ["b/1", "b/2"] and store.list_keys("") == ["a/1", "b/1", "b/2", "c"]
    body, etag = store.get_bytes_with_etag("b/1")
    assert store.get_bytes_if_changed("b/1", etag) == (None, etag)  # unchanged: nothing transferred
    assert store.get_bytes_if_changed("b/1", '"old"') == (body, etag)
    assert store.get_range("a/1", 1, 3) == b"/1" and store.get_range("a/1", 2, 2) == b""
    assert store.head("c") == {"ContentLength": 1, "ETag": store.get_bytes_with_etag("c")[1],
                               "ContentType": "text/plain", "Metadata": {}}  # fmt: skip
    assert store.head("missing") is None and not store.exists("missing")
    assert store.open("a/1").read() == b"a/1"
    store.copy("a/1", "d")
    assert store.get_bytes("d") == b"a/1"
    store.delete(["b/1", "b/2", "never"])
    assert store.list_keys("b/") == []
    for read in (store.get_bytes, store.get_array, lambda k: store.get_range(k, 0, 1)):
        with pytest.raises(NotFound):
            read("b/1")


def test_operations_that_need_s3_say_so():
    with pytest.raises(NeedsS3, match="no S3 client"):
        MemoryStore().presign_get("k", 60)
