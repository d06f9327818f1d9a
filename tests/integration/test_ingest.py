"""Ingest handler through API Gateway events and EventBridge S3 notifications, on moto."""

from __future__ import annotations

import base64
import copy
import json

from tests.conftest import keys, load_event


def _api(cloud, body, name="housing-sample", content_type="text/csv"):
    event = copy.deepcopy(load_event("ingest_api"))
    event["path"] = f"/datasets/{name}"
    event["pathParameters"] = {"name": name}
    event["headers"]["Content-Type"] = content_type
    if isinstance(body, bytes):
        event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
    else:
        event["body"] = body
    payload, error = cloud.invoke("IngestFunction", event)
    assert error is None, payload
    return payload["statusCode"], json.loads(payload["body"])


def test_api_event_stores_an_immutable_content_addressed_version(cloud):
    event = load_event("ingest_api")
    status, body = _api(cloud, event["body"])
    assert status == 201
    assert body["rows"] == 40 and body["created"] is True
    assert [c["name"] for c in body["columns"]] == [
        "area_m2",
        "bedrooms",
        "age_years",
        "distance_km",
        "lot_m2",
        "neighborhood",
        "price_k",
    ]
    kinds = {c["name"]: c["kind"] for c in body["columns"]}
    assert kinds["neighborhood"] == "categorical" and kinds["price_k"] == "numeric"
    version = body["version"]
    stored = cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=f"raw/housing-sample/{version}/data.csv")
    assert stored["Body"].read() == event["body"].encode()
    before = keys(cloud)

    status, again = _api(cloud, event["body"])
    assert status == 200 and again["created"] is False and again["version"] == version
    assert keys(cloud) == before  # nothing new written


def test_describe_returns_latest_and_unknown_is_404(cloud):
    _, created = _api(cloud, load_event("ingest_api")["body"])
    resp = cloud.request("GET", "/datasets/housing-sample")
    assert resp["statusCode"] == 200
    assert json.loads(resp["body"])["version"] == created["version"]
    resp = cloud.request("GET", "/datasets/nope")
    assert resp["statusCode"] == 404
    assert json.loads(resp["body"]) == {"message": "data set 'nope' does not exist"}


def test_s3_upload_notification_registers_the_same_version_and_removes_the_upload(cloud):
    csv = load_event("ingest_api")["body"].encode()
    _, via_api = _api(cloud, csv.decode())
    event = load_event("ingest_s3_upload")
    key = event["detail"]["object"]["key"]
    cloud.s3.put_object(Bucket=cloud.stack.bucket, Key=key, Body=csv)
    result, error = cloud.invoke("IngestFunction", event)
    assert error is None, result
    assert result["version"] == via_api["version"] and result["created"] is False
    assert keys(cloud, "uploads/") == []


def test_invalid_upload_notification_fails_and_writes_nothing(cloud):
    event = load_event("ingest_s3_upload")
    cloud.s3.put_object(Bucket=cloud.stack.bucket, Key=event["detail"]["object"]["key"], Body=b"a,b\n")
    result, error = cloud.invoke("IngestFunction", event)
    assert error == "Unhandled"
    assert result["errorType"] == "InvalidInput"
    assert result["errorMessage"] == "the file has a header but no data rows"
    assert keys(cloud, "raw/") == []


BAD_FILES = [
    (b"", "the file is empty"),
    (b"a,b\n", "the file has a header but no data rows"),
    (b"a,b\n1,2\n\xff\xfe,3\n", "the file is not UTF-8 text (byte 8: b'\\xff')"),
    (b"a,a\n1,2\n", "duplicate column name(s) in the header: a"),
    (
        b"a,b\n1,2\n1,2,3\n",
        "line 3 has 3 fields, more than the 2 in the header",
    ),
    (b"a,b\n1,2,3\n4,5\n", "line 2 has 3 fields, more than the 2 in the header"),
]


def test_unparseable_files_are_rejected_with_a_400_naming_the_problem(cloud):
    for data, message in BAD_FILES:
        status, body = _api(cloud, data)
        assert (status, body) == (400, {"message": message}), data
    assert keys(cloud) == []


def test_invalid_name_and_oversized_body_are_rejected(cloud):
    status, body = _api(cloud, "a\n1\n", name="..bad")
    assert status == 400
    assert body["message"].startswith("invalid data set name '..bad'")
    status, body = _api(cloud, "a\n" + "1\n" * (3 * 1024 * 1024))
    assert status == 400
    assert "over the 5242880 byte limit" in body["message"]
    assert keys(cloud) == []
