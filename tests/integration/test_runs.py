"""Runs API: POST /training-runs starts the real workflow on moto; GET /training-runs/{id} follows it."""

from __future__ import annotations

import json
import time

import pytest

from tests.helpers import keys, load_event


def _body(resp):
    return resp["statusCode"], json.loads(resp["body"])


def test_a_started_run_can_be_followed_to_its_registered_model(cloud):
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


def _start_invalid_runs(cloud) -> list[tuple[int, dict]]:
    """An unknown data set, too many shards, an unknown field."""
    return [
        _body(cloud.request("POST", "/training-runs", request))
        for request in (
            {"dataset": "nope", "target": "y", "model_name": "m"},
            {"dataset": "x", "target": "y", "model_name": "m", "n_shards": 1001},
            {"dataset": "x", "target": "y", "model_name": "m", "colour": 1},
        )
    ]


def test_invalid_requests_are_4xx(cloud):
    (status, body), (shards_status, shards_body), (field_status, field_body) = _start_invalid_runs(cloud)
    assert (status, body) == (404, {"message": "data set 'nope' does not exist"})
    assert shards_status == 422 and "n_shards" in json.dumps(shards_body)
    assert field_status == 422 and "colour" in json.dumps(field_body)


def test_invalid_requests_start_nothing(cloud):
    _start_invalid_runs(cloud)
    assert (
        cloud.sfn.list_executions(stateMachineArn=cloud.state_machine_arns["TrainingStateMachine"])["executions"] == []
    )
    assert keys(cloud, "runs/") == []


def test_an_unknown_run_is_404(cloud):
    status, body = _body(cloud.request("GET", "/training-runs/run-000000000000"))
    assert (status, body) == (404, {"message": "training run 'run-000000000000' does not exist"})
    status, _ = _body(cloud.request("GET", "/training-runs/..%2Fetc"))
    assert status == 404


def _finished_run(cloud) -> dict:
    """The committed events' run (3 rounds over 2 shards), started through Runs and waited for."""
    cloud.invoke("IngestFunction", load_event("ingest_api"))
    _, started = _body(cloud.invoke("RunsFunction", load_event("runs"))[0])
    execution = cloud.wait(
        cloud.state_machine_arns["TrainingStateMachine"].replace(":stateMachine:", ":execution:")
        + f":{started['run_id']}"
    )
    assert execution["status"] == "SUCCEEDED"
    return started


def test_list_runs(cloud):
    started = _finished_run(cloud)
    status, listed = _body(cloud.request("GET", "/training-runs"))
    assert status == 200 and [r["run_id"] for r in listed["runs"]] == [started["run_id"]]
    assert listed["runs"][0]["status"] == "SUCCEEDED"


def test_a_run_is_described_with_its_curve_only_when_asked(cloud):
    started = _finished_run(cloud)
    _, run = _body(cloud.request("GET", f"/training-runs/{started['run_id']}", query={"curve": "true"}))
    assert [r["round"] for r in run["curve"]] == [0, 1, 2]
    assert run["request"]["hyperparameters"]["max_epochs"] == 3
    assert run["curve"][0]["loss"] > run["curve"][2]["loss"]
    _, run = _body(cloud.request("GET", f"/training-runs/{started['run_id']}"))
    assert "curve" not in run


def test_cost_of_a_run_from_its_history(cloud):
    run_id = _finished_run(cloud)["run_id"]
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


def test_cost_what_if_scales_the_run_to_another_size(cloud):
    run_id = _finished_run(cloud)["run_id"]
    _, doc = _body(cloud.request("GET", f"/training-runs/{run_id}/cost", query={"region": "us-east-1"}))
    usage = doc["actual"]["usage"]
    _, bigger = _body(
        cloud.request("GET", f"/training-runs/{run_id}/cost", query={"rows": "3200", "shards": "4", "rounds": "30"})
    )
    scaled = bigger["what_if"]["usage"]
    assert scaled["functions"]["GradientWorker"]["invocations"] == 120
    assert scaled["state_transitions"] == usage["state_transitions"] - 3 * (3 + 2) + 30 * (3 + 4)
    assert bigger["what_if"]["total"] > doc["actual"]["total"]


def test_cost_of_an_unknown_run_is_404(cloud):
    status, _ = _body(cloud.request("GET", "/training-runs/run-000000000000/cost"))
    assert status == 404


@pytest.mark.parametrize("value", ["Infinity", "-Infinity", "NaN"])
def test_a_non_finite_hyperparameter_is_a_422_and_starts_nothing(cloud, value):
    body = '{"dataset": "x", "target": "y", "model_name": "m", "hyperparameters": {"l2": VALUE}}'.replace(
        "VALUE", value
    )
    status, doc = _body(cloud.request("POST", "/training-runs", body, headers={"Content-Type": "application/json"}))
    assert status == 422, doc
    assert [(d["loc"][-1], d["type"]) for d in doc["detail"]] == [("l2", "finite_number")]
    arn = cloud.state_machine_arns["TrainingStateMachine"]
    assert cloud.sfn.list_executions(stateMachineArn=arn)["executions"] == []
