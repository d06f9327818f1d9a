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
        self.gate: threading.Event | None = None  # when set to an Event: every init waits for it (the stop test)
        self.held: set[str] = set()  # the runs whose init waits at the gate

    def __call__(self, spec, event):
        if spec.logical_id == "TuningStepsFunction" and event.get("action") == "record":
            return 2
        if spec.logical_id == "AggregatorFunction" and event.get("action") == "init" and self.gate is not None:
            with self.lock:
                self.held.add(event["run_id"])
            self.gate.wait(timeout=120)
            return None
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
    chosen = next(e for e in board if e["trial"] == d["best"]["trial"])
    assert d["best"]["validation_loss"] == chosen["validation_loss"]
    finalists = [e for e in board if e["mode"] == "sync" and e["validation_loss"] is not None][:4]
    if len(finalists) >= 2:  # the housing sample is small: the sync finalists are re-scored by 5-fold CV
        figures = d["best"]["cross_validation"]
        assert [f["trial"] for f in figures] == [e["trial"] for e in finalists] and chosen in finalists
        scored = {f["trial"]: f for f in figures}
        lowest = min((f for f in figures if f["cv_loss"] is not None), key=lambda f: f["cv_loss"])
        assert scored[chosen["trial"]]["cv_loss"] <= lowest["cv_loss"] + lowest["cv_loss_se"]
        assert d["best"]["selected_because"].startswith(
            "the lowest 5-fold cross-validated loss" if scored[chosen["trial"]] is lowest
            else f"the simplest of the {len(figures)} finalists within one standard error"
        )  # fmt: skip
    else:  # the one-standard-error rule on the validation split
        assert chosen["rung"] == board[0]["rung"]
        lead = board[0]["validation_loss"] + board[0]["validation_loss_se"]
        assert board[0]["validation_loss"] <= d["best"]["validation_loss"] <= lead
        assert d["best"]["selected_because"].startswith(
            "the lowest validation loss" if chosen is board[0] else "the simplest trial within one standard error"
        )
    for entry in board:
        assert set(entry) == {
            "trial", "mode", "hyperparameters", "rung", "epochs", "validation_loss", "validation_loss_se",
            "validation_metric", "status", "stop_reason", "run_id", "cost_usd", "history",
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
    ran = [c for c in claims["jobs"] if not c.get("free")]  # a free promotion starts no execution
    assert sorted(tuning.execution_name(c["run_id"], c["rung"]) for c in ran) == sorted(names)
    results = keys(cloud, layout.tuning_results_prefix(job_id))
    assert len(results) == len(started)  # every result recorded once, though each record task was delivered twice
    assert sum(rung == 0 for _, rung in started) == 6
    # ASHA: ceil(6 / 9) runs at the last rung, +1 if it failed (a free promotion is no run)
    assert 1 <= sum(c["rung"] == 2 for c in ran) + any(c["rung"] == 2 for c in claims["jobs"] if c.get("free")) <= 2
    assert job.peak == 2  # the slots do run trials side by side, and never a third


def _results(cloud: LocalCloud, job_id: str) -> dict[tuple[int, int], dict]:
    found = {}
    for key in keys(cloud, layout.tuning_results_prefix(job_id)):
        result = json.loads(cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=key)["Body"].read())
        found[(result["trial"], result["rung"])] = result
    return found


def test_each_entry_has_its_history_from_the_recorded_results(job):
    results = _results(job.cloud, job.submitted["job_id"])
    for entry in job.described["leaderboard"]:
        mine = [results[k] for k in sorted(results) if k[0] == entry["trial"]]
        assert [h["rung"] for h in entry["history"]] == [r["rung"] for r in mine]
        assert [h["epochs"] for h in entry["history"]] == [r.get("epochs") or 0 for r in mine]
        if entry["status"] in ("completed", "stopped_early"):
            last = entry["history"][-1]
            assert (last["rung"], last["epochs"], last["validation_loss"]) == (
                entry["rung"], entry["epochs"], entry["validation_loss"])  # fmt: skip


def test_a_trial_that_stopped_on_its_own_is_promoted_without_an_execution(job):
    cloud, job_id = job.cloud, job.submitted["job_id"]
    claims = json.loads(
        cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=layout.tuning_claims_key(job_id))["Body"].read()
    )
    free = [c for c in claims["jobs"] if c.get("free")]
    assert free, claims  # the seed's search promotes a trial whose exact solve (or early stop) already ended it
    arn = cloud.state_machine_arns["TrainingStateMachine"]
    names = {e["name"] for e in cloud.sfn.list_executions(stateMachineArn=arn)["executions"]}
    results = _results(cloud, job_id)
    for c in free:
        assert tuning.execution_name(c["run_id"], c["rung"]) not in names
        below, at = results[(c["trial"], c["rung"] - 1)], results[(c["trial"], c["rung"])]
        assert below["stop_reason"] in tuning.SETTLED and at["free"] is True
        assert (at["epochs"], at["validation_loss"], at["stop_reason"]) == (
            below["epochs"], below["validation_loss"], below["stop_reason"])  # fmt: skip


def test_trial_runs_are_listed_as_trials_of_their_job(job):
    cloud, job_id = job.cloud, job.submitted["job_id"]
    by_trial = {e["run_id"]: e for e in job.described["leaderboard"] if e["run_id"]}
    listed = [r for r in _body(cloud.request("GET", "/training-runs"))["runs"] if r["run_id"] in by_trial]
    assert len(listed) == len(by_trial)
    for run in listed:
        entry = by_trial[run["run_id"]]
        assert run["tuning"] == {"job_id": job_id, "trial": entry["trial"]}
        assert run["mode"] == entry["mode"]
        assert run["hyperparameters"]["model"] == entry["hyperparameters"]["model"]
        assert run["hyperparameters"]["solver"] == entry["hyperparameters"]["solver"]
    best = job.described["leaderboard"][0]
    described = _body(cloud.request("GET", f"/training-runs/{best['run_id']}"))
    assert described["tuning"] == {"job_id": job_id, "trial": best["trial"]}
    assert described["request"]["hyperparameters"]["model"] == best["hyperparameters"]["model"]
    assert described["request"]["mode"] == best["mode"] and "data" not in described["request"]


def test_the_best_trial_is_registered_with_its_search_history(job):
    cloud, d = job.cloud, job.described
    model = d["model"]
    assert model["model_name"] == "housing-tuned" and model["version"] == 1
    artifact = json.loads(
        cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=layout.version_key("housing-tuned", 1))["Body"].read()
    )
    lineage = artifact["lineage"]
    chosen = next(e for e in d["leaderboard"] if e["trial"] == d["best"]["trial"])
    assert lineage["run_id"] == chosen["run_id"]
    assert lineage["tuning"].get("cross_validation") == d["best"].get("cross_validation")
    assert lineage["tuning"]["job_id"] == d["job_id"] and lineage["tuning"]["trial"] == d["best"]["trial"]
    assert len(lineage["tuning"]["search"]) == len(keys(cloud, layout.tuning_results_prefix(d["job_id"])))
    beaten = artifact["metrics"]["baseline"]["beaten"]
    assert model["promoted"] is beaten  # the first version: promoted exactly when it beats the trivial baseline
    production = keys(cloud, layout.alias_key("housing-tuned", "production"))
    assert bool(production) is beaten


def test_the_trials_are_runs_that_register_nothing(job):
    cloud = job.cloud
    trial_models = [k for k in keys(cloud, "runs/") if k.endswith("/model.json")]
    best = next(e["run_id"] for e in job.described["leaderboard"] if e["trial"] == job.described["best"]["trial"])
    assert trial_models == [f"runs/{best}/model.json"]  # the chosen trial's, registered at the end


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


def _with(field: str, text: str) -> str:
    """REQUEST as JSON text with ``field`` set to the raw JSON ``text`` (literals Python's json cannot write)."""
    return json.dumps({**REQUEST, field: "@@"}).replace('"@@"', text)


HOSTILE = {
    "deep body": ("[" * 100_000 + "]" * 100_000, 400, "JSON nested more than 64 levels deep"),
    "deep search space": (
        _with("search_space", '{"model": ' + "[" * 70 + "]" * 70 + "}"),
        400,
        "nested more than 64 levels deep",
    ),
    "nested hidden layers": (
        _with("search_space", '{"hidden_layers": ' + "[" * 10 + "8" + "]" * 10 + "}"),
        422,
        "hidden_layers",
    ),
    "1e308 max_trials": (_with("max_trials", "1e308"), 422, "max_trials"),
    "10**400 max_trials": (_with("max_trials", "1" + "0" * 400), 422, "max_trials"),
    "1e308 seed": (_with("seed", "1e308"), 422, "seed"),
    "10**400 seed": (_with("seed", "1" + "0" * 400), 422, "seed"),
    "10**400 max_cost_usd": (_with("max_cost_usd", "1" + "0" * 400), 422, "max_cost_usd"),
    "1e400 max_cost_usd": (_with("max_cost_usd", "1e400"), 422, "max_cost_usd"),
    "1e308 test_fraction": (_with("test_fraction", "1e308"), 422, "test_fraction"),
    "10**400 learning_rate": (
        _with("search_space", '{"learning_rate": {"low": 0.01, "high": 1' + "0" * 400 + "}}"),
        422,
        "learning_rate",
    ),
    "1e308 l2": (_with("search_space", '{"l2": {"low": 0, "high": 1e308}}'), 422, "search_space.l2.high"),
    "10**400 batch_size": (_with("search_space", '{"batch_size": [1' + "0" * 400 + "]}"), 422, "batch_size"),
    "odd unicode model_name": (json.dumps({**REQUEST, "model_name": "mo\u0308del\u202e"}), 422, "model_name"),
    "lone surrogate model_name": (_with("model_name", '"a\\ud800"'), 400, "lone surrogate"),
    "odd unicode dataset": (json.dumps({**REQUEST, "dataset": "h\u00f6using\u200b"}), 400, "data set name"),
    "odd unicode target": (json.dumps({**REQUEST, "target": "price\u202ek"}), 400, "target column"),
    "NUL in target": (json.dumps({**REQUEST, "target": "price\u0000k"}), 400, "target column"),
    "odd unicode version": (json.dumps({**REQUEST, "version": "v\u0301"}), 404, "version"),
    "1 MB model_name": (json.dumps({**REQUEST, "model_name": "x" * 1_000_000}), 422, "model_name"),
    "1 MB dataset": (json.dumps({**REQUEST, "dataset": "x" * 1_000_000}), 400, "data set name"),
    "1 MB target": (json.dumps({**REQUEST, "target": "x" * 1_000_000}), 400, "target column"),
    "1 MB version": (json.dumps({**REQUEST, "version": "x" * 1_000_000}), 404, "version"),
    "1 MB search-space model": (json.dumps({**REQUEST, "search_space": {"model": ["x" * 1_000_000]}}), 422, "model"),
}


@pytest.mark.parametrize("shape", HOSTILE)
def test_hostile_requests_are_a_4xx_naming_the_field_and_write_nothing(job, shape):
    body, status, named = HOSTILE[shape]
    cloud = job.cloud
    before = keys(cloud)
    arn = cloud.state_machine_arns["TuningStateMachine"]
    executions = len(cloud.sfn.list_executions(stateMachineArn=arn)["executions"])
    resp = cloud.request("POST", "/tuning-jobs", body, headers={"Content-Type": "application/json"})
    assert resp["statusCode"] == status, resp["body"][:500]
    assert named in resp["body"], resp["body"][:500]
    assert keys(cloud) == before
    assert len(cloud.sfn.list_executions(stateMachineArn=arn)["executions"]) == executions


def test_stopping_a_running_job_aborts_it_and_its_running_trials(job):
    """Last in the module: a second job, its trials held in their first step until it is stopped."""
    cloud, hook = job.cloud, job.hook
    training = cloud.state_machine_arns["TrainingStateMachine"]
    tuning_arn = cloud.state_machine_arns["TuningStateMachine"]
    hook.gate = threading.Event()
    try:
        request = {**REQUEST, "model_name": "housing-stopped", "max_trials": 2, "max_parallel_trials": 2}
        resp = cloud.request("POST", "/tuning-jobs", request)
        assert resp["statusCode"] == 202, resp
        job_id = _body(resp)["job_id"]
        trials = {tuning.trial_run_id(job_id, t) for t in range(2)}
        deadline = time.monotonic() + 120
        while not hook.held >= trials and time.monotonic() < deadline:  # both trials are in their first step
            time.sleep(0.05)
        running = cloud.sfn.list_executions(stateMachineArn=training, statusFilter="RUNNING")["executions"]
        assert {e["name"] for e in running} >= trials, running
        assert _body(cloud.request("GET", f"/tuning-jobs/{job_id}"))["status"] == "RUNNING"
        resp = cloud.request("POST", f"/tuning-jobs/{job_id}/stop")
        assert resp["statusCode"] == 202, resp
        assert _body(resp) == {"job_id": job_id, "status": "ABORTED"}
    finally:
        hook.gate.set()
        hook.gate = None
    execution = cloud.wait(f"{tuning_arn.replace(':stateMachine:', ':execution:')}:{job_id}", timeout=120)
    assert execution["status"] == "ABORTED"
    for name in trials:
        trial = cloud.wait(f"{training.replace(':stateMachine:', ':execution:')}:{name}", timeout=120)
        assert trial["status"] == "ABORTED", name
    cloud.settle(timeout=60)
    described = _body(cloud.request("GET", f"/tuning-jobs/{job_id}"))
    assert (described["status"], described["model"], described["best"]) == ("ABORTED", None, None)
    assert {e["status"] for e in described["leaderboard"]} == {"failed"}  # ended before their first result
    assert keys(cloud, layout.versions_prefix("housing-stopped")) == []
    assert keys(cloud, layout.alias_key("housing-stopped", "production")) == []
    assert keys(cloud, layout.tuning_summary_key(job_id)) == []
    assert _body(cloud.request("POST", f"/tuning-jobs/{job_id}/stop"))["message"] == (
        f"tuning job {job_id!r} is ABORTED: only a RUNNING job can be stopped"
    )
