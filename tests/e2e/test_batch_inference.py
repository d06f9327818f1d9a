"""Batch inference end to end: POST /batch-jobs -> the real batch_inference.asl.json (Distributed Map with an
S3 ItemReader) in moto's interpreter with the real handlers -> predictions in input order, bad rows reported."""

from __future__ import annotations

import json

import pytest

from mlcore.infra.storage import S3Store
from mlcore.serving import online, registry

HEADER = "id,area_m2,bedrooms,age_years,distance_km,lot_m2,neighborhood\n"
GOOD = ["{i},{a},3,10,1.5,300,harbor", "{i},{a},2,,2.0,150,riverside", '{i},{a},4,5,3.0,200,"hills, north"']
BAD = {
    5: ("5,big,3,10,1.5,300,harbor", "area_m2 must be a number, got 'big'"),
    11: ("11,100,3,10", "row 11 has 4 fields, the header has 7"),
    17: ("17,inf,3,10,1.5,300,harbor", "area_m2 must be finite, got 'inf'"),
}


def _csv(n: int = 23) -> tuple[str, list[dict]]:
    lines, good = [], []
    for i in range(n):
        if i in BAD:
            lines.append(BAD[i][0])
            continue
        line = GOOD[i % 3].format(i=i, a=50 + 5 * i)
        lines.append(line)
        good.append(i)
    return HEADER + "\n".join(lines) + "\n", good


def _row_instance(line: str) -> list:
    import csv

    values = next(csv.reader([line]))[1:]
    return [float(v) if v and k < 5 else (v or None) for k, v in enumerate(values)]


def _call(cloud, method, path, body=None):
    response = cloud.request(method, path, body)
    return response["statusCode"], json.loads(response["body"])


def _lines(cloud, key) -> list:
    body = cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=key)["Body"].read().decode()
    return [json.loads(x) for x in body.splitlines()]


def _run_csv_job(cloud) -> tuple[str, list[int], dict]:
    """A 23-row CSV job in chunks of 7, waited for: the input, its good rows and the job's summary."""
    text, good = _csv()
    cloud.s3.put_object(Bucket=cloud.stack.bucket, Key="uploads/batch/in.csv", Body=text.encode())
    status, started = _call(
        cloud, "POST", "/batch-jobs", {"model": "housing-sample", "input_key": "uploads/batch/in.csv", "batch_rows": 7}
    )
    assert status == 202 and started["version"] == 1, started
    job_id = started["job_id"]
    arn = cloud.state_machine_arns["BatchInferenceStateMachine"].replace(":stateMachine:", ":execution:")
    execution = cloud.wait(f"{arn}:{job_id}")
    assert execution["status"] == "SUCCEEDED", execution
    status, job = _call(cloud, "GET", f"/batch-jobs/{job_id}")
    assert status == 200 and job["status"] == "SUCCEEDED"
    return text, good, job["summary"]


def test_batch_job_is_summarized_over_its_chunks(cloud, model):
    _, _, summary = _run_csv_job(cloud)
    assert cloud.invocations["BatchPredictFunction"] == 1 + 4 + 1  # plan, ceil(23 / 7) chunks, finalize
    assert (summary["rows"], summary["predicted"], summary["failures"], summary["chunks"]) == (23, 20, 3, 4)
    assert summary["duration_s"] >= 0


def test_batch_job_predicts_in_input_order(cloud, model):
    text, good, summary = _run_csv_job(cloud)
    predictions = _lines(cloud, summary["predictions_key"])
    assert [p["row"] for p in predictions] == good
    artifact = registry.load_version(S3Store(cloud.stack.bucket), "housing-sample", 1)
    rows = text.splitlines()[1:]
    expected = online.predict(artifact, [_row_instance(rows[i]) for i in good])["predictions"]
    assert [p["prediction"] for p in predictions] == pytest.approx(expected, rel=1e-12)


def test_batch_job_reports_bad_rows(cloud, model):
    _, _, summary = _run_csv_job(cloud)
    errors = _lines(cloud, summary["errors_key"])
    assert errors == [{"row": r, "error": reason} for r, (_, reason) in sorted(BAD.items())]


def test_batch_job_request_errors(cloud, model):
    cloud.s3.put_object(Bucket=cloud.stack.bucket, Key="uploads/batch/in.csv", Body=b"a\n1\n")
    cases = [
        ({"model": "nope", "input_key": "uploads/batch/in.csv"}, 404, "nope"),
        ({"model": "housing-sample", "input_key": "uploads/missing.csv"}, 404, "uploads/missing.csv"),
        ({"model": "housing-sample", "input_key": "uploads/batch/in.csv", "batch_rows": 0}, 422, "batch_rows"),
        ({"model": "housing-sample", "input_key": "uploads/batch/in.csv", "version": 7}, 404, "version 7"),
        ({"input_key": "uploads/batch/in.csv"}, 422, "model"),
    ]
    for body, status, words in cases:
        got_status, got = _call(cloud, "POST", "/batch-jobs", body)
        assert got_status == status and words in json.dumps(got), (body, got)
    assert _call(cloud, "GET", "/batch-jobs/batch-000000000000")[0] == 404
    assert _call(cloud, "GET", "/batch-jobs/nope")[0] == 404

    # a header without the model's features fails the job up front, with the reason
    status, started = _call(
        cloud, "POST", "/batch-jobs", {"model": "housing-sample", "input_key": "uploads/batch/in.csv"}
    )
    assert status == 202
    arn = cloud.state_machine_arns["BatchInferenceStateMachine"].replace(":stateMachine:", ":execution:")
    assert cloud.wait(f"{arn}:{started['job_id']}")["status"] == "FAILED"
    status, job = _call(cloud, "GET", f"/batch-jobs/{started['job_id']}")
    assert job["status"] == "FAILED" and "area_m2" in (job.get("cause") or ""), job


def test_json_lines_job(cloud, model):
    good = {
        "area_m2": 100.0,
        "bedrooms": 3,
        "age_years": 10,
        "distance_km": 1.5,
        "lot_m2": 300,
        "neighborhood": "harbor",
    }
    lines = [
        json.dumps(good),
        json.dumps(list(good.values())),
        "{broken",
        "",
        json.dumps({**good, "area_m2": "big"}),
        json.dumps({k: v for k, v in good.items() if k != "lot_m2"}),
        json.dumps({**good, "lot_m2": None}),
    ]
    cloud.s3.put_object(Bucket=cloud.stack.bucket, Key="uploads/batch/in.jsonl", Body="\n".join(lines).encode())
    body = {"model": "housing-sample", "input_key": "uploads/batch/in.jsonl", "batch_rows": 2}
    status, started = _call(cloud, "POST", "/batch-jobs", body)
    assert status == 202, started
    arn = cloud.state_machine_arns["BatchInferenceStateMachine"].replace(":stateMachine:", ":execution:")
    assert cloud.wait(f"{arn}:{started['job_id']}")["status"] == "SUCCEEDED"
    summary = _call(cloud, "GET", f"/batch-jobs/{started['job_id']}")[1]["summary"]
    assert (summary["rows"], summary["predicted"], summary["failures"], summary["chunks"]) == (6, 3, 3, 3)

    def read(key):
        return [
            json.loads(x) for x in cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=key)["Body"].read().splitlines()
        ]

    predictions = read(summary["predictions_key"])
    assert [p["row"] for p in predictions] == [0, 1, 5]
    assert predictions[0]["prediction"] == pytest.approx(predictions[1]["prediction"])
    assert read(summary["errors_key"]) == [
        {"row": 2, "error": "row 2 is not valid JSON"},
        {"row": 3, "error": "area_m2 must be a number or null, got 'big'"},
        {"row": 4, "error": "row 4 is missing feature(s): lot_m2"},
    ]
