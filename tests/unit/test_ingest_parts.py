"""Data sets larger than one file, on a fake store: many files under a prefix of landing/ (one version), and
presigned multipart uploads of one file."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from mlcore.infra import layout
from mlcore.infra.errors import InvalidInput, NotFoundError
from mlcore.steps import ingestion
from mlcore.steps.preparation import dispatch, streaming
from mlcore.steps.schemas import TrainingRequest
from mlcore.steps.tabular import scan
from tests.unit.fakes import FakeStore

HEADER = "x,city,y\n"
PARTS = {
    "landing/big/a.csv": HEADER + "1,a,2\n2,b,4\n3,,6\n",
    "landing/big/b.csv": HEADER + "4,a,8\n,c,10\n",
    "landing/big/c.csv": HEADER + "6,a,12\n7,b,14\n8,a,16\n9,c,18\n",
}


def _store(parts: dict[str, str] = PARTS) -> FakeStore:
    store = FakeStore()
    for key, text in parts.items():
        store.put_bytes(key, text.encode())
    return store


def _run(store: FakeStore, remaining=None) -> dict:
    """Queue the prefix, then deliver the notification of each request document until none is left."""
    queued = ingestion.register_prefix(store, "big", "landing/big/")
    result: dict = {}
    while requests := [k for k in store.list_keys("uploads/big/") if layout.is_prefix_request(k)]:
        assert len(requests) == 1
        result = ingestion.ingest_upload(store, requests[0], remaining=remaining)
    return {"queued": queued, "result": result}


def test_three_parts_register_one_version_with_merged_rows_and_profile():
    store = _store()
    out = _run(store)
    assert out["queued"] == {
        "dataset": "big",
        "status": "pending",
        "upload_id": out["queued"]["upload_id"],
        "source": "s3://fake-bucket/landing/big/",
        "parts": 3,
        "scanned": 0,
        "bytes": sum(len(t) for t in PARTS.values()),
    }
    meta = ingestion.describe(store, "big")
    hashes = [hashlib.sha256(t.encode()).hexdigest() for t in PARTS.values()]
    combined = hashlib.sha256("\n".join(hashes).encode()).hexdigest()
    assert meta["version"] == combined[:16] and meta["sha256"] == combined
    assert meta["rows"] == 9 and meta["n_columns"] == 3 and meta["format"] == "csv" and meta["delimiter"] == ","
    assert meta["bytes"] == sum(len(t) for t in PARTS.values())
    assert meta["key"] == f"raw/big/{meta['version']}/parts/"
    assert meta["parts"] == [
        {
            "key": f"raw/big/{meta['version']}/parts/part-{i:05d}.csv",
            "source": key,
            "bytes": len(text),
            "rows": text.count("\n") - 1,
            "sha256": hashes[i],
        }
        for i, (key, text) in enumerate(PARTS.items())
    ]
    # the merged profile is the profile of the one file the parts make
    whole = (HEADER + "".join(t.removeprefix(HEADER) for t in PARTS.values())).encode()
    assert meta["columns"] == scan(lambda: [whole]).columns
    x = meta["columns"][0]
    assert (x["missing"], x["min"], x["max"], x["mean"]) == (1, 1.0, 9.0, 40 / 8)
    assert meta["columns"][1]["top"] == [["a", 4], ["b", 2], ["c", 2]]
    for part in meta["parts"]:
        assert store.objects[part["key"]] == PARTS[part["source"]].encode()
    assert store.documents[layout.dataset_status_key("big")]["status"] == "ready"
    assert store.list_keys("uploads/") == []  # the request is removed
    assert store.list_keys("landing/") == list(PARTS)  # the user's files are left where they are
    assert out["result"]["created"] is True


def test_the_same_parts_again_write_no_new_version():
    store = _store()
    _run(store)
    written = dict(store.writes)
    again = _run(store)["result"]
    assert again["created"] is False
    raw = {k: n for k, n in store.writes.items() if k.startswith("raw/")}
    assert raw == {k: n for k, n in written.items() if k.startswith("raw/")}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            "x,town,y\n4,a,8\n",
            "part 'landing/big/b.csv' does not match the first part 'landing/big/a.csv': "
            "column 2 is 'town' where the first part has 'city'",
        ),
        (
            "x,city,y,z\n4,a,8,1\n",
            "part 'landing/big/b.csv' does not match the first part 'landing/big/a.csv': "
            "it has an extra column 'z' (column 4)",
        ),
        (
            "x,city\n4,a\n",
            "part 'landing/big/b.csv' does not match the first part 'landing/big/a.csv': "
            "it lacks the column 'y' (column 3)",
        ),
        (
            "x,city,y\nfour,a,8\n",
            "part 'landing/big/b.csv' does not match the first part 'landing/big/a.csv': "
            "column 'x' is categorical in it and numeric in the parts before",
        ),
        (
            "x;city;y\n4;a;8\n",
            "part 'landing/big/b.csv' does not match the first part 'landing/big/a.csv': "
            "it is separated by ';', the first part by ','",
        ),
        ("x,city,y\n4,a\n", "part 'landing/big/b.csv': line 2 has 2 fields, fewer than the 3 in the header"),
        ("x,city,y\n4,\xe9,8\n", "part 'landing/big/b.csv': the file is not UTF-8 text (byte 11: b'\\xe9')"),
    ],
)
def test_a_part_unlike_the_first_is_refused_and_nothing_is_registered(text, reason):
    store = _store()
    store.put_bytes("landing/big/b.csv", text.encode("latin-1"))
    out = _run(store)
    status = store.documents[layout.dataset_status_key("big")]
    assert status["status"] == "failed" and status["reason"] == reason
    assert out["result"]["reason"] == reason
    assert store.list_keys("raw/") == [] and store.list_keys("uploads/") == []
    with pytest.raises(NotFoundError):
        ingestion.describe(store, "big")


def test_a_column_without_values_in_a_part_fits_either_kind():
    store = _store({"landing/big/a.csv": "x,y\n,1\n,2\n", "landing/big/b.csv": "x,y\nu,3\n"})
    _run(store)
    columns = ingestion.describe(store, "big")["columns"]
    assert columns[0] == {"name": "x", "missing": 2, "kind": "categorical", "distinct": 1, "top": [["u", 1]]}


def test_a_part_changed_after_the_request_fails_the_registration():
    store = _store()
    ingestion.register_prefix(store, "big", "landing/big/")
    store.put_bytes("landing/big/c.csv", (HEADER + "1,a,2\n").encode())
    (request,) = store.list_keys("uploads/big/")
    ingestion.ingest_upload(store, request)
    status = store.documents[layout.dataset_status_key("big")]
    assert status["reason"] == (
        "part 'landing/big/c.csv' changed or was removed since the request; register the prefix again"
    )
    assert store.list_keys("raw/") == [] and store.list_keys("uploads/") == []


def test_a_part_changed_under_its_copy_registers_nothing():
    class MovingPart(FakeStore):
        def copy(self, source, key, **kwargs):
            if source.endswith("c.csv"):
                self.put_bytes(source, b"x,city,y\n0,a,0\n")  # rewritten between the scan and the copy
            return super().copy(source, key, **kwargs)

    store = MovingPart()
    for key, text in PARTS.items():
        store.put_bytes(key, text.encode())
    _run(store)
    status = store.documents[layout.dataset_status_key("big")]
    assert status["reason"] == "part 'landing/big/c.csv' changed while it was read; register the prefix again"
    # Ingest may not delete under raw/: the parts copied before stay, named by no dataset.json or latest.json
    assert [k.rsplit("/", 1)[1] for k in store.list_keys("raw/")] == ["part-00000.csv", "part-00001.csv"]
    assert store.list_keys("uploads/") == []
    with pytest.raises(NotFoundError):
        ingestion.describe(store, "big")


def test_a_long_registration_continues_in_new_invocations_with_the_same_outcome():
    whole = _store()
    _run(whole)
    expected = ingestion.describe(whole, "big")

    store = _store()
    steps: list[int] = []
    original = ingestion.ingest_upload

    def spy(store_, key, remaining=None):
        steps.append(int(key.split(".")[-3]))
        return original(store_, key, remaining=remaining)

    queued = ingestion.register_prefix(store, "big", "landing/big/")
    while requests := store.list_keys("uploads/big/"):
        status = store.documents[layout.dataset_status_key("big")]
        assert status["status"] == "pending"
        spy(store, requests[0], remaining=lambda: ingestion.INVOCATION_MARGIN_SECONDS)  # one part at a time
    # 3 scans, then 3 copies: one per invocation
    assert steps == [0, 1, 2, 3, 4, 5]
    meta = ingestion.describe(store, "big")
    assert {k: v for k, v in meta.items() if k != "created_at"} == {
        k: v for k, v in expected.items() if k != "created_at"
    }
    assert store.documents[layout.dataset_status_key("big")]["version"] == meta["version"]
    assert queued["parts"] == 3


def test_a_next_step_that_finishes_before_the_one_that_queued_it_returns_leaves_the_status_ready():
    """The next step's request document invokes Ingest again at once (as its S3 notification may): here it runs
    inside the put, to the end of the registration, before the step that queued it goes on."""
    store = _store()
    put_json = store.put_json

    def put_and_deliver(key, doc, **kwargs):
        etag = put_json(key, doc, **kwargs)
        if layout.is_prefix_request(key) and int(doc["step"]) > 0:
            ingestion.ingest_upload(store, key, remaining=lambda: ingestion.INVOCATION_MARGIN_SECONDS)
        return etag

    store.put_json = put_and_deliver  # type: ignore[method-assign]
    ingestion.register_prefix(store, "big", "landing/big/")
    (first,) = store.list_keys("uploads/big/")
    ingestion.ingest_upload(store, first, remaining=lambda: ingestion.INVOCATION_MARGIN_SECONDS)
    assert store.list_keys("uploads/big/") == []
    assert ingestion.status(store, "big")["status"] == "ready"


def test_the_status_shows_the_progress_of_a_pending_registration():
    store = _store()
    ingestion.register_prefix(store, "big", "landing/big/")
    (request,) = store.list_keys("uploads/big/")
    ingestion.ingest_upload(store, request, remaining=lambda: 0.0)
    status = ingestion.status(store, "big")
    assert status["status"] == "pending"
    assert status["progress"] == {"parts": 3, "scanned": 1, "copied": 0, "bytes": sum(len(t) for t in PARTS.values())}


@pytest.mark.parametrize(
    ("prefix", "objects", "error", "message"),
    [
        (
            "big/",
            {},
            InvalidInput,
            "s3_prefix 'big/' is not allowed: use a prefix under landing/ ending in '/', e.g. landing/big/",
        ),
        (
            "landing/big",
            {},
            InvalidInput,
            "s3_prefix 'landing/big' is not allowed: use a prefix under landing/ ending in '/', e.g. landing/big/",
        ),
        (
            "landing/../raw/",
            {},
            InvalidInput,
            "s3_prefix 'landing/../raw/' is not allowed: use a prefix under landing/ ending in '/', e.g. landing/big/",
        ),
        ("landing/none/", {"landing/none/": b""}, NotFoundError, "no objects under s3_prefix 'landing/none/'"),
        ("landing/big/", {"landing/big/a.csv": b""}, InvalidInput, "part 'landing/big/a.csv' is empty"),
        (
            "landing/big/",
            {"landing/big/a.jsonl": b'{"x": 1}\n'},
            InvalidInput,
            "part 'landing/big/a.jsonl' is JSON Lines: a data set of many files is CSV, a header each",
        ),
    ],
)
def test_a_prefix_is_checked_before_it_is_queued(prefix, objects, error, message):
    store = FakeStore()
    for key, body in objects.items():
        store.put_bytes(key, body)
    with pytest.raises(error) as raised:
        ingestion.register_prefix(store, "big", prefix)
    assert str(raised.value).startswith(message)
    assert store.list_keys("uploads/") == [] and store.list_keys("datasets/") == []


def test_directory_keys_are_skipped():
    store = _store({**PARTS, "landing/big/": ""})
    assert ingestion.register_prefix(store, "big", "landing/big/")["parts"] == 3


def test_the_size_and_count_limits_of_a_prefix(monkeypatch):
    store = _store()
    monkeypatch.setattr(ingestion, "MAX_PART_BYTES", 30)
    with pytest.raises(InvalidInput, match=r"^part 'landing/big/c.csv' is 37 bytes, over the 30 byte limit$"):
        ingestion.register_prefix(store, "big", "landing/big/")
    monkeypatch.setattr(ingestion, "MAX_PART_BYTES", 100)
    monkeypatch.setattr(ingestion, "MAX_DATASET_BYTES", 80)
    with pytest.raises(InvalidInput, match=r"^s3_prefix 'landing/big/' holds 84 bytes, over the 80 byte limit$"):
        ingestion.register_prefix(store, "big", "landing/big/")
    monkeypatch.setattr(ingestion, "MAX_PARTS", 2)
    with pytest.raises(InvalidInput, match=r"^s3_prefix 'landing/big/' holds 3 objects, more than the limit of 2$"):
        ingestion.register_prefix(store, "big", "landing/big/")


# -- multipart uploads ------------------------------------------------------------------------------------------
MIB = 1024 * 1024


@pytest.mark.parametrize(
    ("size", "part_bytes", "n_parts"),
    [
        (1, 8 * MIB, 1),
        (8 * MIB, 8 * MIB, 1),
        (8 * MIB + 1, 8 * MIB, 2),
        (20 * 1024**3, 21 * MIB, 976),  # the largest data set as one file is refused (below); its plan would be this
        (4 * 1024**3, 8 * MIB, 512),
    ],
)
def test_a_multipart_upload_has_parts_of_at_least_8_mib_and_at_most_1000_urls(size, part_bytes, n_parts, monkeypatch):
    monkeypatch.setattr(ingestion, "MAX_PART_BYTES", 20 * 1024**3)
    store = FakeStore()
    started = ingestion.start_multipart_upload(store, "big", size)
    assert started["part_bytes"] == part_bytes and len(started["parts"]) == n_parts
    assert sum(p["bytes"] for p in started["parts"]) == size
    assert [p["offset"] for p in started["parts"]] == [i * part_bytes for i in range(n_parts)]
    assert all(p["bytes"] >= 5 * MIB for p in started["parts"][:-1])


def test_a_multipart_upload_over_one_file_limit_is_refused():
    with pytest.raises(InvalidInput, match=r"^bytes must be from 1 to 4294967296 \(one file\)"):
        ingestion.start_multipart_upload(FakeStore(), "big", 4 * 1024**3 + 1)


def _multipart(store: FakeStore, body: bytes, declared: int | None = None) -> dict:
    started = ingestion.start_multipart_upload(store, "big", declared or len(body))
    etags = [
        store.upload_part(
            started["multipart_upload_id"], p["part_number"], body[p["offset"] : p["offset"] + p["bytes"]]
        )
        for p in started["parts"]
    ]
    parts = list(enumerate(etags, start=1))
    return ingestion.complete_multipart_upload(
        store, "big", started["upload_id"], started["multipart_upload_id"], parts
    )


def test_a_completed_multipart_upload_is_registered_as_one_upload():
    store = FakeStore()
    body = (HEADER + "".join(f"{i},a,{2 * i}\n" for i in range(1_000_000))).encode()  # 12.9 MB: two parts
    done = _multipart(store, body)
    assert done["status"] == "pending" and done["parts"] == 2
    assert store.head(done["key"])["Metadata"] == {"declared-bytes": str(len(body))}
    result = ingestion.ingest_upload(store, done["key"])
    assert result["rows"] == 1_000_000 and result["version"] == hashlib.sha256(body).hexdigest()[:16]
    assert store.objects[result["key"]] == body and not store.exists(done["key"])


def test_an_upload_of_another_size_than_declared_is_refused():
    store = FakeStore()
    body = (HEADER + "1,a,2\n").encode()
    done = _multipart(store, body + b"3,b,4\n", declared=len(body) + 6)
    store.put_bytes(done["key"], body, content_type="text/csv")  # as if the object were another one
    store.metadata[done["key"]] = {"declared-bytes": str(len(body) + 6)}
    ingestion.ingest_upload(store, done["key"])
    status = store.documents[layout.dataset_status_key("big")]
    assert status["reason"] == f"the upload is {len(body)} bytes, not the {len(body) + 6} declared when it started"
    assert store.list_keys("raw/") == []


def test_completing_with_wrong_parts_is_refused():
    store = FakeStore()
    started = ingestion.start_multipart_upload(store, "big", 10)
    store.upload_part(started["multipart_upload_id"], 1, b"x,y\n1,2\n30")
    upload_id, multipart_id = started["upload_id"], started["multipart_upload_id"]
    with pytest.raises(InvalidInput, match=r"^the parts do not make the upload \(InvalidPart: "):
        ingestion.complete_multipart_upload(store, "big", upload_id, multipart_id, [(1, '"nope"')])
    with pytest.raises(InvalidInput, match=r"^parts must be numbered 1 to 2 in order, each with its ETag$"):
        ingestion.complete_multipart_upload(store, "big", upload_id, multipart_id, [(2, '"a"'), (1, '"b"')])
    with pytest.raises(NotFoundError, match=r"^upload '0000000000000000' of data set 'big' is not in progress"):
        ingestion.complete_multipart_upload(store, "big", "0" * 16, multipart_id, [(1, '"a"')])
    with pytest.raises(NotFoundError, match=r"^upload '../x' of data set 'big' does not exist$"):
        ingestion.complete_multipart_upload(store, "big", "../x", multipart_id, [(1, '"a"')])
    assert store.list_keys("uploads/") == []


# -- Preprocess reads the parts as one table ---------------------------------------------------------------------
def _rows(n: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n).round(3)
    return "".join(f"{v},{rng.choice(['a', 'b'])},{2 * v + 1:.3f}\n" for v in x)


@pytest.mark.parametrize("streamed", [False, True])
def test_preprocess_reads_a_version_of_many_parts_as_the_one_file_they_make(streamed, monkeypatch):
    monkeypatch.setattr(streaming, "CHUNK_ROWS", 40)  # parts of 80 rows: the chunks start where the file's do
    bodies = [_rows(80, seed) for seed in range(3)]
    parts = _store({f"landing/big/{i}.csv": HEADER + body for i, body in enumerate(bodies)})
    _run(parts)
    whole = FakeStore()
    ingestion.ingest(whole, "big", (HEADER + "".join(bodies)).encode(), source="api")
    request = TrainingRequest.model_validate({"dataset": "big", "target": "y", "model_name": "m", "n_shards": 2})
    threshold = 0 if streamed else dispatch.STREAM_THRESHOLD_BYTES
    a = dispatch.preprocess(parts, request, "run-parts", stream_threshold=threshold)
    b = dispatch.preprocess(whole, request, "run-parts", stream_threshold=threshold)
    assert (a.train_rows, a.test_rows) == (b.train_rows, b.test_rows) and a.train_rows + a.test_rows == 240
    for key in [*(s.key for s in a.shards), layout.held_out_key("run-parts", "test")]:
        np.testing.assert_array_equal(
            parts.arrays.get(key, parts.objects.get(key)), whole.arrays.get(key, whole.objects.get(key))
        )
