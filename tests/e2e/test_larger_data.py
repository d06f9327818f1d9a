"""Data larger than one file, end to end on the local API server: a presigned multipart upload over HTTP, and a data
set of many files under a prefix trained through the real state machine."""

from __future__ import annotations

import json
import urllib.request

import pytest

from mllocal.server import LocalApi


@pytest.fixture(scope="module")
def server():
    with LocalApi(port=0, access_log=False) as api:
        yield api


def _call(server, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{server.url}{path}", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    request.add_header("x-api-key", server.api_key or "unused")
    with urllib.request.urlopen(request, timeout=60) as resp:
        return resp.status, json.loads(resp.read())


def _put(url: str, body: bytes) -> str:
    with urllib.request.urlopen(urllib.request.Request(url, data=body, method="PUT"), timeout=60) as resp:
        assert resp.status == 200
        return resp.headers["ETag"]


def test_a_multipart_upload_through_the_local_server_is_registered(server):
    body = ("x,y\n" + "".join(f"{i},{2 * i + 1}\n" for i in range(1_000_000))).encode()  # 12.8 MB: two parts
    status, started = _call(server, "POST", "/datasets/uploaded/uploads", {"bytes": len(body)})
    assert status == 201 and len(started["parts"]) == 2
    assert all(p["upload_url"].startswith(f"{server.url}/_local_s3/uploads/uploaded/") for p in started["parts"])
    etags = [_put(p["upload_url"], body[p["offset"] : p["offset"] + p["bytes"]]) for p in started["parts"]]
    parts = [{"part_number": n, "etag": etag} for n, etag in enumerate(etags, start=1)]
    complete = {"multipart_upload_id": started["multipart_upload_id"], "parts": parts}
    status, done = _call(server, "POST", started["complete"]["path"], complete)
    assert status == 202 and done["status"] == "pending"
    server.cloud.settle()
    status, meta = _call(server, "GET", "/datasets/uploaded")
    assert meta["status"] == "ready" and meta["rows"] == 1_000_000 and meta["bytes"] == len(body)


def test_a_part_url_signed_for_another_part_is_refused(server):
    _, started = _call(server, "POST", "/datasets/uploaded/uploads", {"bytes": 20 * 1024 * 1024})
    forged = started["parts"][0]["upload_url"].replace("partNumber=1", "partNumber=2")
    with pytest.raises(urllib.error.HTTPError) as refused:
        _put(forged, b"x" * 10)
    assert refused.value.code == 403


def test_a_data_set_of_many_files_trains_through_the_state_machine(server, housing_sample):
    header, *rows = housing_sample.decode().splitlines(keepends=True)
    cloud = server.cloud
    for i in range(3):  # three files, a header each
        body = header + "".join(rows[i::3])
        cloud.s3.put_object(Bucket=cloud.stack.bucket, Key=f"landing/houses/part-{i}.csv", Body=body.encode())
    status, queued = _call(server, "POST", "/datasets/houses", {"s3_prefix": "landing/houses/"})
    assert status == 202 and queued["parts"] == 3
    cloud.settle()
    _, meta = _call(server, "GET", "/datasets/houses")
    assert meta["status"] == "ready" and meta["rows"] == len(rows) and len(meta["parts"]) == 3

    request = {
        "dataset": "houses",
        "target": "price_k",
        "model_name": "houses-parts",
        "n_shards": 2,
        "hyperparameters": {"optimizer": "sgd", "learning_rate": 0.5, "max_epochs": 5, "solver": "sgd"},
    }
    execution = cloud.run("TrainingStateMachine", request, name="run-parts")
    assert execution["status"] == "SUCCEEDED", execution
    output = json.loads(execution["output"])
    artifact = json.loads(cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=output["artifact_key"])["Body"].read())
    lineage = artifact["lineage"]
    assert (lineage["dataset"], lineage["version"], lineage["rows"]) == ("houses", meta["version"], len(rows))
    assert lineage["key"] == f"raw/houses/{meta['version']}/parts/"
    assert lineage["train_rows"] + lineage["test_rows"] == len(rows)
