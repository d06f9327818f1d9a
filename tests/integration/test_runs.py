"""Runs API: POST /training-runs starts the real workflow on moto; GET /training-runs/{id} follows it."""

from __future__ import annotations

import json
import time

import pytest

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


def test_list_runs_and_curve(cloud):
    cloud.invoke("IngestFunction", load_event("ingest_api"))
    _, started = _body(cloud.invoke("RunsFunction", load_event("runs"))[0])
    execution = cloud.wait(
        cloud.state_machine_arns["TrainingStateMachine"].replace(":stateMachine:", ":execution:")
        + f":{started['run_id']}"
    )
    assert execution["status"] == "SUCCEEDED"
    status, listed = _body(cloud.request("GET", "/training-runs"))
    assert status == 200 and [r["run_id"] for r in listed["runs"]] == [started["run_id"]]
    assert listed["runs"][0]["status"] == "SUCCEEDED"
    _, run = _body(cloud.request("GET", f"/training-runs/{started['run_id']}", query={"curve": "true"}))
    assert [r["round"] for r in run["curve"]] == [0, 1, 2]
    assert run["request"]["hyperparameters"]["max_epochs"] == 3
    assert run["curve"][0]["loss"] > run["curve"][2]["loss"]
    _, run = _body(cloud.request("GET", f"/training-runs/{started['run_id']}"))
    assert "curve" not in run


def test_cost_of_a_run_from_its_history_and_a_what_if(cloud):
    cloud.invoke("IngestFunction", load_event("ingest_api"))
    _, started = _body(cloud.invoke("RunsFunction", load_event("runs"))[0])
    run_id = started["run_id"]
    cloud.wait(cloud.state_machine_arns["TrainingStateMachine"].replace(":stateMachine:", ":execution:") + f":{run_id}")
    status, doc = _body(cloud.request("GET", f"/training-runs/{run_id}/cost", query={"region": "us-east-1"}))
    assert status == 200, doc
    usage = doc["actual"]["usage"]
    # 3 rounds over 2 shards: 6 worker invocations, init + 3 aggregations, one preprocess, one evaluate
    assert {k: v["invocations"] for k, v in usage["functions"].items()} == {
        "Preprocess": 1,
        "Aggregator": 4,
        "GradientWorker": 6,
        "Evaluate": 1,
    }
    assert usage["functions"]["GradientWorker"]["memory_mb"] == 1769  # from the template, via Lambda's API
    assert (usage["rounds"], usage["shards"], usage["train_rows"]) == (3, 2, 32)
    history = cloud.sfn.get_execution_history(
        executionArn=cloud.state_machine_arns["TrainingStateMachine"].replace(":stateMachine:", ":execution:")
        + f":{run_id}",
        maxResults=1000,
    )["events"]
    assert usage["state_transitions"] == sum(e["type"].endswith("StateEntered") for e in history)
    breakdown = doc["actual"]["breakdown"]
    assert doc["actual"]["total"] == sum(breakdown.values()) > 0
    assert breakdown["Step Functions state transitions"] == pytest.approx(usage["state_transitions"] * 0.025 / 1000)
    worker = usage["functions"]["GradientWorker"]
    assert breakdown["Lambda GradientWorker"] == pytest.approx(
        worker["billed_ms"] / 1000 * 1769 / 1024 * 0.0000166667 + 6 * 0.2 / 1e6
    )

    _, bigger = _body(
        cloud.request("GET", f"/training-runs/{run_id}/cost", query={"rows": "3200", "shards": "4", "rounds": "30"})
    )
    scaled = bigger["what_if"]["usage"]
    assert scaled["functions"]["GradientWorker"]["invocations"] == 120
    assert scaled["state_transitions"] == usage["state_transitions"] - 3 * (3 + 2) + 30 * (3 + 4)
    assert bigger["what_if"]["total"] > doc["actual"]["total"]
    status, _ = _body(cloud.request("GET", "/training-runs/run-000000000000/cost"))
    assert status == 404
