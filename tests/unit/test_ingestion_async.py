"""The asynchronous ingestion paths on a fake store: queuing a URL, and failures that must end in a status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mlcore.infra import layout
from mlcore.infra.errors import InvalidInput
from mlcore.infra.urlfetch import UrlPolicy
from mlcore.steps import ingestion
from tests.unit.fakes import FakeStore

PUBLIC = UrlPolicy(resolver=lambda host, port: ["93.184.216.34"])


class BrokenQueue(FakeStore):
    """S3 refuses the request document."""

    def put_json(self, key, doc, **kwargs):
        if layout.is_url_request(key):
            raise OSError("injected storage fault")
        return super().put_json(key, doc, **kwargs)


def test_a_url_is_checked_then_queued_without_being_fetched():
    store = FakeStore()
    queued = ingestion.ingest_url(store, "web", "https://data.example.org/x.jsonl?v=2", PUBLIC)
    upload_id = queued["upload_id"]
    assert queued == {
        "dataset": "web",
        "status": "pending",
        "upload_id": upload_id,
        "key": f"uploads/web/{upload_id}.jsonl",
        "source": "https://data.example.org/x.jsonl?v=2",
    }
    request = store.documents[f"uploads/web/{upload_id}.request.json"]
    assert {k: request[k] for k in ("dataset", "url", "format", "key")} == {
        "dataset": "web",
        "url": "https://data.example.org/x.jsonl?v=2",
        "format": "jsonl",
        "key": queued["key"],
    }
    assert store.documents["datasets/web/status.json"]["status"] == "pending"
    assert sorted(store.list_keys("")) == ["datasets/web/status.json", f"uploads/web/{upload_id}.request.json"]


def test_a_refused_url_writes_nothing():
    store = FakeStore()
    with pytest.raises(InvalidInput, match="^only https URLs can be ingested, got 'http://data.example.org/x'$"):
        ingestion.ingest_url(store, "web", "http://data.example.org/x", PUBLIC)
    assert store.list_keys("") == []


def test_a_url_that_cannot_be_queued_is_failed_not_left_pending():
    store = BrokenQueue()
    with pytest.raises(OSError, match="injected storage fault"):
        ingestion.ingest_url(store, "web", "https://data.example.org/x.csv", PUBLIC)
    status = store.documents["datasets/web/status.json"]
    assert (status["status"], status["reason"]) == ("failed", "the URL ingestion could not be queued; try again")
    assert store.list_keys("uploads/") == []


def test_a_request_whose_key_leaves_its_data_set_fails():
    store = FakeStore()
    request_key = layout.url_request_key("web", "url-0123456789abcdef")
    store.documents[request_key] = {"url": "https://data.example.org/x.csv", "key": "uploads/other/x.csv"}
    result = ingestion.ingest_upload(store, request_key, PUBLIC)
    assert (result["status"], result["reason"]) == (
        "failed",
        f"the URL request {request_key!r} names an upload key outside uploads/web/",
    )
    assert store.list_keys("") == ["datasets/web/status.json"]


def test_request_keys_are_recognised_and_are_not_data_files():
    key = layout.url_request_key("web", "url-0123456789abcdef")
    assert key == "uploads/web/url-0123456789abcdef.request.json"
    assert layout.is_url_request(key) and layout.upload_dataset(key) == "web"
    assert not layout.is_url_request(layout.upload_key("web", "url-0123456789abcdef", "csv"))
    assert not layout.is_url_request("landing/x.request.json")


@pytest.mark.parametrize(("age", "status"), [(ingestion.PENDING_EXPIRES_SECONDS - 60, "pending"), (3700, "failed")])
def test_an_ingestion_pending_past_its_expiry_reads_as_failed(age, status):
    """An upload URL never used, or an Ingest that timed out on every attempt, leaves no word: the status says so."""
    store = FakeStore()
    started = ingestion.start_upload(store, "web")
    doc = store.documents["datasets/web/status.json"]
    doc["updated_at"] = (datetime.now(UTC) - timedelta(seconds=age)).isoformat()
    seen = ingestion.status(store, "web")
    assert (seen["status"], seen["upload_id"]) == (status, started["upload_id"])
    if status == "failed":
        assert seen["reason"] == (
            "nothing was registered within 60 minutes: the upload URL expired unused, or the ingestion was cut short "
            "(see the Ingest logs); start a new upload"
        )
    assert store.documents["datasets/web/status.json"] == doc  # reading the status writes nothing
