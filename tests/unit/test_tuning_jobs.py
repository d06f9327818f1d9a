"""The tuning job's orchestration (mlcore.steps.tuning) on an in-memory store: slots claim (trial, rung) jobs by
compare-and-swap, a retried call gets the job it was handed, results are recorded create-only (a duplicate or late
delivery changes nothing), promoted trials continue their own run, the leaderboard and the finished job's summary."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import numpy as np
import pytest
from pydantic import Field, TypeAdapter

from mlcore.infra import layout
from mlcore.infra.storage import Conflict
from mlcore.math import tuning as asha
from mlcore.steps import crossval, evaluation, tuning
from mlcore.steps.schemas import EvaluateTask, TrainingRequest, TuningRequest
from tests.helpers import load_event
from tests.unit.fakes import FakeStore

JOB = "tune-0123456789ab"
TRIALS = [
    {"mode": "sync", "hyperparameters": {"model": "linear_regression", "solver": "auto", "l2": 0.0}},
    {"mode": "sync", "hyperparameters": {"model": "mlp_regression", "solver": "auto", "hidden_layers": [8]}},
    {"mode": "async", "hyperparameters": {"model": "linear_regression", "optimizer": "adam", "learning_rate": 0.01}},
]
PREPARE = TrainingRequest(
    dataset="d", version="v1", target="y", model_name="m", n_shards=2, validation_fraction=0.2, trial=True
).model_dump(mode="json")
DATA = {"run_id": JOB, "n_features": 3, "n_outputs": 1, "classes": None, "shards": []}


def job_store(n_trials: int = 3, eta: int = 3) -> FakeStore:
    record = {
        "job_id": JOB,
        "request": {"reduction_factor": eta, "model_name": "m"},
        "task": "regression",
        "metric": "r2",
        "trials": (TRIALS * 10)[:n_trials],
        "rungs": [3, 9, 27],
        "estimated_cost_usd": 0.01,
        "prepare": PREPARE,
        "started_at": "2026-01-01T00:00:00+00:00",
    }
    return FakeStore({layout.tuning_job_key(JOB): record, layout.tuning_data_key(JOB): DATA})


def claim(store, slot, seq=0):
    return tuning.next_action(store, tuning.NextTask(action="next", job_id=JOB, slot=slot, seq=seq))


def deliver(store, handed, loss=None, failure=None, seq=None):
    output = None if failure else {"validation_loss": loss, "validation_metric": 0.5, "rounds": 3, "stop_reason": "x"}
    task = tuning.RecordTask(
        action="record",
        job_id=JOB,
        slot=handed["slot"],
        seq=handed["seq"] if seq is None else seq,
        trial=handed["trial"],
        rung=handed["rung"],
        output=output,
        failure=failure,
    )
    return tuning.record(store, task)


def test_concurrent_slots_take_different_trials_and_a_retry_gets_the_same_one():
    store = job_store()
    first, second = claim(store, 0), claim(store, 1)
    assert (first["action"], first["trial"], first["rung"]) == ("run", 0, 0)
    assert (second["trial"], second["rung"]) == (1, 0)
    assert claim(store, 0) == first  # the Lambda retried: the same job, no second claim
    assert [(c["trial"], c["rung"]) for c in store.documents[layout.tuning_claims_key(JOB)]["jobs"]] == [(0, 0), (1, 0)]
    assert first["name"] == tuning.trial_run_id(JOB, 0)
    assert first["input"]["request"]["hyperparameters"]["max_epochs"] == 3
    assert first["input"]["request"]["trial"] is True and "train" not in first["input"]


def test_a_lost_compare_and_swap_decides_again_on_what_the_other_slot_wrote():
    store = job_store()
    claim(store, 0)  # the claims exist
    original = store.put_json
    raced = []

    def put_json(key, doc, *, if_absent=False, if_match=None):
        if key == layout.tuning_claims_key(JOB) and if_match and not raced:
            raced.append(True)  # slot 1 claims trial 1 between this call's read and its write
            original(key, {"jobs": [*store.documents[key]["jobs"], {**doc["jobs"][-1], "slot": 1}]})
            raise Conflict(key)
        return original(key, doc, if_absent=if_absent, if_match=if_match)

    store.put_json = put_json  # type: ignore[method-assign]
    handed = claim(store, 2)
    assert raced and (handed["trial"], handed["rung"]) == (2, 0)
    trials = [c["trial"] for c in store.documents[layout.tuning_claims_key(JOB)]["jobs"]]
    assert trials == [0, 1, 2]


def test_a_result_delivered_twice_is_recorded_once():
    store = job_store()
    handed = claim(store, 0)
    assert deliver(store, handed, loss=1.5) == {"job_id": JOB, "slot": 0, "seq": 1, "recorded": True}
    key = layout.tuning_result_key(JOB, 0, 0)
    assert deliver(store, handed, loss=0.1) == {"job_id": JOB, "slot": 0, "seq": 1, "recorded": False}
    assert store.documents[key]["validation_loss"] == 1.5 and store.writes[key] == 1


def test_a_late_result_for_a_job_never_handed_out_is_not_recorded():
    store = job_store()
    claim(store, 0)
    late = {"slot": 5, "seq": 0, "trial": 2, "rung": 1}
    assert deliver(store, late, loss=0.01)["recorded"] is False
    assert store.list_keys(layout.tuning_results_prefix(JOB)) == []


def plant_last_round(store: FakeStore, trial: int) -> dict:
    run_id = tuning.trial_run_id(JOB, trial)
    state = {"run_id": run_id, "round": 9, "params_key": "k", "done": True, "reason": "converged"}
    store.documents[layout.round_key(run_id, 8)] = {"round": 8, "state": state}
    return state


def test_a_duplicate_result_never_promotes_a_trial_twice():
    store = job_store(n_trials=3)
    plant_last_round(store, 0)
    handed = [claim(store, s) for s in range(3)]
    for h, loss in zip(handed, (0.5, 2.0, 3.0), strict=True):
        deliver(store, h, loss=loss)
    promoted = claim(store, 0, seq=1)
    assert (promoted["trial"], promoted["rung"]) == (0, 1)
    deliver(store, handed[0], loss=0.5)  # rung 0's result again, late
    deliver(store, handed[0], loss=0.5)
    assert claim(store, 1, seq=1)["action"] == "wait"  # trial 0 runs rung 1; nothing else is promotable
    started = [(c["trial"], c["rung"]) for c in store.documents[layout.tuning_claims_key(JOB)]["jobs"]]
    assert started.count((0, 1)) == 1


def test_a_promoted_trial_continues_its_own_run_from_its_last_round():
    store = job_store(n_trials=3)
    handed = [claim(store, s) for s in range(3)]
    for h, loss in zip(handed, (0.5, 2.0, 3.0), strict=True):
        deliver(store, h, loss=loss)
    run_id = tuning.trial_run_id(JOB, 0)
    state = {"run_id": run_id, "round": 3, "params_key": layout.params_key(run_id, 3), "done": True,
             "reason": "max_epochs", "loss": 1.0, "grad_norm": 0.1, "handover": False}  # fmt: skip
    store.documents[layout.round_key(run_id, 2)] = {"round": 2, "state": state}
    promoted = claim(store, 0, seq=1)
    assert promoted["name"] == f"{run_id}-rung1"
    assert promoted["input"]["train"] == {**state, "done": False, "reason": None}
    assert promoted["input"]["request"]["hyperparameters"]["max_epochs"] == 9


def test_a_failed_trial_is_a_result_with_its_reason_and_an_infinite_loss():
    store = job_store(n_trials=3)
    handed = claim(store, 0)
    cause = json.dumps({"Error": "ValueError", "Cause": json.dumps({"errorType": "InvalidInput", "errorMessage": "x"})})
    deliver(store, handed, failure={"Error": "States.TaskFailed", "Cause": cause})
    result = store.documents[layout.tuning_result_key(JOB, 0, 0)]
    assert (result["status"], result["reason"]) == ("failed", "ValueError: x")
    record, claims = store.documents[layout.tuning_job_key(JOB)], store.documents[layout.tuning_claims_key(JOB)]
    board = tuning.leaderboard(record, claims, {(0, 0): result}, finished=False)
    assert [(e["trial"], e["status"]) for e in board] == [(0, "failed"), (1, "pending"), (2, "pending")]
    assert board[0]["stop_reason"] == "ValueError: x"


def test_a_trial_with_a_non_finite_validation_loss_is_recorded_diverged():
    store = job_store()
    handed = claim(store, 0)
    deliver(store, handed, loss=None)
    result = store.documents[layout.tuning_result_key(JOB, 0, 0)]
    assert (result["status"], result["stop_reason"]) == ("diverged", "diverged")
    assert result["reason"] == "the validation loss is not finite after 3 epochs"


def test_a_trial_whose_run_diverged_is_stopped_early_not_failed():
    store = job_store(n_trials=3)
    handed = claim(store, 0)
    message = "diverged at round 0; lower learning_rate (was 0.02)"
    child = {
        "Error": "TrainingDiverged",
        "Cause": json.dumps({"errorType": "TrainingDiverged", "errorMessage": message}),
    }
    deliver(store, handed, failure={"Error": "States.TaskFailed", "Cause": json.dumps(child)})
    result = store.documents[layout.tuning_result_key(JOB, 0, 0)]
    assert (result["status"], result["stop_reason"], result["reason"]) == ("diverged", "diverged", message)
    assert "error" not in result
    record, claims = store.documents[layout.tuning_job_key(JOB)], store.documents[layout.tuning_claims_key(JOB)]
    board = tuning.leaderboard(record, claims, {(0, 0): result}, finished=False)
    entry = next(e for e in board if e["trial"] == 0)
    assert (entry["status"], entry["stop_reason"], entry["validation_loss"]) == ("stopped_early", "diverged", None)
    assert entry["history"] == [
        {"rung": 0, "epochs": 0, "validation_loss": None, "validation_metric": None, "stop_reason": "diverged"}
    ]


def test_when_every_trial_diverged_finalize_names_the_reason():
    store = job_store(n_trials=2)
    message = "diverged at round 0; lower learning_rate (was 0.3)"
    child = {
        "Error": "TrainingDiverged",
        "Cause": json.dumps({"errorType": "TrainingDiverged", "errorMessage": message}),
    }
    for slot in range(2):
        deliver(store, claim(store, slot), failure={"Error": "States.TaskFailed", "Cause": json.dumps(child)})
    assert claim(store, 0, seq=1)["action"] == "done"
    with pytest.raises(tuning.AllTrialsFailed) as err:
        tuning.finalize(store, tuning.FinalizeTask(action="finalize", job_id=JOB))
    assert str(err.value) == f"every trial of tuning job {JOB} failed: {message}"


def test_when_every_trial_failed_finalize_names_the_reasons():
    store = job_store(n_trials=2)
    for slot in range(2):
        deliver(store, claim(store, slot), failure={"Error": "States.Timeout", "Cause": "too slow"})
    assert claim(store, 0, seq=1)["action"] == "done"
    with pytest.raises(tuning.AllTrialsFailed) as err:
        tuning.finalize(store, tuning.FinalizeTask(action="finalize", job_id=JOB))
    assert str(err.value) == f"every trial of tuning job {JOB} failed: States.Timeout: too slow"


def run_to_the_end(store: FakeStore) -> None:
    """Slots 0 and 1 take jobs until done, each result's loss the trial number (trial 0 is the best)."""
    seq = {0: 0, 1: 0}
    for _ in range(20):
        for slot in (0, 1):
            handed = claim(store, slot, seq[slot])
            if handed["action"] != "run":
                continue
            plant_last_round(store, handed["trial"])
            seq[slot] = deliver(store, handed, loss=float(handed["trial"]) + 0.1 * handed["rung"])["seq"]


def test_finalize_registers_the_best_trial_with_the_search_history():
    store = job_store(n_trials=3)
    run_to_the_end(store)
    evaluate = tuning.finalize(store, tuning.FinalizeTask(action="finalize", job_id=JOB))
    assert evaluate["run_id"] == tuning.trial_run_id(JOB, 0)
    assert evaluate["request"]["trial"] is False
    assert evaluate["request"]["hyperparameters"]["max_epochs"] == 27
    assert evaluate["train"]["done"] is True
    search = evaluate["tuning"]["search"]
    assert [(s["trial"], s["rung"]) for s in search] == [(0, 0), (0, 1), (0, 2), (1, 0), (2, 0)]
    assert (evaluate["tuning"]["trial"], evaluate["tuning"]["rung"]) == (0, 2)


@pytest.mark.parametrize(
    ("production", "warnings", "promoted", "reason"),
    [
        ({"version": 4}, [], True, "promoted to production: it beats the trivial baseline and any previous "
         "production version"),
        ({"version": 2}, [], False, "not promoted: its test metrics do not beat production version 2"),
        (None, ["worse than the trivial baseline: ..."], False, "worse than the trivial baseline: ..."),
    ],
)  # fmt: skip
def test_the_summary_says_whether_the_model_was_promoted_and_why(production, warnings, promoted, reason):
    store = job_store(n_trials=3)
    run_to_the_end(store)
    registered = {"model_name": "m", "version": 4, "warnings": warnings}
    costs = {tuning.trial_run_id(JOB, t): 0.001 * (t + 1) for t in range(3)}
    task = tuning.FinishTask(action="finish", job_id=JOB, registered=registered)
    tuning.finish(store, task, production, (costs, 12.5))
    summary = store.documents[layout.tuning_summary_key(JOB)]
    assert summary["model"] == {"model_name": "m", "version": 4, "promoted": promoted, "reason": reason}
    assert summary["cost_usd"] == pytest.approx(0.006)
    assert summary["worker_seconds"] == 12.5
    assert [(e["trial"], e["status"]) for e in summary["leaderboard"]] == [
        (0, "completed"),
        (1, "stopped_early"),
        (2, "stopped_early"),
    ]
    assert summary["early_stopped_share"] == pytest.approx(0.6667)
    assert summary["best"]["trial"] == 0
    assert summary["leaderboard"][1]["stop_reason"] == "successive halving: not in the top 1/3 at rung 0 (3 epochs)"


def test_an_unknown_job_is_not_found():
    with pytest.raises(tuning.NotFoundError, match="tuning job 'tune-nope' does not exist"):
        tuning.describe(FakeStore(), None, "arn", "tune-nope")


def validation_task(theta: np.ndarray) -> tuple[FakeStore, EvaluateTask]:
    """A linear regression y = 2 x1 - x2 + 1 whose final parameters are ``theta`` (x1, x2, intercept)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 2))
    block = np.column_stack([X, 2 * X[:, 0] - X[:, 1] + 1]).astype("float32")
    store = FakeStore(arrays={"processed/r/validation.npy": block})
    store.put_arrays("runs/r/params/round-00004.npz", {"theta": theta, "layout": np.asarray([[3, 1]])})
    task = EvaluateTask.model_validate(
        {
            "run_id": "run-000000000001",
            "request": {**PREPARE, "hyperparameters": {"model": "linear_regression", "max_epochs": 9}},
            "data": {
                **DATA,
                "run_id": "r",
                "manifest_key": "m",
                "shards_key": "s",
                "train_rows": 1,
                "test_rows": 1,
                "validation": {"key": "processed/r/validation.npy", "rows": 50},
            },
            "train": {
                "run_id": "run-000000000001",
                "round": 4,
                "params_key": "runs/r/params/round-00004.npz",
                "done": True,
                "reason": "max_epochs",
            },
        }
    )
    return store, task


def test_a_trial_is_evaluated_on_its_validation_split_and_writes_nothing():
    store, task = validation_task(np.array([2.0, -1.0, 1.0]))
    result = evaluation.validate(store, task)
    assert result["validation_loss"] == pytest.approx(0.0, abs=1e-9)
    assert result["validation_metric"] == pytest.approx(1.0)
    assert (result["validation_rows"], result["rounds"], result["stop_reason"]) == (50, 4, "max_epochs")
    assert sum(store.writes.values()) == 1  # the planted parameters only


def test_a_trial_s_validation_loss_comes_with_its_standard_error():
    store, task = validation_task(np.array([2.0, -1.0, 0.5]))  # every prediction 0.5 short: no spread at all
    result = evaluation.validate(store, task)
    assert result["validation_loss"] == pytest.approx(0.25)
    assert result["validation_loss_se"] == pytest.approx(0.0, abs=1e-6)
    store, task = validation_task(np.array([2.5, -1.0, 1.0]))  # each row off by 0.5 x1
    x1 = np.random.default_rng(0).normal(size=(50, 2))[:, 0].astype("float32").astype("float64")
    squared = (0.5 * x1) ** 2
    result = evaluation.validate(store, task)
    assert result["validation_loss"] == pytest.approx(squared.mean(), rel=1e-6)
    assert result["validation_loss_se"] == pytest.approx(squared.std(ddof=1) / np.sqrt(50), rel=1e-6)


def test_finalize_registers_the_simplest_trial_within_one_standard_error():
    store = job_store(n_trials=2)
    store.documents[layout.tuning_job_key(JOB)].update(trials=[TRIALS[1], TRIALS[0]], rungs=[3])
    record_both(store, {0: (1.0, 0.2), 1: (1.1, 0.0)})  # the network's loss is lower, by less than its standard error
    evaluate = tuning.finalize(store, tuning.FinalizeTask(action="finalize", job_id=JOB))
    assert (evaluate["run_id"], evaluate["tuning"]["trial"]) == (tuning.trial_run_id(JOB, 1), 1)
    assert evaluate["tuning"]["selected_because"] == (
        "the simplest trial within one standard error (0.2) of the lowest validation loss (1, trial 0)"
    )
    board = tuning.leaderboard(
        store.documents[layout.tuning_job_key(JOB)],
        store.documents[layout.tuning_claims_key(JOB)],
        tuning._results(store, JOB),
        finished=True,
    )
    assert [(e["trial"], e["validation_loss_se"]) for e in board] == [(0, 0.2), (1, 0.0)]  # ranked by loss still


def small_job(outputs: dict[int, tuple[float, float]]) -> FakeStore:
    """A finished job of a network (trial 0) and a linear model (trial 1), one rung of 3 epochs, whose prepared data
    is 150 rows of a linear target (2 shards of 60 rows, 30 validation rows); ``outputs``: each trial's recorded
    validation (loss, standard error)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 3))
    rows = np.column_stack([X, X @ np.array([1.0, -2.0, 0.5]) + 1 + 0.5 * rng.normal(size=150)]).astype("float32")
    keys = [layout.shard_key(JOB, 0), layout.shard_key(JOB, 1), layout.held_out_key(JOB, "validation")]
    store = job_store(n_trials=2)
    store.arrays.update({keys[0]: rows[:60], keys[1]: rows[60:120], keys[2]: rows[120:]})
    shards = [{"index": i, "key": keys[i], "rows": 60} for i in (0, 1)]
    store.documents[layout.tuning_data_key(JOB)] = {**DATA, "shards": shards, "validation": {"key": keys[2],
                                                                                             "rows": 30}}  # fmt: skip
    store.documents[layout.tuning_job_key(JOB)].update(trials=[TRIALS[1], TRIALS[0]], rungs=[3])
    record_both(store, outputs)
    return store


def record_both(store: FakeStore, outputs: dict[int, tuple[float, float]]) -> None:
    """Two slots claim trials 0 and 1 at rung 0 and record ``outputs``: each trial's validation (loss, standard
    error) after 3 epochs."""
    for slot in (0, 1):
        handed = claim(store, slot)
        plant_last_round(store, handed["trial"])
        loss, se = outputs[handed["trial"]]
        output = {"validation_loss": loss, "validation_loss_se": se, "validation_metric": 0.5, "rounds": 3,
                  "stop_reason": "max_epochs"}  # fmt: skip
        task = tuning.RecordTask(
            action="record", job_id=JOB, slot=slot, seq=handed["seq"], trial=handed["trial"], rung=0, output=output
        )
        assert tuning.record(store, task)["recorded"] is True


def test_on_a_small_data_set_finalize_chooses_by_cross_validation_and_writes_only_its_choice():
    store = small_job({0: (0.5, 0.01), 1: (1.0, 0.01)})  # the validation split favours the network by far
    before = dict(store.writes)
    evaluate = tuning.finalize(store, tuning.FinalizeTask(action="finalize", job_id=JOB))
    assert {k for k in store.writes if store.writes[k] != before.get(k)} == {layout.tuning_selection_key(JOB)}
    assert (evaluate["run_id"], evaluate["tuning"]["trial"]) == (tuning.trial_run_id(JOB, 1), 1)  # the linear model
    figures = evaluate["tuning"]["cross_validation"]
    assert [f["trial"] for f in figures] == [0, 1]
    network, linear = figures
    assert linear["cv_loss"] < network["cv_loss"] and linear["cv_metric"] > 0.8
    assert evaluate["tuning"]["selected_because"] == (
        f"the lowest 5-fold cross-validated loss ({linear['cv_loss']:.6g}) of the 2 finalists"
    )
    chosen = store.documents[layout.tuning_selection_key(JOB)]
    assert (chosen["trial"], chosen["cross_validation"], chosen["validation_loss"]) == (1, figures, 1.0)
    assert chosen["cross_validation_seconds"] > 0  # its cost, for the summary's best and the benchmark


def test_a_retried_finalize_and_finish_use_the_stored_choice():
    store = small_job({0: (0.5, 0.01), 1: (1.0, 0.01)})
    first = tuning.finalize(store, tuning.FinalizeTask(action="finalize", job_id=JOB))
    for key in [k for k in store.arrays if k.startswith("processed/")]:
        del store.arrays[key]  # a retry would fail if it cross-validated again
    assert tuning.finalize(store, tuning.FinalizeTask(action="finalize", job_id=JOB)) == first
    registered = {"model_name": "m", "version": 1, "warnings": []}
    tuning.finish(store, tuning.FinishTask(action="finish", job_id=JOB, registered=registered), None, ({}, 0.0))
    best = store.documents[layout.tuning_summary_key(JOB)]["best"]
    assert best == store.documents[layout.tuning_selection_key(JOB)] and best["trial"] == 1


def test_above_the_row_threshold_the_validation_split_rule_stands(monkeypatch):
    monkeypatch.setattr(crossval, "CV_MAX_ROWS", 149)  # the job has 150 training + validation rows
    store = small_job({0: (0.5, 0.01), 1: (1.0, 0.01)})
    evaluate = tuning.finalize(store, tuning.FinalizeTask(action="finalize", job_id=JOB))
    assert evaluate["tuning"]["trial"] == 0 and "cross_validation" not in evaluate["tuning"]
    assert evaluate["tuning"]["selected_because"] == "the lowest validation loss (0.5)"


def test_when_cross_validation_would_not_fit_the_time_left_the_validation_split_rule_chooses_and_says_so():
    store = small_job({0: (0.5, 0.01), 1: (1.0, 0.01)})
    task = tuning.FinalizeTask(action="finalize", job_id=JOB)
    evaluate = tuning.finalize(store, task, seconds_left=lambda: crossval.RESERVE_SECONDS - 1)
    assert evaluate["tuning"]["trial"] == 0 and "cross_validation" not in evaluate["tuning"]
    assert evaluate["tuning"]["selected_because"] == (
        "the lowest validation loss (0.5); cross-validation did not fit: 59 s left of the invocation, fold runs take "
        "up to 0 s"
    )
    assert store.documents[layout.tuning_selection_key(JOB)]["trial"] == 0  # a retry keeps the choice made


def test_a_single_sync_finalist_is_not_cross_validated():
    store = small_job({0: (0.5, 0.01), 1: (1.0, 0.01)})
    record = store.documents[layout.tuning_job_key(JOB)]
    record["trials"] = [TRIALS[1], TRIALS[2]]  # a network and an async linear model
    evaluate = tuning.finalize(store, tuning.FinalizeTask(action="finalize", job_id=JOB))
    assert evaluate["tuning"]["trial"] == 0 and "cross_validation" not in evaluate["tuning"]


def test_a_diverged_trial_has_no_validation_loss():
    store, task = validation_task(np.array([np.inf, -1.0, 1.0]))
    result = evaluation.validate(store, task)
    assert (result["validation_loss"], result["validation_metric"]) == (None, None)


@pytest.mark.parametrize(
    "name",
    ["tuning_steps_start", "tuning_steps_next", "tuning_steps_record", "tuning_steps_finalize", "tuning_steps_finish"],
)
def test_the_committed_events_are_tasks_of_the_workflow(name):
    task = TypeAdapter(Annotated[tuning.TuningTask, Field(discriminator="action")]).validate_python(load_event(name))
    assert task.job_id == "tune-0123456789ab"


def test_the_committed_api_event_is_a_valid_tuning_request():
    request = TuningRequest.model_validate_json(load_event("tuning")["body"])
    assert (request.max_trials, request.max_parallel_trials) == (4, 2)


class FakeSfn:
    """Step Functions as the tuning API calls it: executions by ARN with a status and start date."""

    def __init__(self, executions: dict[str, dict]):
        self.executions = executions
        self.stopped: list[str] = []

    def describe_execution(self, executionArn):
        if executionArn not in self.executions:
            raise tuning.NotFoundError(executionArn)
        return {"executionArn": executionArn, **self.executions[executionArn]}

    def stop_execution(self, executionArn, error, cause):
        self.stopped.append(executionArn)
        self.executions[executionArn]["status"] = "ABORTED"

    def get_paginator(self, name):
        executions = self.executions

        class Pages:
            def paginate(self, stateMachineArn):
                prefix = stateMachineArn.replace(":stateMachine:", ":execution:") + ":"
                listed = [
                    {"name": arn.removeprefix(prefix), "executionArn": arn, **e}
                    for arn, e in executions.items()
                    if arn.startswith(prefix)
                ]
                return [{"executions": sorted(listed, key=lambda e: e["startDate"], reverse=True)}]

        return Pages()


TUNING_ARN = "arn:aws:states:us-east-1:1:stateMachine:tuning"
TRAINING_ARN = "arn:aws:states:us-east-1:1:stateMachine:training"


def test_stopping_a_job_stops_its_running_trials_only():
    store = job_store(n_trials=3)
    first, second = claim(store, 0), claim(store, 1)
    deliver(store, first, loss=1.0)  # trial 0 has ended; trial 1 is running
    when = datetime(2026, 1, 1, tzinfo=UTC)
    job_arn = f"{TUNING_ARN.replace(':stateMachine:', ':execution:')}:{JOB}"
    trial_arn = f"{TRAINING_ARN.replace(':stateMachine:', ':execution:')}:{second['name']}"
    sfn = FakeSfn(
        {job_arn: {"status": "RUNNING", "startDate": when}, trial_arn: {"status": "RUNNING", "startDate": when}}
    )
    assert tuning.stop(store, sfn, TUNING_ARN, TRAINING_ARN, JOB) == {"job_id": JOB, "status": "ABORTED"}
    assert sfn.stopped == [job_arn, trial_arn]
    with pytest.raises(
        tuning.ConflictError, match=f"^tuning job '{JOB}' is ABORTED: only a RUNNING job can be stopped"
    ):
        tuning.stop(store, sfn, TUNING_ARN, TRAINING_ARN, JOB)


def test_jobs_are_listed_newest_first_a_page_at_a_time():
    store, executions = FakeStore(), {}
    for i in range(3):
        job_id = f"tune-00000000000{i}"
        record = {"task": "binary", "metric": "accuracy", "request": {"model_name": f"m{i}"}}
        store.documents[layout.tuning_job_key(job_id)] = record
        arn = f"{TUNING_ARN.replace(':stateMachine:', ':execution:')}:{job_id}"
        executions[arn] = {"status": "SUCCEEDED", "startDate": datetime(2026, 1, 1 + i, tzinfo=UTC)}
    store.documents[layout.tuning_summary_key("tune-000000000002")] = {"best": {"validation_metric": 0.9}}
    sfn = FakeSfn(executions)
    first = tuning.list_jobs(store, sfn, TUNING_ARN, limit=2)
    assert [j["job_id"] for j in first["jobs"]] == ["tune-000000000002", "tune-000000000001"]
    assert first["jobs"][0]["best_validation_metric"] == 0.9 and first["jobs"][1]["best_validation_metric"] is None
    second = tuning.list_jobs(store, sfn, TUNING_ARN, limit=2, next_token=first["next"])
    assert [j["job_id"] for j in second["jobs"]] == ["tune-000000000000"] and second["next"] is None
    with pytest.raises(tuning.InvalidInput, match="next is not a page token"):
        tuning.list_jobs(store, sfn, TUNING_ARN, next_token="bogus")


def test_a_trial_gets_the_job_s_data_with_its_own_model_s_output_count():
    store = job_store()
    store.documents[layout.tuning_data_key(JOB)] = {**DATA, "classes": ["no", "yes"], "n_outputs": 1}
    record = store.documents[layout.tuning_job_key(JOB)]
    record["trials"] = [
        {"mode": "sync", "hyperparameters": {"model": "logistic_regression"}},
        {"mode": "sync", "hyperparameters": {"model": "mlp_classifier", "hidden_layers": [4]}},
    ]
    outputs = [tuning.trial_input(store, record, JOB, t, 0)["data"]["n_outputs"] for t in range(2)]
    assert outputs == [1, 2]  # one logistic output, a network's softmax over the two classes


# -- free promotions: a trial that stopped on its own is promoted without a run ----------------------------------
def deliver_settled(store, handed, loss, reason="solved", rounds=1):
    output = {"validation_loss": loss, "validation_metric": 0.9, "rounds": rounds, "stop_reason": reason}
    task = tuning.RecordTask(
        action="record", job_id=JOB, slot=handed["slot"], seq=handed["seq"], trial=handed["trial"],
        rung=handed["rung"], output=output,
    )  # fmt: skip
    return tuning.record(store, task)


def claimed(store) -> list[tuple[int, int, bool]]:
    return [
        (c["trial"], c["rung"], bool(c.get("free"))) for c in store.documents[layout.tuning_claims_key(JOB)]["jobs"]
    ]


@pytest.mark.parametrize("reason", ["solved", "converged", "early_stopping"])
def test_a_trial_that_stopped_on_its_own_is_promoted_without_a_run(reason):
    store = job_store(n_trials=3)
    handed = [claim(store, s) for s in range(3)]
    deliver_settled(store, handed[0], 0.5, reason=reason, rounds=2)
    deliver(store, handed[1], loss=2.0)
    deliver(store, handed[2], loss=3.0)
    # ASHA promotes trial 0 to rung 1, then (the last rung has no result) to rung 2: both recorded as rung 0 ended,
    # no training execution handed out; then the search is done
    assert claim(store, 0, seq=1) == {"job_id": JOB, "slot": 0, "seq": 1, "action": "done"}
    assert claimed(store) == [(0, 0, False), (1, 0, False), (2, 0, False), (0, 1, True), (0, 2, True)]
    for rung in (1, 2):
        result = store.documents[layout.tuning_result_key(JOB, 0, rung)]
        shown = (result["rung"], result["status"], result["epochs"], result["stop_reason"])
        assert shown == (rung, "completed", 2, reason)
        assert (result["validation_loss"], result["free"]) == (0.5, True)
        assert store.writes[layout.tuning_result_key(JOB, 0, rung)] == 1
    assert claim(store, 0, seq=1)["action"] == "done"  # retried: no second claim, no second result
    assert len(claimed(store)) == 5
    record, claims = store.documents[layout.tuning_job_key(JOB)], store.documents[layout.tuning_claims_key(JOB)]
    board = tuning.leaderboard(record, claims, tuning._results(store, JOB), finished=True)
    assert (board[0]["trial"], board[0]["rung"], board[0]["epochs"]) == (0, 2, 2)  # the epochs it really trained
    assert (board[0]["status"], board[0]["stop_reason"]) == ("completed", reason)


def test_a_trial_stopped_at_its_rung_s_budget_is_promoted_to_a_run():
    store = job_store(n_trials=3)
    handed = [claim(store, s) for s in range(3)]
    deliver_settled(store, handed[0], 0.5, reason="max_epochs", rounds=3)
    deliver(store, handed[1], loss=2.0)
    deliver(store, handed[2], loss=3.0)
    plant_last_round(store, 0)
    promoted = claim(store, 0, seq=1)
    assert (promoted["action"], promoted["trial"], promoted["rung"]) == ("run", 0, 1)
    assert claimed(store)[-1] == (0, 1, False)
    assert layout.tuning_result_key(JOB, 0, 1) not in store.documents


def test_a_free_promotion_interrupted_before_its_result_is_recorded_by_the_next_call():
    store = job_store(n_trials=3)
    handed = [claim(store, s) for s in range(3)]
    deliver_settled(store, handed[0], 0.5)
    deliver(store, handed[1], loss=2.0)
    deliver(store, handed[2], loss=3.0)
    original = store.put_json
    key = layout.tuning_result_key(JOB, 0, 1)

    def crash_once(k, doc, *, if_absent=False, if_match=None):
        if k == key and not store.writes[k]:
            store.put_json = original  # type: ignore[method-assign]
            raise TimeoutError("the Lambda timed out")
        return original(k, doc, if_absent=if_absent, if_match=if_match)

    store.put_json = crash_once  # type: ignore[method-assign]
    with pytest.raises(TimeoutError):
        claim(store, 1, seq=1)
    assert claimed(store)[-1] == (0, 1, True) and key not in store.documents  # claimed, not yet recorded
    assert claim(store, 1, seq=1)["action"] == "done"  # the retry records it, and ASHA goes on
    assert store.documents[key]["validation_loss"] == 0.5 and store.writes[key] == 1
    assert claimed(store).count((0, 1, True)) == 1


def test_a_delivery_for_a_free_promotion_is_not_recorded():
    store = job_store(n_trials=3)
    handed = [claim(store, s) for s in range(3)]
    deliver_settled(store, handed[0], 0.5)
    deliver(store, handed[1], loss=2.0)
    deliver(store, handed[2], loss=3.0)
    claim(store, 0, seq=1)
    store.documents.pop(layout.tuning_result_key(JOB, 0, 2))  # as if its result were not written yet
    stray = {"slot": 0, "seq": 1, "trial": 0, "rung": 2}
    assert deliver(store, stray, loss=0.01)["recorded"] is False
    assert layout.tuning_result_key(JOB, 0, 2) not in store.documents


def test_stopping_a_job_leaves_free_promotions_alone():
    store = job_store(n_trials=4)
    handed = [claim(store, s) for s in range(4)]
    deliver_settled(store, handed[0], 0.5)
    deliver(store, handed[1], loss=2.0)
    deliver(store, handed[2], loss=3.0)
    assert claim(store, 0, seq=1)["action"] == "wait"  # trial 0 promoted free to rung 1; trial 3 is running
    assert claimed(store)[-1] == (0, 1, True)
    store.documents.pop(layout.tuning_result_key(JOB, 0, 1))  # as if its result were not written yet
    when = datetime(2026, 1, 1, tzinfo=UTC)
    job_arn = f"{TUNING_ARN.replace(':stateMachine:', ':execution:')}:{JOB}"
    sfn = FakeSfn({job_arn: {"status": "RUNNING", "startDate": when}})
    described: list[str] = []
    original = sfn.describe_execution

    def describe(executionArn):
        described.append(executionArn.rsplit(":", 1)[1])
        return original(executionArn)

    sfn.describe_execution = describe  # type: ignore[method-assign]
    tuning.stop(store, sfn, TUNING_ARN, TRAINING_ARN, JOB)
    assert described == [JOB, handed[3]["name"]]  # the job, then the one trial execution that may be running


# -- the leaderboard's per-trial history ------------------------------------------------------------------------
def test_each_leaderboard_entry_has_its_history_per_rung():
    store = job_store(n_trials=3)
    handed = [claim(store, s) for s in range(3)]
    deliver(store, handed[0], loss=0.5)
    deliver(store, handed[1], loss=2.0)
    deliver(store, handed[2], failure={"Error": "States.Timeout", "Cause": "too slow"})
    plant_last_round(store, 0)
    promoted = claim(store, 0, seq=1)
    deliver_settled(store, promoted, 0.25, reason="converged", rounds=7)
    record, claims = store.documents[layout.tuning_job_key(JOB)], store.documents[layout.tuning_claims_key(JOB)]
    board = {e["trial"]: e for e in tuning.leaderboard(record, claims, tuning._results(store, JOB), finished=False)}
    assert board[0]["history"] == [
        {"rung": 0, "epochs": 3, "validation_loss": 0.5, "validation_metric": 0.5, "stop_reason": "x"},
        {"rung": 1, "epochs": 7, "validation_loss": 0.25, "validation_metric": 0.9, "stop_reason": "converged"},
    ]
    assert board[1]["history"] == [
        {"rung": 0, "epochs": 3, "validation_loss": 2.0, "validation_metric": 0.5, "stop_reason": "x"}
    ]
    assert board[2]["history"] == [
        {"rung": 0, "epochs": 0, "validation_loss": None, "validation_metric": None,
         "stop_reason": "States.Timeout: too slow"}
    ]  # fmt: skip


# -- a trial in the runs API ------------------------------------------------------------------------------------
def trial_executions(store) -> tuple[FakeSfn, str]:
    """The training state machine's executions of trial 1 (rung 0, ended) as the tuning job starts them."""
    record = store.documents[layout.tuning_job_key(JOB)]
    payload = tuning.trial_input(store, record, JOB, 1, 0)
    run_id = payload["run_id"]
    arn = f"{TRAINING_ARN.replace(':stateMachine:', ':execution:')}:{run_id}"
    when = datetime(2026, 1, 1, tzinfo=UTC)
    sfn = FakeSfn(
        {arn: {"status": "SUCCEEDED", "startDate": when, "stopDate": when, "input": json.dumps(payload),
               "output": json.dumps({"validation_loss": 0.3})}}
    )  # fmt: skip
    sfn.executions[arn]["name"] = run_id
    return sfn, run_id


def test_a_trial_run_is_described_with_its_request_and_its_tuning_job():
    from mlcore.steps import runs

    store = job_store()
    sfn, run_id = trial_executions(store)
    described = runs.describe(store, sfn, TRAINING_ARN, run_id)
    assert described["tuning"] == {"job_id": JOB, "trial": 1}
    assert described["request"]["hyperparameters"]["model"] == "mlp_regression"
    assert described["request"]["hyperparameters"]["hidden_layers"] == [8]
    assert "data" not in described["request"] and described["request"]["trial"] is True


def test_a_trial_run_is_listed_with_its_hyperparameters_mode_and_tuning_job():
    from mlcore.steps import runs

    store = job_store()
    sfn, run_id = trial_executions(store)
    listed = runs.list_runs(sfn, TRAINING_ARN, store=store)["runs"]
    assert [r["run_id"] for r in listed] == [run_id]
    assert listed[0]["hyperparameters"] == {"model": "mlp_regression", "optimizer": "momentum", "learning_rate": 0.1,
                                            "solver": "auto"}  # fmt: skip
    assert (listed[0]["mode"], listed[0]["tuning"]) == ("sync", {"job_id": JOB, "trial": 1})


def test_a_plain_run_is_not_marked_as_a_trial():
    from mlcore.steps import runs

    request, marked = runs.first_input(json.dumps(PREPARE))
    assert (request, marked) == (PREPARE, None)


def test_a_settled_trial_is_promoted_past_a_full_rung():
    started = [(t, 0) for t in range(6)] + [(3, 1), (0, 1)]  # rung 1 holds its ceil(6 / 3) = 2 jobs
    losses = {(t, 0): loss for t, loss in enumerate((0.5, 0.9, 0.8, 0.4, 0.1, 0.7))}
    assert asha.next_job(6, 3, 3, started, losses) == "wait"  # trial 4's result came too late for the cap
    assert asha.next_job(6, 3, 3, started, losses, settled=[(4, 0)]) == (4, 1)  # free: the cap does not apply
    started.append((4, 1))
    losses |= {(4, 1): 0.1}
    assert asha.next_job(6, 3, 3, started, losses, settled=[(4, 0), (4, 1)]) == "wait"  # promoted once only
