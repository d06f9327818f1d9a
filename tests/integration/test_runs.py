"""Runs API: POST /training-runs starts the real workflow on moto; GET /training-runs/{id} follows it."""

from __future__ import annotations

import json
import threading
import time

import pytest

from mlcore.infra import layout
from mlcore.math import cost
from mllocal.cloud import LocalCloud
from mllocal.template import local_stack
from tests.helpers import ROOT, keys, load_event

CORPUS = ROOT / "tests" / "corpus" / "preprocess"


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
    # comparable: key hyperparameters, the test metric and why it stopped, stored once for the next lists
    run = listed["runs"][0]
    request = load_event("runs")["body"]
    request = json.loads(request) if isinstance(request, str) else request
    described = _body(cloud.request("GET", f"/training-runs/{started['run_id']}"))[1]
    assert run["metric"] == "r2" and run["test_metric"] == described["model"]["metrics"]["r2"]
    assert run["stop_reason"] == described["stop_reason"] and run["rounds_completed"] == 3
    assert run["hyperparameters"]["optimizer"] == described["request"]["hyperparameters"]["optimizer"]
    assert run["mode"] == described["request"]["mode"] and (run["model_name"], run["model_version"]) == ("sample", 1)
    assert keys(cloud, f"runs/{started['run_id']}/summary.json") == [f"runs/{started['run_id']}/summary.json"]
    assert _body(cloud.request("GET", "/training-runs"))[1]["runs"] == listed["runs"]


def test_the_run_list_pages_and_refuses_an_unknown_parameter(cloud):
    _finished_run(cloud)
    status, listed = _body(cloud.request("GET", "/training-runs", query={"limit": "1"}))
    assert status == 200 and len(listed["runs"]) == 1
    assert _body(cloud.request("GET", "/training-runs", query={"limt": "5"})) == (
        400,
        {"message": "unknown query parameter(s): 'limt'; this route takes limit, next"},
    )
    assert _body(cloud.request("GET", "/training-runs", query={"": ""})) == (
        400,
        {"message": "unknown query parameter(s): ''; this route takes limit, next"},
    )
    assert _body(cloud.request("GET", "/training-runs", query={"next": "bm9wZQ"})) == (
        400,
        {"message": "next is not a page token this API returned: pass the `next` of the previous page"},
    )


def test_a_finished_run_cannot_be_stopped_and_an_unknown_one_is_404(cloud):
    run_id = _finished_run(cloud)["run_id"]
    assert _body(cloud.request("POST", f"/training-runs/{run_id}/stop")) == (
        409,
        {"message": f"training run '{run_id}' is SUCCEEDED: only a RUNNING run can be stopped"},
    )
    assert _body(cloud.request("POST", "/training-runs/run-000000000000/stop")) == (
        404,
        {"message": "training run 'run-000000000000' does not exist"},
    )


def test_a_finished_runs_usage_is_stored_by_the_first_cost_call_and_read_after(cloud):
    run_id = _finished_run(cloud)["run_id"]
    key = f"runs/{run_id}/usage.json"
    first = _body(cloud.request("GET", f"/training-runs/{run_id}/cost"))
    stored = json.loads(cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=key)["Body"].read())
    assert first[0] == 200 and stored == first[1]["actual"]["usage"]
    tampered = {**stored, "state_transitions": 1}  # what the endpoint reads now is the stored document
    cloud.s3.put_object(Bucket=cloud.stack.bucket, Key=key, Body=json.dumps(tampered))
    status, again = _body(cloud.request("GET", f"/training-runs/{run_id}/cost"))
    assert status == 200 and again["actual"]["usage"]["state_transitions"] == 1


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
    # the rounds run in Express children, 25 a call: the parent enters RunRounds and RoundsDone? per call
    assert (usage["state_transitions"], usage["express_executions"]) == (6 + 1 + 2, 1)
    assert (scaled["state_transitions"], scaled["express_executions"]) == (6 + 1 + 2 * 2, 2)
    assert scaled["express_gb_seconds"] == pytest.approx(usage["express_gb_seconds"] / 3 * 30)
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


# -- requests that cannot succeed are refused up front (400), from the data set's stored profile ----------------
def _ingest_csv(cloud, name: str, text: str) -> None:
    resp = cloud.request("POST", f"/datasets/{name}", text.encode(), headers={"Content-Type": "text/csv"})
    assert resp["statusCode"] == 201, resp


def _csv(header: str, rows: list[str]) -> str:
    return "\n".join([header, *rows]) + "\n"


def test_requests_that_cannot_succeed_are_a_400_naming_the_reason_and_start_nothing(cloud):
    _ingest_csv(cloud, "good", (CORPUS / "good.csv").read_text())  # area, rooms, price: 40 rows
    _ingest_csv(cloud, "empty-target", (CORPUS / "all_missing_target.csv").read_text())
    # 200 rows, 100 cities (each twice: not an identifier): at least 100 - 40 of them reach the 160 training rows
    _ingest_csv(cloud, "cities", _csv("area,city,price", [f"{i},city{i % 100:03d},{i}" for i in range(200)]))
    _ingest_csv(cloud, "tiny", _csv("x,y", [f"{i},{2 * i}" for i in range(9)]))
    _ingest_csv(cloud, "three", _csv("x,kind", [f"{i},{'abc'[i % 3]}" for i in range(30)]))
    cases = [
        (
            {"dataset": "good", "target": "nope"},
            "target column 'nope' is not in the data set (columns: area, rooms, price)",
        ),
        ({"dataset": "empty-target", "target": "price"}, "target column 'price' has no values"),
        ({"dataset": "good", "target": "price", "n_shards": 33}, "n_shards=33 is more than the 32 training rows"),
        (
            {"dataset": "good", "target": "price", "preprocessing": {"columns": {"size": {"drop": True}}}},
            "the preprocessing spec names column(s) not in the data set: size",
        ),
        (
            {"dataset": "tiny", "target": "y"},
            "the data set has 9 rows with a value of target column 'y', fewer than the 10 a training run needs",
        ),
        (  # a column the spec names is encoded as it says (one it does not name would be hashed)
            {
                "dataset": "cities",
                "target": "price",
                "preprocessing": {"columns": {"city": {"impute": "most_frequent"}}},
            },
            "column 'city' has 100 distinct values, more than the one-hot limit of 50; drop it, hash it or cap it "
            "(max_categories) in the preprocessing spec",
        ),
        (
            {"dataset": "three", "target": "kind", "hyperparameters": {"model": "logistic_regression"}},
            "target column 'kind': logistic_regression needs exactly 2 classes, got 3; use softmax_regression",
        ),
        (
            {"dataset": "three", "target": "kind", "hyperparameters": {"model": "linear_regression"}},
            "target column 'kind' must be numeric for regression",
        ),
    ]
    for request, message in cases:
        assert _body(cloud.request("POST", "/training-runs", {"model_name": "m", **request})) == (
            400,
            {"message": message},
        ), request
    arn = cloud.state_machine_arns["TrainingStateMachine"]
    assert cloud.sfn.list_executions(stateMachineArn=arn)["executions"] == []
    assert keys(cloud, "runs/") == keys(cloud, "processed/") == keys(cloud, "models/") == []
    # the same data set trains once the spec caps the column
    capped = {"dataset": "cities", "target": "price", "preprocessing": {"columns": {"city": {"max_categories": 10}}}}
    status, started = _body(cloud.request("POST", "/training-runs", {"model_name": "m", **capped}))
    assert status == 202, started
    assert cloud.wait(arn.replace(":stateMachine:", ":execution:") + f":{started['run_id']}")["status"] == "SUCCEEDED"


# -- identifiers and personal data are dropped by default ------------------------------------------------------
def _mark_sensitive(cloud, name: str, column: str, kind: str) -> None:
    """Mark ``column`` in the stored profile as ingestion does for likely identifiers and personal data."""
    latest = json.loads(
        cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=layout.dataset_latest_key(name))["Body"].read()
    )
    key = layout.dataset_meta_key(name, latest["version"])
    meta = json.loads(cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=key)["Body"].read())
    for entry in meta["columns"]:
        if entry["name"] == column:
            entry["sensitive"] = kind
    cloud.s3.put_object(Bucket=cloud.stack.bucket, Key=key, Body=json.dumps(meta))


def _objects_text(cloud, prefix: str) -> str:
    return "\n".join(
        cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=k)["Body"].read().decode("utf-8", "replace")
        for k in keys(cloud, prefix)
        if k.endswith(".json")
    )


def test_an_email_column_is_dropped_by_default_and_no_address_reaches_the_model(cloud):
    rows = [f"{i / 10},user{i:03d}@example.com,{2 * i / 10 + 1}" for i in range(100)]
    _ingest_csv(cloud, "people", _csv("x,email,y", rows))
    _mark_sensitive(cloud, "people", "email", "email")
    request = {"dataset": "people", "target": "y", "model_name": "people", "n_shards": 2}
    status, started = _body(cloud.request("POST", "/training-runs", {**request, "hyperparameters": {"max_epochs": 3}}))
    assert status == 202, started
    arn = cloud.state_machine_arns["TrainingStateMachine"].replace(":stateMachine:", ":execution:")
    assert cloud.wait(f"{arn}:{started['run_id']}")["status"] == "SUCCEEDED"
    manifest = json.loads(
        cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=layout.manifest_key(started["run_id"]))["Body"].read()
    )
    assert manifest["dropped"] == [{"column": "email", "reason": "email"}]
    assert manifest["dropped_columns"] == ["email"] and manifest["feature_names"] == ["x"]
    stored = _objects_text(cloud, "models/") + _objects_text(cloud, "processed/")
    assert '"x"' in stored and "@example.com" not in stored
    # a spec that names the column keeps it, as the user asked (hashed here: 100 addresses)
    asked = {**request, "preprocessing": {"columns": {"email": {"encoding": "hash", "hash_buckets": 4}}}}
    status, started = _body(cloud.request("POST", "/training-runs", {**asked, "hyperparameters": {"max_epochs": 3}}))
    assert status == 202, started
    assert cloud.wait(f"{arn}:{started['run_id']}")["status"] == "SUCCEEDED"
    manifest = json.loads(
        cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=layout.manifest_key(started["run_id"]))["Body"].read()
    )
    assert manifest["dropped"] == [] and manifest["feature_names"] == ["x", *(f"email#{b}" for b in range(4))]


# -- ceilings: concurrent runs (429) and estimated cost (400), template parameters ----------------------------
def test_the_run_ceilings_come_from_the_template_parameters():
    release = threading.Event()

    def hold_preprocess(spec, event):
        if spec.logical_id == "PreprocessFunction":
            release.wait(timeout=120)  # the first run stays RUNNING until the test lets it go

    stack = local_stack(overrides={"LogLevel": "WARNING", "MaxConcurrentTrainingRuns": "1", "MaxRunCostUsd": "0.1"})
    with LocalCloud(stack, hook=hold_preprocess) as cloud:
        cloud.invoke("IngestFunction", load_event("ingest_api"))
        request = json.loads(load_event("runs")["body"])  # 2 shards, 3 rounds of housing-sample
        arn = cloud.state_machine_arns["TrainingStateMachine"]
        try:
            expensive = {**request, "hyperparameters": {"max_epochs": 2000}, "n_shards": 4, "mode": "async"}
            # 32 training rows (housing-sample's split, see test_cost_of_a_run_from_its_history), 2000 async passes
            # over 4 shards (in the Standard parent: sync rounds run in Express children, ~40x cheaper): 5 + 2000 x
            # (3 + 4) state transitions alone are $0.35
            usage = cost.estimate(32, 4, 2000, mode="async")
            assert usage.state_transitions == 6 + 2000 * (3 + 4)
            estimate = cost.cost(usage, cost.price_table("us-east-1"))["total"]
            assert estimate > 14_005 * 0.025 / 1000
            assert _body(cloud.request("POST", "/training-runs", expensive)) == (
                400,
                {
                    "message": f"the run's estimated cost of ${estimate:.2f} (2000 rounds at most over 4 shards, "
                    "us-east-1 list "
                    "prices) is above the ceiling of $0.10 per run; lower max_epochs or n_shards, or raise the stack "
                    "parameter MaxRunCostUsd"
                },
            )
            assert cloud.sfn.list_executions(stateMachineArn=arn)["executions"] == []
            status, first = _body(cloud.request("POST", "/training-runs", request))
            assert status == 202, first
            assert _body(cloud.request("POST", "/training-runs", request)) == (
                429,
                {
                    "message": "1 training executions are running, the limit is 1 at once; retry when one has "
                    "finished, or raise the stack parameter MaxConcurrentTrainingRuns"
                },
            )
            assert [e["name"] for e in cloud.sfn.list_executions(stateMachineArn=arn)["executions"]] == [
                first["run_id"]
            ]
        finally:
            release.set()
        assert cloud.wait(arn.replace(":stateMachine:", ":execution:") + f":{first['run_id']}")["status"] == "SUCCEEDED"
        status, again = _body(cloud.request("POST", "/training-runs", request))  # room again
        assert status == 202, again
        assert cloud.wait(arn.replace(":stateMachine:", ":execution:") + f":{again['run_id']}")["status"] == "SUCCEEDED"
