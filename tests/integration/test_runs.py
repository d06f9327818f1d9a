"""Runs API: POST /training-runs starts the real workflow on moto; GET /training-runs/{id} follows it."""

from __future__ import annotations

import json
import time

from tests.conftest import keys, load_event


def _body(resp):
    return resp["statusCode"], json.loads(resp["body"])


def test_start_and_follow_a_run_to_a_registered_model(cloud):
    cloud.invoke("IngestFunction", load_event("ingest_api"))
    status, started = _body(cloud.invoke("RunsFunction", load_event("runs"))[0])
    assert status == 202 and started["status"] == "RUNNING"
    assert started["version"] == json.loads(cloud.request("GET", "/datasets/housing-sample")["body"])["version"]
    run_id = started["run_id"]
    deadline = time.monotonic() + 120
    while True:
        status, run = _body(cloud.request("GET", f"/training-runs/{run_id}"))
        assert status == 200
        if run["status"] != "RUNNING" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert run["status"] == "SUCCEEDED", run
    assert run["rounds_completed"] == 3 and run["last_round"]["round"] == 2
    assert run["model"]["model_name"] == "sample" and run["model"]["version"] == 1


def test_invalid_requests_are_4xx_and_start_nothing(cloud):
    status, body = _body(cloud.request("POST", "/training-runs", {"dataset": "nope", "target": "y", "model_name": "m"}))
    assert (status, body) == (404, {"message": "data set 'nope' does not exist"})
    status, body = _body(
        cloud.request("POST", "/training-runs", {"dataset": "x", "target": "y", "model_name": "m", "n_shards": 1001})
    )
    assert status == 422 and "n_shards" in json.dumps(body)
    status, body = _body(
        cloud.request("POST", "/training-runs", {"dataset": "x", "target": "y", "model_name": "m", "colour": 1})
    )
    assert status == 422 and "colour" in json.dumps(body)
    assert (
        cloud.sfn.list_executions(stateMachineArn=cloud.state_machine_arns["TrainingStateMachine"])["executions"] == []
    )
    assert keys(cloud, "runs/") == []
    status, body = _body(cloud.request("GET", "/training-runs/run-000000000000"))
    assert (status, body) == (404, {"message": "training run 'run-000000000000' does not exist"})
    status, _ = _body(cloud.request("GET", "/training-runs/..%2Fetc"))
    assert status == 404
