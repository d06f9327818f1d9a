"""Data sets larger than one file on the local cloud (moto, the real handlers, the template's IAM grants and
notifications): the CSV files under a prefix of landing/ registered as one version (202, then asynchronous scans,
in as many invocations as it takes), and a presigned multipart upload of one file."""

from __future__ import annotations

import json

import pytest
import requests

from mlcore.steps import ingestion
from tests.helpers import keys

HEADER = "x,city,y\n"
PARTS = {
    "landing/big/2026-01.csv": HEADER + "1,a,2\n2,b,4\n3,,6\n",
    "landing/big/2026-02.csv": HEADER + "4,a,8\n,c,10\n",
    "landing/big/2026-03.csv": HEADER + "6,a,12\n7,b,14\n8,a,16\n9,c,18\n",
}


def _land(cloud, parts: dict[str, str]) -> None:
    for key, text in parts.items():
        cloud.s3.put_object(Bucket=cloud.stack.bucket, Key=key, Body=text.encode())


def _status(cloud, name: str = "big") -> dict:
    return json.loads(cloud.request("GET", f"/datasets/{name}")["body"])


def test_three_files_under_a_prefix_register_one_version(cloud):
    _land(cloud, PARTS)
    resp = cloud.request("POST", "/datasets/big", {"s3_prefix": "landing/big/"})
    assert resp["statusCode"] == 202, resp
    queued = json.loads(resp["body"])
    assert (queued["status"], queued["parts"], queued["source"]) == (
        "pending",
        3,
        f"s3://{cloud.stack.bucket}/landing/big/",
    )
    answers = cloud.settle()
    assert [error for _, error in answers] == [None]
    meta = _status(cloud)
    assert meta["status"] == "ready" and meta["rows"] == 9 and len(meta["parts"]) == 3
    assert [p["source"] for p in meta["parts"]] == list(PARTS) and [p["rows"] for p in meta["parts"]] == [3, 2, 4]
    assert meta["columns"][0]["min"] == 1.0 and meta["columns"][0]["max"] == 9.0 and meta["columns"][0]["missing"] == 1
    version = meta["version"]
    assert keys(cloud, "raw/") == [
        f"raw/big/{version}/dataset.json",
        *(f"raw/big/{version}/parts/part-{i:05d}.csv" for i in range(3)),
        "raw/big/latest.json",
    ]
    for part in meta["parts"]:
        body = cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=part["key"])["Body"].read()
        assert body == PARTS[part["source"]].encode()
    assert keys(cloud, "uploads/") == [] and keys(cloud, "landing/") == list(PARTS)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            "x,town,y\n4,a,8\n",
            "part 'landing/big/2026-02.csv' does not match the first part 'landing/big/2026-01.csv': "
            "column 2 is 'town' where the first part has 'city'",
        ),
        (
            "x,city,y,z\n4,a,8,0\n",
            "part 'landing/big/2026-02.csv' does not match the first part 'landing/big/2026-01.csv': "
            "it has an extra column 'z' (column 4)",
        ),
    ],
)
def test_a_part_with_another_header_is_refused_and_nothing_is_registered(cloud, text, reason):
    _land(cloud, {**PARTS, "landing/big/2026-02.csv": text})
    assert cloud.request("POST", "/datasets/big", {"s3_prefix": "landing/big/"})["statusCode"] == 202
    cloud.settle()
    status = _status(cloud)
    assert (status["status"], status["reason"]) == ("failed", reason)
    assert keys(cloud, "raw/") == [] and keys(cloud, "uploads/") == []
    assert keys(cloud, "datasets/") == ["datasets/big/status.json"]


def test_a_registration_longer_than_one_invocation_continues_in_the_next(cloud, monkeypatch):
    _land(cloud, PARTS)
    monkeypatch.setattr(ingestion, "SCAN_BYTES_PER_SECOND", 1e-6)  # no part "fits" after another: one each
    monkeypatch.setattr(ingestion, "COPY_BYTES_PER_SECOND", 1e-6)
    before = cloud.invocations["IngestFunction"]
    assert cloud.request("POST", "/datasets/big", {"s3_prefix": "landing/big/"})["statusCode"] == 202
    answers = cloud.settle()
    steps = [answer.get("step") for answer, _ in answers]  # in order of completion: a step may end after the next
    assert sorted(s for s in steps if s is not None) == [1, 2, 3, 4, 5] and steps.count(None) == 1  # 3 scans, 3 copies
    assert cloud.invocations["IngestFunction"] - before == 7  # the API call, then one invocation per step
    meta = _status(cloud)
    assert meta["status"] == "ready" and meta["rows"] == 9
    assert keys(cloud, "uploads/") == []


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (
            {"s3_prefix": "raw/big/"},
            400,
            "s3_prefix 'raw/big/' is not allowed: use a prefix under landing/ ending in '/', e.g. landing/big/",
        ),
        ({"s3_prefix": "landing/none/"}, 404, "no objects under s3_prefix 'landing/none/' in the data bucket"),
        (
            {"s3_prefix": "landing/big/", "s3_key": "landing/big/a.csv"},
            400,
            'a JSON body must be {"s3_key": "<key in the data bucket>"}, {"s3_prefix": "landing/<prefix>/"} or '
            '{"url": "https://..."}; send a file as text/csv or application/x-ndjson',
        ),
    ],
)
def test_a_bad_prefix_is_a_4xx_and_queues_nothing(cloud, body, status, message):
    resp = cloud.request("POST", "/datasets/big", body)
    assert resp["statusCode"] == status and json.loads(resp["body"])["message"] == message
    assert keys(cloud, "uploads/") == [] and keys(cloud, "datasets/") == [] and cloud.settle() == []


def _big_csv(rows: int) -> bytes:
    return (HEADER + "".join(f"{i},{'abc'[i % 3]},{2 * i + 1}\n" for i in range(rows))).encode()


def test_a_presigned_multipart_upload_is_registered(cloud):
    body = _big_csv(700_000)  # about 9.6 MiB: a part of 8 MiB and the rest
    resp = cloud.request("POST", "/datasets/big/uploads", {"bytes": len(body)})
    assert resp["statusCode"] == 201, resp
    started = json.loads(resp["body"])
    assert started["part_bytes"] == 8 * 1024 * 1024 and [p["part_number"] for p in started["parts"]] == [1, 2]
    assert _status(cloud)["status"] == "pending"
    etags = []
    for part in started["parts"]:
        chunk = body[part["offset"] : part["offset"] + part["bytes"]]
        put = requests.put(part["upload_url"], data=chunk, timeout=30)  # moto serves the presigned URLs
        assert put.status_code == 200
        etags.append(put.headers["ETag"])
    assert keys(cloud, "uploads/") == []  # nothing is an object before the upload is complete
    done = cloud.request(
        "POST",
        started["complete"]["path"],
        {
            "multipart_upload_id": started["multipart_upload_id"],
            "parts": [{"part_number": n, "etag": e} for n, e in enumerate(etags, start=1)],
        },
    )
    assert done["statusCode"] == 202, done
    assert [error for _, error in cloud.settle()] == [None]
    meta = _status(cloud)
    assert meta["status"] == "ready" and meta["rows"] == 700_000 and meta["bytes"] == len(body)
    assert keys(cloud, "uploads/") == [] and keys(cloud, "raw/") == [
        f"raw/big/{meta['version']}/data.csv",
        f"raw/big/{meta['version']}/dataset.json",
        "raw/big/latest.json",
    ]


def test_completing_a_multipart_upload_with_a_wrong_etag_is_a_400(cloud):
    started = json.loads(cloud.request("POST", "/datasets/big/uploads", {"bytes": 20})["body"])
    assert requests.put(started["parts"][0]["upload_url"], data=_big_csv(3)[:20], timeout=30).status_code == 200
    body = {"multipart_upload_id": started["multipart_upload_id"], "parts": [{"part_number": 1, "etag": '"0"'}]}
    resp = cloud.request("POST", started["complete"]["path"], body)
    assert resp["statusCode"] == 400
    assert json.loads(resp["body"])["message"].startswith("the parts do not make the upload (InvalidPart: ")
    assert keys(cloud, "uploads/") == [] and keys(cloud, "raw/") == [] and cloud.settle() == []
    too_big = cloud.request("POST", "/datasets/big/uploads", {"bytes": ingestion.MAX_PART_BYTES + 1})
    assert too_big["statusCode"] == 422
