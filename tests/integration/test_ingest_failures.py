"""Every asynchronous upload ends ``ready`` or ``failed`` with a reason: an unexpected error (a fault injected into
the parser) gives a generic one-line reason, the details only in the logs, and is never raised (a retry cannot
help a bad file); a repeated or stray notification changes no status."""

from __future__ import annotations

import json

import pytest
import requests

from mlcore.steps import tabular
from tests.helpers import keys, load_event

CSV = load_event("ingest_api")["body"].encode()
REASON = "ingestion failed unexpectedly (RuntimeError); see the Ingest logs"


def _presigned_upload(cloud, name="housing-sample") -> dict:
    resp = cloud.request("POST", "/datasets", {"name": name})
    assert resp["statusCode"] == 201, resp
    upload = json.loads(resp["body"])
    assert requests.put(upload["upload_url"], data=CSV, timeout=10).status_code == 200  # moto serves the URL
    return upload


def _notify(cloud, key):
    event = load_event("ingest_s3_upload")
    event["detail"]["object"]["key"] = key
    return cloud.invoke("IngestFunction", event)


def _status_doc(cloud, name="housing-sample") -> dict:
    return json.loads(cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=f"datasets/{name}/status.json")["Body"].read())


def test_an_unexpected_parser_error_ends_the_upload_failed(cloud, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("parser fault near the value 'secret-4111'")

    monkeypatch.setattr(tabular, "scan", broken)
    upload = _presigned_upload(cloud)
    result, error = _notify(cloud, upload["key"])
    assert error is None, result  # not raised: Lambda would retry it and then drop it in the dead-letter queue
    assert (result["status"], result["reason"]) == ("failed", REASON)
    described = json.loads(cloud.request("GET", "/datasets/housing-sample")["body"])
    assert (described["status"], described["reason"]) == ("failed", REASON)
    assert "secret-4111" not in json.dumps(_status_doc(cloud))
    assert keys(cloud, "uploads/") == [] and keys(cloud, "raw/") == []
    [logged] = [r for r in caplog.records if r.getMessage() == "ingesting an upload failed unexpectedly"]
    assert logged.levelname == "ERROR" and logged.exc_info and logged.exc_info[0] is RuntimeError  # the traceback


def test_a_repeated_notification_changes_nothing(cloud):
    upload = _presigned_upload(cloud)
    result, error = _notify(cloud, upload["key"])
    assert error is None and result["created"] is True, result
    before = (keys(cloud), _status_doc(cloud))
    again, error = _notify(cloud, upload["key"])  # EventBridge delivers at least once
    assert error is None
    assert again == {
        "dataset": "housing-sample",
        "key": upload["key"],
        "status": "ignored",
        "reason": "the object no longer exists",
    }
    assert (keys(cloud), _status_doc(cloud)) == before


@pytest.mark.parametrize("key", ["uploads/stray.csv", "uploads/bad name!/x.csv"])
def test_an_upload_outside_a_data_set_folder_is_removed_without_a_status(cloud, key):
    [(answer, error)] = cloud.object_created(key, CSV)
    assert error is None, answer
    assert answer == {
        "key": key,
        "status": "ignored",
        "reason": "uploads must be written as uploads/<dataset>/<file>.csv (or .jsonl), the data set named by "
        "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
    }
    assert keys(cloud) == []
