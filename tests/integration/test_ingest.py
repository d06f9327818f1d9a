"""Ingest handler through API Gateway events and EventBridge S3 notifications, on moto."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import threading

from mlcore.infra import layout
from tests.helpers import keys, load_event


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


def test_describe_returns_the_latest_version(cloud):
    _, created = _api(cloud, load_event("ingest_api")["body"])
    resp = cloud.request("GET", "/datasets/housing-sample")
    assert resp["statusCode"] == 200
    assert json.loads(resp["body"])["version"] == created["version"]


def test_describing_an_unknown_data_set_is_404(cloud):
    resp = cloud.request("GET", "/datasets/nope")
    assert resp["statusCode"] == 404
    assert json.loads(resp["body"]) == {"message": "data set 'nope' does not exist"}


def _notify_upload(cloud, csv: bytes):
    """Put the committed upload event's object and deliver the event to Ingest."""
    event = load_event("ingest_s3_upload")
    cloud.s3.put_object(Bucket=cloud.stack.bucket, Key=event["detail"]["object"]["key"], Body=csv)
    return cloud.invoke("IngestFunction", event)


def test_s3_upload_notification_registers_the_same_version_as_the_api(cloud):
    csv = load_event("ingest_api")["body"].encode()
    _, via_api = _api(cloud, csv.decode())
    result, error = _notify_upload(cloud, csv)
    assert error is None, result
    assert result["version"] == via_api["version"] and result["created"] is False


def test_s3_upload_notification_removes_the_upload(cloud):
    csv = load_event("ingest_api")["body"].encode()
    _api(cloud, csv.decode())
    result, error = _notify_upload(cloud, csv)
    assert error is None, result
    assert keys(cloud, "uploads/") == []


def test_invalid_upload_notification_records_the_failure(cloud):
    """Asynchronous: no exception (EventBridge would retry a deterministic failure), a failed status instead."""
    result, error = _notify_upload(cloud, b"a,b\n")
    assert error is None
    assert (result["status"], result["reason"]) == ("failed", "the file has a header but no data rows")
    resp = cloud.request("GET", "/datasets/housing-sample")
    assert resp["statusCode"] == 200
    body = json.loads(resp["body"])
    assert (body["status"], body["reason"]) == ("failed", "the file has a header but no data rows")
    assert "version" not in body


def test_invalid_upload_notification_writes_nothing(cloud):
    _, error = _notify_upload(cloud, b"a,b\n")
    assert error is None
    assert keys(cloud, "raw/") == [] and keys(cloud, "uploads/") == []


def test_presigned_upload_then_notification_registers_the_version(cloud):
    import requests

    resp = cloud.request("POST", "/datasets", {"name": "housing-sample"})
    assert resp["statusCode"] == 201, resp
    upload = json.loads(resp["body"])
    assert upload["status"] == "pending" and upload["method"] == "PUT"
    assert upload["key"] == f"uploads/housing-sample/{upload['upload_id']}.csv"
    assert "X-Amz-Signature=" in upload["upload_url"] or "Signature=" in upload["upload_url"]
    status = json.loads(cloud.request("GET", "/datasets/housing-sample")["body"])
    assert status["status"] == "pending" and status["upload_key"] == upload["key"]

    csv = load_event("ingest_api")["body"].encode()
    assert requests.put(upload["upload_url"], data=csv, timeout=10).status_code == 200  # moto serves the URL
    event = load_event("ingest_s3_upload")
    event["detail"]["object"]["key"] = upload["key"]
    result, error = cloud.invoke("IngestFunction", event)
    assert error is None, result
    assert result["created"] is True and result["rows"] == 40
    status = json.loads(cloud.request("GET", "/datasets/housing-sample")["body"])
    assert (status["status"], status["version"]) == ("ready", result["version"])
    assert keys(cloud, "uploads/") == []
    resp = cloud.request("POST", "/datasets", {"name": "..bad"})
    detail = json.loads(resp["body"])["detail"]  # the name's pattern is part of the documented request schema
    assert resp["statusCode"] == 422 and detail[0]["loc"] == ["body", "name"] and "pattern" in detail[0]["msg"]
    assert cloud.request("POST", "/datasets", {"name": "x", "format": "xml"})["statusCode"] == 422


def test_registering_an_object_already_in_the_bucket(cloud):
    csv = load_event("ingest_api")["body"].encode()
    cloud.s3.put_object(Bucket=cloud.stack.bucket, Key="landing/2026/housing.csv", Body=csv)
    resp = cloud.request("POST", "/datasets/housing-sample", {"s3_key": "landing/2026/housing.csv"})
    assert resp["statusCode"] == 201, resp
    body = json.loads(resp["body"])
    assert body["source"] == f"s3://{cloud.stack.bucket}/landing/2026/housing.csv" and body["rows"] == 40
    assert "landing/2026/housing.csv" in keys(cloud)  # left where it is
    _, via_api = _api(cloud, csv.decode())
    assert via_api["version"] == body["version"] and via_api["created"] is False  # same bytes, same version

    for payload, status, message in [
        ({"s3_key": "landing/none.csv"}, 404, "object 'landing/none.csv' does not exist in the data bucket"),
        ({"s3_key": body["key"]}, 400, f"s3_key {body['key']!r} is not allowed: use a key outside raw/,"),
        ({"key": "x"}, 400, 'a JSON body must be {"s3_key": "<key in the data bucket>"}'),
    ]:
        resp = cloud.request("POST", "/datasets/other", payload)
        assert resp["statusCode"] == status and json.loads(resp["body"])["message"].startswith(message), resp


def _ingest_json_lines(cloud) -> dict:
    lines = b'{"area": 50.5, "city": "a", "price": 100}\n{"area": null, "city": "b", "price": 150}\n\n'
    lines += b'{"area": 70.5, "city": "a", "price": 200, "note": "x"}\n'
    resp = cloud.request("POST", "/datasets/lines", lines, headers={"Content-Type": "application/x-ndjson"})
    assert resp["statusCode"] == 201, resp
    return json.loads(resp["body"])


def test_json_lines_are_stored_as_a_jsonl_data_set(cloud):
    body = _ingest_json_lines(cloud)
    assert (body["format"], body["rows"], body["n_columns"], body["status"]) == ("jsonl", 3, 4, "ready")
    assert body["key"].endswith("/data.jsonl")


def test_json_lines_get_a_column_profile(cloud):
    body = _ingest_json_lines(cloud)
    area, city, price, note = body["columns"]
    assert area == {"name": "area", "kind": "numeric", "missing": 1, "min": 50.5, "max": 70.5, "mean": 60.5}
    assert city == {"name": "city", "kind": "categorical", "missing": 0, "distinct": 2, "top": [["a", 2], ["b", 1]]}
    assert (price["min"], price["max"]) == (100.0, 200.0)
    assert (note["missing"], note["top"]) == (2, [["x", 1]])
    described = json.loads(cloud.request("GET", "/datasets/lines")["body"])
    assert described["columns"] == body["columns"] and described["status"] == "ready"


def test_a_json_lines_data_set_is_preprocessed(cloud):
    _ingest_json_lines(cloud)
    event = load_event("preprocess")
    event["request"] = {"dataset": "lines", "target": "price", "model_name": "m", "n_shards": 1, "test_fraction": 0.34}
    event["request"]["preprocessing"] = {"columns": {"note": {"drop": True}}}  # all missing in training rows
    payload, error = cloud.invoke("PreprocessFunction", event)
    assert error is None, payload
    assert payload["data"]["train_rows"] == 2


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


def test_invalid_name_is_rejected(cloud):
    status, body = _api(cloud, "a\n1\n", name="..bad")
    assert status == 400
    assert body["message"].startswith("invalid data set name '..bad'")
    assert keys(cloud) == []


def test_oversized_body_is_rejected(cloud):
    status, body = _api(cloud, "a\n" + "1\n" * (3 * 1024 * 1024))
    assert status == 400
    assert "over the 5242880 byte limit" in body["message"]
    assert keys(cloud) == []


# -- what a file is: delimiters, privacy in profiles, bounded-memory registration ---------------------------


def _meta_object(cloud, body: dict) -> str:
    """The metadata document exactly as stored under raw/."""
    key = layout.dataset_meta_key(body["dataset"], body["version"])
    return cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=key)["Body"].read().decode()


def test_semicolon_and_tab_files_are_split_on_their_delimiter(cloud, housing_sample):
    _, comma = _api(cloud, housing_sample, name="comma")
    assert comma["delimiter"] == ","
    for delimiter, name in ((";", "semicolon"), ("\t", "tab"), ("|", "pipe")):
        data = housing_sample.replace(b",", delimiter.encode())
        status, body = _api(cloud, data, name=name)
        assert status == 201, body
        assert body["delimiter"] == delimiter and json.loads(_meta_object(cloud, body))["delimiter"] == delimiter
        assert (body["rows"], body["n_columns"], body["columns"]) == (400, 7, comma["columns"])


def test_a_comma_file_with_semicolons_in_its_text_stays_comma_separated(cloud):
    data = b'name,note,y\na,"x;y;z",1\nb,p;q,2\nc,plain,3\n'
    status, body = _api(cloud, data, name="notes")
    assert status == 201 and body["delimiter"] == ","
    assert [c["name"] for c in body["columns"]] == ["name", "note", "y"]
    assert body["columns"][1]["top"] == [["x;y;z", 1], ["p;q", 1], ["plain", 1]]


def _preprocess(cloud, dataset: str, run_id: str) -> tuple[dict, dict]:
    event = load_event("preprocess")
    event["run_id"] = run_id
    event["request"]["dataset"] = dataset
    payload, error = cloud.invoke("PreprocessFunction", event)
    assert error is None, payload
    manifest = cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=payload["data"]["manifest_key"])["Body"].read()
    return payload["data"], json.loads(manifest)


def test_a_semicolon_data_set_is_preprocessed_as_its_comma_twin(cloud, housing_sample):
    from mlcore.infra.storage import S3Store
    from mlcore.steps.preparation import dispatch
    from mlcore.steps.schemas import TrainingRequest

    _api(cloud, housing_sample, name="comma")
    _api(cloud, housing_sample.replace(b",", b";"), name="semicolon")
    comma, comma_manifest = _preprocess(cloud, "comma", "run-comma")
    semicolon, semicolon_manifest = _preprocess(cloud, "semicolon", "run-semicolon")
    assert semicolon["train_rows"] == comma["train_rows"] > 200
    assert semicolon_manifest["preprocessor"] == comma_manifest["preprocessor"]
    assert len(semicolon_manifest["preprocessor"]["columns"]) == 6
    for a, b in zip(comma["shards"], semicolon["shards"], strict=True):
        read = [cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=s["key"])["Body"].read() for s in (a, b)]
        assert read[0] == read[1]
    request = TrainingRequest.model_validate({**load_event("preprocess")["request"], "dataset": "semicolon"})
    streamed = dispatch.preprocess(S3Store(cloud.stack.bucket), request, "run-stream", stream_threshold=0)
    assert streamed.train_rows + streamed.test_rows == 400
    assert streamed.n_features == semicolon["n_features"]
    manifest = cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=streamed.manifest_key)["Body"].read()
    columns = [(c["name"], c["kind"]) for c in json.loads(manifest)["preprocessor"]["columns"]]
    assert columns == [(c["name"], c["kind"]) for c in semicolon_manifest["preprocessor"]["columns"]]


PEOPLE_ROWS = 40


def _people_csv() -> bytes:
    lines = ["customer_id,email,phone,city,comment,spend"]
    for i in range(PEOPLE_ROWS):
        comment = "long " + "x" * 100 if i % 2 else "short"
        lines.append(
            f"C-{9000 + i},person{i}@mail.example,+44 20 7946 {i:04d},{['north', 'south'][i % 2]},{comment},{i}"
        )
    return ("\n".join(lines) + "\n").encode()


def test_identifiers_and_personal_data_are_profiled_by_counts_only(cloud):
    status, body = _api(cloud, _people_csv(), name="people")
    assert status == 201, body
    columns = {c["name"]: c for c in body["columns"]}
    assert columns["customer_id"] == {
        "name": "customer_id",
        "kind": "categorical",
        "missing": 0,
        "distinct": PEOPLE_ROWS,
        "sensitive": "identifier",
    }
    assert columns["email"] == {**columns["customer_id"], "name": "email", "sensitive": "email"}
    assert columns["phone"] == {**columns["customer_id"], "name": "phone", "sensitive": "phone"}
    assert columns["city"]["top"] == [["north", 20], ["south", 20]] and "sensitive" not in columns["city"]
    assert "sensitive" not in columns["spend"]
    stored = _meta_object(cloud, body)
    for i in range(PEOPLE_ROWS):
        for raw in (f"C-{9000 + i}", f"person{i}@", f"7946 {i:04d}"):
            assert raw not in stored and raw not in json.dumps(body)


def test_profile_values_are_cut_to_64_characters(cloud):
    _, body = _api(cloud, _people_csv(), name="people")
    comment = {c["name"]: c for c in body["columns"]}["comment"]
    assert comment["distinct"] == 2
    assert comment["top"] == [["short", 20], ["long " + "x" * 58 + "\u2026", 20]]
    assert "x" * 59 not in _meta_object(cloud, body)


def test_few_distinct_values_over_few_rows_are_not_an_identifier(cloud):
    data = b"code,y\n" + b"".join(f"k{i},{i}\n".encode() for i in range(19))  # 19 rows: under the minimum
    _, body = _api(cloud, data, name="small")
    assert body["columns"][0]["top"][0] == ["k0", 1] and "sensitive" not in body["columns"][0]


def _wide_csv() -> bytes:
    """Several chunks' worth: a column that turns from numbers to text late, quoted multi-line text, missing
    values, booleans, a column over the distinct cap, and long values."""
    lines = ["n,late_text,note,flag,many,x"]
    for i in range(300):
        late = "abc" if i == 290 else str(i % 7)
        note = '"line one\nline two"' if i % 5 == 0 else ("" if i % 3 == 0 else f"n{i % 4}")
        flag = ["true", "False", "TRUE", ""][i % 4]
        lines.append(f"{i * 0.1},{late},{note},{flag},v{i % 40},{'y' * 70 + str(i % 3)}")
    return ("\n".join(lines) + "\n").encode()


def test_registering_an_object_in_many_chunks_gives_the_in_memory_metadata(cloud, monkeypatch):
    from mlcore.steps import ingestion, tabular

    monkeypatch.setattr(tabular, "DISTINCT_CAP", 30)  # 'many' has 40 distinct values
    data = _wide_csv()
    status, in_memory = _api(cloud, data, name="whole")
    assert status == 201, in_memory
    monkeypatch.setattr(ingestion, "READ_CHUNK_BYTES", 100)
    monkeypatch.setattr(tabular, "CHUNK_CHARS", 500)
    cloud.s3.put_object(Bucket=cloud.stack.bucket, Key="landing/wide.csv", Body=data, Metadata={"who": "me"})
    resp = cloud.request("POST", "/datasets/chunked", {"s3_key": "landing/wide.csv"})
    assert resp["statusCode"] == 201, resp
    chunked = json.loads(resp["body"])
    assert len(data) > 30 * ingestion.READ_CHUNK_BYTES

    def same(meta: dict) -> dict:
        return {k: v for k, v in meta.items() if k not in ("dataset", "key", "source", "created_at")}

    assert same(chunked) == same(in_memory)
    columns = {c["name"]: c for c in chunked["columns"]}
    assert columns["late_text"]["kind"] == "categorical" and columns["late_text"]["distinct"] == 8
    assert columns["flag"]["top"] == [["True", 150], ["False", 75]]
    assert columns["many"]["distinct"] == ">= 30"
    stored = cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=chunked["key"])
    assert stored["Body"].read() == data and stored["ContentType"] == "text/csv" and stored["Metadata"] == {}


def test_an_object_replaced_while_it_is_read_is_registered_as_the_version_first_seen(cloud, monkeypatch):
    from mlcore.steps import ingestion

    original = b"a,b\n1,2\n"
    cloud.s3.put_object(Bucket=cloud.stack.bucket, Key="landing/moving.csv", Body=original)
    chunks = ingestion.StoredObject.chunks

    def replaced(self):  # another writer (a thread of its own: not acting as Ingest) replaces the object
        writer = threading.Thread(
            target=cloud.s3.put_object, kwargs={"Bucket": cloud.stack.bucket, "Key": self.key, "Body": b"a,b\n3,4\n"}
        )
        writer.start()
        writer.join()
        yield from chunks(self)

    monkeypatch.setattr(ingestion.StoredObject, "chunks", replaced)
    resp = cloud.request("POST", "/datasets/moving", {"s3_key": "landing/moving.csv"})
    assert resp["statusCode"] == 201, resp
    body = json.loads(resp["body"])
    assert body["sha256"] == hashlib.sha256(original).hexdigest() and body["columns"][0]["min"] == 1.0
    assert cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=body["key"])["Body"].read() == original
