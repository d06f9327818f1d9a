"""Long runs through the real state machine: a run continues from its checkpoint in new executions
(Standard Workflows' history limit), and a failed run resumes from its last round; both reach exactly
the parameters of an uninterrupted run (sync mode, fixed seed)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from mllocal.cloud import LocalCloud
from mllocal.template import local_stack

ROUNDS = 7


def _request(**extra) -> dict:
    return {
        "dataset": "housing",
        "target": "price_k",
        "model_name": "long",
        "n_shards": 2,
        "seed": 5,
        "hyperparameters": {"max_epochs": ROUNDS, "tolerance": 0.0, "solver": "sgd"},
        **extra,
    }


def _theta(cloud, run_id, round_):
    key = f"runs/{run_id}/params/round-{round_:05d}.npz"
    return np.load(io.BytesIO(cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=key)["Body"].read()))["theta"]


def _follow(cloud, arn) -> list[dict]:
    """The executions of a run, following each hand-over to the next."""
    chain = [cloud.wait(arn, timeout=300)]
    while chain[-1]["status"] == "SUCCEEDED" and "continued_as" in json.loads(chain[-1]["output"]):
        chain.append(cloud.wait(json.loads(chain[-1]["output"])["continued_as"], timeout=300))
    return chain


class Switch:
    """Whether the hook breaks round 4 of the runs started while it is on."""

    on = False


@pytest.fixture(scope="module")
def long_runs(housing_sample):
    """One local cloud for the module: the data set, a hook that can break round 4, and the parameters of
    an uninterrupted reference run."""
    broken = Switch()

    def fail_round_4(spec, event):
        if spec.logical_id == "AggregatorFunction" and "results" in event and event["round"] == 4 and broken.on:
            event["params_key"] = "runs/missing.npz"  # a non-retried failure: the execution fails

    with LocalCloud(local_stack(overrides={"LogLevel": "WARNING"}), hook=fail_round_4) as cloud:
        resp = cloud.request("POST", "/datasets/housing", housing_sample, headers={"Content-Type": "text/csv"})
        assert resp["statusCode"] == 201, resp
        reference = _follow(cloud, cloud.start("TrainingStateMachine", _request(), name="run-00000000000a"))
        assert [e["status"] for e in reference] == ["SUCCEEDED"]
        yield cloud, broken, _theta(cloud, "run-00000000000a", ROUNDS)


def test_long_run_continues_in_new_executions_to_the_same_parameters(long_runs):
    cloud, _, expected = long_runs
    # 3 rounds per execution: rounds 0-2, 3-5, then 6 and the evaluation
    arn = cloud.start("TrainingStateMachine", _request(rounds_per_execution=3), name="run-00000000000b")
    chain = _follow(cloud, arn)
    assert [e["name"] for e in chain] == ["run-00000000000b", "run-00000000000b-r3", "run-00000000000b-r6"]
    assert [e["status"] for e in chain] == ["SUCCEEDED"] * 3
    assert json.loads(chain[-1]["output"])["rounds"] == ROUNDS
    np.testing.assert_array_equal(_theta(cloud, "run-00000000000b", ROUNDS), expected)
    described = json.loads(cloud.request("GET", "/training-runs/run-00000000000b")["body"])
    assert described["status"] == "SUCCEEDED" and described["model"]["rounds"] == ROUNDS
    assert described["rounds_completed"] == ROUNDS


@pytest.fixture(scope="module")
def resumed_run(long_runs):
    """Run c fails in round 4, then resumes from its checkpoint (the last stored round) and succeeds."""
    cloud, broken, _ = long_runs
    broken.on = True
    try:
        failed = cloud.run("TrainingStateMachine", _request(), name="run-00000000000c")
    finally:
        broken.on = False
    assert failed["status"] == "FAILED" and failed["error"] == "NotFound", failed
    resp = cloud.request("POST", "/training-runs/run-00000000000c/resume")
    assert resp["statusCode"] == 202, resp
    resumed = json.loads(resp["body"])
    execution = cloud.wait(failed["executionArn"].rsplit(":", 1)[0] + ":" + resumed["execution"], timeout=300)
    assert execution["status"] == "SUCCEEDED", execution
    return resumed


def test_a_failed_run_resumes_from_its_last_round_to_the_same_parameters(long_runs, resumed_run):
    cloud, _, expected = long_runs
    assert resumed_run["resumed_from_round"] == 4
    np.testing.assert_array_equal(_theta(cloud, "run-00000000000c", ROUNDS), expected)


def test_a_resumed_run_has_the_status_of_its_latest_execution(long_runs, resumed_run):
    cloud, _, _ = long_runs
    described = json.loads(cloud.request("GET", "/training-runs/run-00000000000c")["body"])
    assert described["status"] == "SUCCEEDED" and described["model"]["rounds"] == ROUNDS
    listed = json.loads(cloud.request("GET", "/training-runs")["body"])["runs"]
    assert {r["run_id"]: r["status"] for r in listed}["run-00000000000c"] == "SUCCEEDED"


def test_the_cost_of_a_resumed_run_counts_every_execution(long_runs, resumed_run):
    cloud, _, _ = long_runs
    cost = json.loads(cloud.request("GET", "/training-runs/run-00000000000c/cost")["body"])
    workers = cost["actual"]["usage"]["functions"]["GradientWorker"]["invocations"]
    # 2 shards x rounds 0-4 in the failed execution (round 4's aggregation fails) + 2 x rounds 4-6 resumed
    assert workers == 2 * 5 + 2 * 3


def test_a_finished_run_cannot_be_resumed(long_runs, resumed_run):
    cloud, _, _ = long_runs
    resp = cloud.request("POST", "/training-runs/run-00000000000c/resume")
    assert resp["statusCode"] == 409, resp
    assert json.loads(resp["body"])["message"] == (
        "training run 'run-00000000000c' is SUCCEEDED: only a run that FAILED, TIMED_OUT or was ABORTED can be resumed"
    )


def test_resuming_an_unknown_run_is_404(long_runs):
    cloud, _, _ = long_runs
    assert cloud.request("POST", "/training-runs/run-0000000000ff/resume")["statusCode"] == 404


def test_a_replayed_express_call_rewrites_nothing_and_returns_the_same_rounds(long_runs):
    """The parent's Retry may start a call of rounds again: each round's aggregation is create-only, so a replay
    recomputes and returns the stored rounds, and no parameters or round records are written again."""
    cloud, _, expected = long_runs
    arn = cloud.state_machine_arns["TrainingStateMachine"].replace(":stateMachine:", ":execution:")
    history = cloud.sfn.get_execution_history(executionArn=f"{arn}:run-00000000000a", maxResults=1000)["events"]
    calls = [json.loads(e["taskScheduledEventDetails"]["parameters"]) for e in history if e["type"] == "TaskScheduled"]
    calls = [c for c in calls if c.get("StateMachineArn") == cloud.state_machine_arns["TrainingRoundsStateMachine"]]
    assert len(calls) == 1  # 7 rounds: one call of at most rounds_per_call = 25
    child_input = calls[0]["Input"] if isinstance(calls[0]["Input"], dict) else json.loads(calls[0]["Input"])
    assert (child_input["train"]["round"], child_input["until_round"]) == (0, 25)
    returned = next(
        e for e in history if e["type"] == "TaskSucceeded" and "Output" in e["taskSucceededEventDetails"]["output"]
    )
    original = json.loads(returned["taskSucceededEventDetails"]["output"])["Output"]

    def stored() -> dict[str, tuple[str, object]]:
        pages = cloud.s3.get_paginator("list_objects_v2").paginate(
            Bucket=cloud.stack.bucket, Prefix="runs/run-00000000000a/"
        )
        return {
            o["Key"]: (o["ETag"], o["LastModified"])
            for page in pages
            for o in page.get("Contents", [])
            if "/params/" in o["Key"] or "/rounds/" in o["Key"]
        }

    before = stored()
    assert len([k for k in before if "/params/" in k]) == ROUNDS + 1
    for attempt in range(2):
        replay = cloud.run("TrainingRoundsStateMachine", child_input, name=f"replay-{attempt}", timeout=300)
        assert replay["status"] == "SUCCEEDED", replay
        assert json.loads(replay["output"]) == original
    assert original["round"] == ROUNDS and original["done"] is True
    assert stored() == before
    np.testing.assert_array_equal(_theta(cloud, "run-00000000000a", ROUNDS), expected)
