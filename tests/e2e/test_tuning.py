"""A tuning job end to end through the real statemachines/tuning.asl.json and training.asl.json in moto's
interpreter, with the real handlers: 6 trials, 2 at a time, 3 rungs of successive halving on the housing sample. The
leaderboard, each (trial, rung) run exactly once (the record step delivered twice), never more than 2 trial
executions at once, a failing trial recorded with its reason while the job SUCCEEDS, the best trial's model registered
with its search history and promoted only past the baseline; bad requests start and write nothing."""

from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace

import pytest

from mlcore.infra import layout
from mlcore.steps import tuning
from mllocal.cloud import LocalCloud
from mllocal.template import local_stack
from tests.helpers import keys

REQUEST = {
    "dataset": "housing",
    "target": "price_k",
    "model_name": "housing-tuned",
    "max_trials": 6,
    "max_parallel_trials": 2,
    "min_epochs": 3,
    "max_epochs": 27,
    "reduction_factor": 3,
    "seed": 7,
    "search_space": {
        "model": ["linear_regression", "mlp_regression"],
        "mode": ["sync", "async"],
        "solver": ["sgd", "auto"],
        "optimizer": ["adam"],
        "learning_rate": {"low": 0.01, "high": 0.1},
        "hidden_layers": [[8]],
    },
}


class FailOneTrial:
    """A hook that corrupts every init of the second trial run it sees (its model becomes unknown), so that trial's
    training execution fails with a validation error; and delivers every record task twice (at-least-once)."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.victim: str | None = None
        self.lock = threading.Lock()

    def __call__(self, spec, event):
        if spec.logical_id == "TuningStepsFunction" and event.get("action") == "record":
            return 2
        if spec.logical_id == "AggregatorFunction" and event.get("action") == "init":
            with self.lock:
                if event["run_id"] not in self.seen:
                    self.seen.append(event["run_id"])
                if len(self.seen) >= 2 and self.victim is None:
                    self.victim = self.seen[1]
            if event["run_id"] == self.victim:
                event["hyperparameters"]["model"] = "no_such_model"
        return None


def _body(resp: dict) -> dict:
    return json.loads(resp["body"])


def _running_trials(cloud: LocalCloud, stop: threading.Event, peak: list[int]) -> None:
    arn = cloud.state_machine_arns["TrainingStateMachine"]
    while not stop.is_set():
        running = cloud.sfn.list_executions(stateMachineArn=arn, statusFilter="RUNNING")["executions"]
        peak.append(len(running))
        time.sleep(0.05)


@pytest.fixture(scope="module")
def job(housing_sample):
    hook = FailOneTrial()
    with LocalCloud(local_stack(overrides={"LogLevel": "WARNING", "TuningWaitSeconds": "1"}), hook=hook) as cloud:
        resp = cloud.request("POST", "/datasets/housing", housing_sample, headers={"Content-Type": "text/csv"})
        assert resp["statusCode"] == 201, resp
        stop, peak = threading.Event(), [0]
        watcher = threading.Thread(target=_running_trials, args=(cloud, stop, peak), daemon=True)
        watcher.start()
        resp = cloud.request("POST", "/tuning-jobs", REQUEST)
        assert resp["statusCode"] == 202, resp
        submitted = _body(resp)
        arn = cloud.state_machine_arns["TuningStateMachine"]
        execution = cloud.wait(f"{arn.replace(':stateMachine:', ':execution:')}:{submitted['job_id']}", timeout=600)
        stop.set()
        watcher.join()
        described = _body(cloud.request("GET", f"/tuning-jobs/{submitted['job_id']}"))
        yield SimpleNamespace(
            cloud=cloud, hook=hook, submitted=submitted, execution=execution, described=described, peak=max(peak)
        )


def test_submission_reports_the_plan(job):
    s = job.submitted
    assert s["status"] == "RUNNING" and s["job_id"].startswith("tune-")
    assert (s["task"], s["metric"], s["rungs"]) == ("regression", "r2", [3, 9, 27])
    assert (s["max_trials"], s["max_parallel_trials"]) == (6, 2)
    assert s["estimated_cost_usd"] > 0
    assert s["search_space"]["model"] == ["linear_regression", "mlp_regression"]


def test_the_job_succeeds_with_a_leaderboard_best_first(job):
    assert job.execution["status"] == "SUCCEEDED", job.execution
    d = job.described
    assert d["status"] == "SUCCEEDED" and d["ended_at"] is not None
    board = d["leaderboard"]
    assert [e["trial"] for e in sorted(board, key=lambda e: e["trial"])] == list(range(6))
    finished = [e for e in board if e["status"] in ("completed", "stopped_early")]
    assert finished, board
    assert board[0]["status"] == "completed" and board[0]["rung"] == 2 and board[0]["epochs"] >= 1
    losses = [e["validation_loss"] for e in board if e["status"] == "completed"]
    assert losses == sorted(losses)
    assert d["best"]["trial"] == board[0]["trial"]
    assert d["best"]["validation_loss"] == board[0]["validation_loss"]
    for entry in board:
        assert set(entry) == {
            "trial", "mode", "hyperparameters", "rung", "epochs", "validation_loss", "validation_metric",
            "status", "stop_reason", "run_id", "cost_usd",
        }  # fmt: skip
    assert d["cost_usd"] == pytest.approx(sum(e["cost_usd"] or 0 for e in board), rel=1e-6, abs=1e-6)
    assert d["worker_seconds"] > 0
    stopped = sum(e["status"] == "stopped_early" for e in board)
    assert d["early_stopped_share"] == pytest.approx(round(stopped / 6, 4))


def test_a_failing_trial_is_recorded_with_its_reason(job):
    failed = [e for e in job.described["leaderboard"] if e["status"] == "failed"]
    assert len(failed) == 1, job.described["leaderboard"]
    assert failed[0]["run_id"] == job.hook.victim
    assert failed[0]["stop_reason"].startswith("ValidationError")
    assert failed[0]["validation_loss"] is None


def test_each_trial_and_rung_runs_once_never_more_than_two_at_once(job):
    cloud, job_id = job.cloud, job.submitted["job_id"]
    arn = cloud.state_machine_arns["TrainingStateMachine"]
    names = [e["name"] for e in cloud.sfn.list_executions(stateMachineArn=arn)["executions"]]
    assert len(names) == len(set(names))
    claims = json.loads(
        cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=layout.tuning_claims_key(job_id))["Body"].read()
    )
    started = [(c["trial"], c["rung"]) for c in claims["jobs"]]
    assert len(started) == len(set(started))
    assert sorted(tuning.execution_name(c["run_id"], c["rung"]) for c in claims["jobs"]) == sorted(names)
    results = keys(cloud, layout.tuning_results_prefix(job_id))
    assert len(results) == len(started)  # every result recorded once, though each record task was delivered twice
    assert sum(rung == 0 for _, rung in started) == 6
    assert 1 <= sum(rung == 2 for _, rung in started) <= 1 + 1  # ASHA: ceil(6 / 9) at the last rung, +1 if it failed
    assert job.peak == 2  # the slots do run trials side by side, and never a third


def test_the_best_trial_is_registered_with_its_search_history(job):
    cloud, d = job.cloud, job.described
    model = d["model"]
    assert model["model_name"] == "housing-tuned" and model["version"] == 1
    artifact = json.loads(
        cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=layout.version_key("housing-tuned", 1))["Body"].read()
    )
    lineage = artifact["lineage"]
    assert lineage["run_id"] == d["leaderboard"][0]["run_id"]
    assert lineage["tuning"]["job_id"] == d["job_id"] and lineage["tuning"]["trial"] == d["best"]["trial"]
    assert len(lineage["tuning"]["search"]) == len(keys(cloud, layout.tuning_results_prefix(d["job_id"])))
    beaten = artifact["metrics"]["baseline"]["beaten"]
    assert model["promoted"] is beaten  # the first version: promoted exactly when it beats the trivial baseline
    production = keys(cloud, layout.alias_key("housing-tuned", "production"))
    assert bool(production) is beaten


def test_the_trials_are_runs_that_register_nothing(job):
    cloud = job.cloud
    trial_models = [k for k in keys(cloud, "runs/") if k.endswith("/model.json")]
    best = job.described["leaderboard"][0]["run_id"]
    assert trial_models == [f"runs/{best}/model.json"]  # the best trial's, registered at the end


def test_the_job_is_listed_and_cannot_be_stopped_once_ended(job):
    cloud, job_id = job.cloud, job.submitted["job_id"]
    listed = _body(cloud.request("GET", "/tuning-jobs"))
    assert [j["job_id"] for j in listed["jobs"]] == [job_id] and listed["next"] is None
    assert listed["jobs"][0]["best_validation_metric"] == job.described["best"]["validation_metric"]
    resp = cloud.request("POST", f"/tuning-jobs/{job_id}/stop")
    assert resp["statusCode"] == 409
    assert _body(resp)["message"] == f"tuning job {job_id!r} is SUCCEEDED: only a RUNNING job can be stopped"
    assert cloud.request("GET", "/tuning-jobs/tune-000000000000")["statusCode"] == 404


@pytest.mark.parametrize(
    ("change", "status", "named"),
    [
        ({"search_space": {"momentum": [0.9]}}, 422, "momentum"),
        ({"search_space": {"learning_rate": {"low": 0.1, "high": 0.01}}}, 422, "search_space.learning_rate"),
        ({"max_parallel_trials": 17}, 422, "max_parallel_trials"),
        ({"max_cost_usd": 1e-9}, 400, "max_cost_usd"),
        ({"target": "no_such_column"}, 400, "no_such_column"),
    ],
)
def test_bad_requests_start_and_write_nothing(job, change, status, named):
    cloud = job.cloud
    before = keys(cloud)
    arn = cloud.state_machine_arns["TuningStateMachine"]
    executions = len(cloud.sfn.list_executions(stateMachineArn=arn)["executions"])
    resp = cloud.request("POST", "/tuning-jobs", {**REQUEST, **change})
    assert resp["statusCode"] == status, resp
    assert named in resp["body"]
    assert keys(cloud) == before
    assert len(cloud.sfn.list_executions(stateMachineArn=arn)["executions"]) == executions


def test_a_trial_s_cost_counts_its_workers_on_the_job_s_shards(job):
    cloud, board = job.cloud, job.described["leaderboard"]
    for entry in (e for e in board if e["status"] in ("completed", "stopped_early")):
        key = layout.run_usage_key(entry["run_id"])
        usage = json.loads(cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=key)["Body"].read())
        assert (usage["shards"], usage["train_rows"]) == (2, 256)  # the job's data, though the trial never preprocessed
        assert usage["functions"]["GradientWorker"]["invocations"] >= 2
        assert entry["cost_usd"] > 0
