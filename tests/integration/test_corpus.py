"""The bad-input corpus (tests/corpus): every file through each way in, every case through the Preprocess step.

Ingest: through the API body (a 400 naming the problem) and through an S3 upload (the data set's status
is ``failed`` with that reason); either way nothing is written under raw/. Preprocess: the step fails with
the message and nothing is left under processed/.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from mlcore.infra import layout
from mlcore.steps import ingestion
from mlcore.steps.schemas import TrainingRequest
from tests.helpers import keys, load_event

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
INGEST_CASES = json.loads((CORPUS / "ingest" / "cases.json").read_text())
PREPROCESS_CASES = json.loads((CORPUS / "preprocess" / "cases.json").read_text())


def _content_type(name: str) -> str:
    return "application/x-ndjson" if name.endswith(".jsonl") else "text/csv"


def test_every_corpus_file_has_a_case():
    files = {p.name for p in (CORPUS / "ingest").iterdir() if p.name != "cases.json"}
    assert files == set(INGEST_CASES)


def test_bad_files_through_the_api_are_400s_naming_the_problem(cloud):
    for name, message in INGEST_CASES.items():
        data = (CORPUS / "ingest" / name).read_bytes()
        resp = cloud.request("POST", "/datasets/bad", data, headers={"Content-Type": _content_type(name)})
        assert (resp["statusCode"], json.loads(resp["body"])) == (400, {"message": message}), name
    assert keys(cloud) == []


def _upload_bad_files(cloud):
    """Each ingest corpus file uploaded to uploads/bad/ and notified: (file, expected reason, Ingest's
    result, the data set's status right after)."""
    event = load_event("ingest_s3_upload")
    for name, message in INGEST_CASES.items():
        key = f"uploads/bad/{name}"
        cloud.s3.put_object(Bucket=cloud.stack.bucket, Key=key, Body=(CORPUS / "ingest" / name).read_bytes())
        upload = copy.deepcopy(event)
        upload["detail"]["object"]["key"] = key
        result, error = cloud.invoke("IngestFunction", upload)
        assert error is None, result
        yield name, message, result, json.loads(cloud.request("GET", "/datasets/bad")["body"])


def test_bad_files_through_s3_uploads_leave_a_failed_status(cloud):
    for name, message, result, status in _upload_bad_files(cloud):
        assert (result["status"], result["reason"]) == ("failed", message), name
        assert (status["status"], status["reason"]) == ("failed", message)


def test_bad_files_through_s3_uploads_leave_nothing_in_raw(cloud):
    for _ in _upload_bad_files(cloud):
        pass
    assert keys(cloud, "raw/") == [] and keys(cloud, "uploads/") == []


def test_a_file_over_the_limit_is_refused_before_it_is_read(cloud, monkeypatch):
    monkeypatch.setattr(ingestion, "MAX_FILE_BYTES", 100)
    body = b"x,y\n" + b"1,2\n" * 30
    cloud.s3.put_object(Bucket=cloud.stack.bucket, Key="uploads/big/big.csv", Body=body)
    event = load_event("ingest_s3_upload")
    event["detail"]["object"]["key"] = "uploads/big/big.csv"
    result, _ = cloud.invoke("IngestFunction", event)
    assert result["reason"] == "the file is 124 bytes, over the 100 byte limit"
    cloud.s3.put_object(Bucket=cloud.stack.bucket, Key="landing/big.csv", Body=body)
    resp = cloud.request("POST", "/datasets/big", {"s3_key": "landing/big.csv"})
    assert (resp["statusCode"], json.loads(resp["body"])["message"]) == (400, result["reason"])
    assert keys(cloud, "raw/") == []


def _ingest(cloud, name: str, file: str, bypass: bool) -> None:
    data = (CORPUS / "preprocess" / file).read_bytes()
    if not bypass:
        resp = cloud.request("POST", f"/datasets/{name}", data, headers={"Content-Type": "text/csv"})
        assert resp["statusCode"] == 201, resp
        return
    # a raw version that ingest would have refused: the Preprocess step checks again
    version = hashlib.sha256(data).hexdigest()[:16]
    meta = {
        "dataset": name,
        "version": version,
        "key": layout.dataset_data_key(name, version, "csv"),
        "rows": 0,
        "sha256": "",
        "format": "csv",
        "bytes": len(data),
    }
    cloud.s3.put_object(Bucket=cloud.stack.bucket, Key=meta["key"], Body=data)
    cloud.s3.put_object(Bucket=cloud.stack.bucket, Key=layout.dataset_meta_key(name, version), Body=json.dumps(meta))
    body = json.dumps({"dataset": name, "version": version})
    cloud.s3.put_object(Bucket=cloud.stack.bucket, Key=layout.dataset_latest_key(name), Body=body)


def _preprocess_case(cloud, case) -> tuple[dict, str | None]:
    _ingest(cloud, "corpus", case["file"], case.get("bypass_ingest", False))
    event = load_event("preprocess")
    event["request"] = {"dataset": "corpus", "model_name": "corpus", "n_shards": 2, **case["request"]}
    return cloud.invoke("PreprocessFunction", event)


def _case_id(case) -> str:
    return f"{case['file']}:{case['error'][:40]}"


@pytest.mark.parametrize("case", PREPROCESS_CASES, ids=_case_id)
def test_preprocess_step_fails_with_the_reason(cloud, case):
    payload, error = _preprocess_case(cloud, case)
    assert error == "Unhandled", payload
    assert payload["errorType"] == case.get("error_type", "InvalidInput")
    if payload["errorType"] == "InvalidInput":
        assert payload["errorMessage"] == case["error"]
    else:
        assert case["error"] in payload["errorMessage"]


@pytest.mark.parametrize("case", PREPROCESS_CASES, ids=_case_id)
def test_a_failed_preprocess_step_writes_nothing(cloud, case):
    payload, error = _preprocess_case(cloud, case)
    assert error == "Unhandled", payload
    assert keys(cloud, "processed/") == []


def test_a_failed_preprocess_fails_the_workflow_with_the_reason(cloud):
    _ingest(cloud, "corpus", "all_missing_target.csv", False)
    # POST /training-runs refuses this run up front (runs.check_feasible); started directly, Preprocess fails it
    run_id = "run-0000000000aa"
    request = TrainingRequest(dataset="corpus", target="price", model_name="corpus")
    arn = cloud.start("TrainingStateMachine", request.model_dump(mode="json"), name=run_id)
    assert cloud.wait(arn)["status"] == "FAILED"
    run = json.loads(cloud.request("GET", f"/training-runs/{run_id}")["body"])
    assert run["status"] == "FAILED" and "target column 'price' has no values" in json.dumps(run)
    assert keys(cloud, "processed/") == []


def test_a_constant_column_is_not_divided_by_zero(cloud):
    _ingest(cloud, "corpus", "constant_column.csv", False)
    event = load_event("preprocess")
    # area is 0..39, a row number by its profile: named in the spec, it is kept as the feature before flat
    spec = {"columns": {"area": {}}}
    event["request"] = {
        "dataset": "corpus",
        "target": "price",
        "model_name": "corpus",
        "n_shards": 2,
        "preprocessing": spec,
    }
    payload, error = cloud.invoke("PreprocessFunction", event)
    assert error is None, payload
    manifest = json.loads(
        cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=payload["data"]["manifest_key"])["Body"].read()
    )
    flat = manifest["preprocessor"]["columns"][1]
    assert (flat["name"], flat["scale"]) == ("flat", 1.0)
    for shard in payload["data"]["shards"]:
        body = cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=shard["key"])["Body"].read()
        array = np.load(__import__("io").BytesIO(body), allow_pickle=False)
        assert np.isfinite(array).all() and (array[:, 1] == 0).all()
