"""Tuning jobs: submit, orchestrate and report a hyperparameter search whose trials are training runs.

A job is one execution of the tuning state machine (``statemachines/tuning.asl.json``), named after the job id. It
prepares the data once (the Preprocess function, run id = the job id), then ``max_parallel_trials`` slots each loop:
``next_action`` hands the slot a (trial, rung) by compare-and-swap on the job's claims (so two slots never take the
same one, and a retried call gets the job it was handed before), the slot runs it as an execution of the training
state machine (``startExecution.sync:2``: the trial's run, its request with ``trial`` true and ``max_epochs``
the rung's budget; a promoted trial continues its own run from its last round), and ``record`` stores the result
create-only per (trial, rung), so a duplicate or late delivery never advances a trial twice. ASHA's decisions are
``mlcore.math.tuning.next_job``'s, a pure function of the claims and the results. ``finalize`` picks the best trial;
the Evaluate function registers its model (test metrics, search history in the lineage), promoted only if it beats
the trivial baseline and production; ``finish`` records the leaderboard and the trials' cost.

Keys: ``layout.tuning_*`` (record, data, claims, results, selection, summary).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import math
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field

from mlcore.infra import aws, layout
from mlcore.infra.errors import ConflictError, InvalidInput, NotFoundError
from mlcore.infra.storage import AlreadyExists, Conflict, NotFound, ObjectStore
from mlcore.math import cost, models
from mlcore.math import tuning as asha
from mlcore.steps import crossval, ingestion, problem, runs, tuning_plan
from mlcore.steps.schemas import Strict, TrainingRequest, TuningRequest
from mlcore.steps.training import TrainingDiverged

JOB_ID = re.compile(r"^tune-[0-9a-f]{12}$")
CLAIM_ATTEMPTS = 25  # compare-and-swap attempts of one call; every slot takes one job per trial run at most
STATUSES = {"RUNNING": "RUNNING", "SUCCEEDED": "SUCCEEDED", "FAILED": "FAILED", "TIMED_OUT": "FAILED"}
MAX_SEARCH_HISTORY = 400  # (trial, rung) results kept in the registered model's lineage
# a run that stopped for one of these reasons ends the same way with any larger budget: promoting it is free (its
# result is recorded at the next rung as it is, no training execution started)
SETTLED = ("converged", "solved", "early_stopping")


class AllTrialsFailed(InvalidInput):
    """Every trial of the job failed: there is no model to register (the job FAILS with the trials' reasons)."""


# -- the state machine's tasks ------------------------------------------------------------------------------
class StartTask(Strict):
    action: Literal["start"]
    job_id: str
    prepared: dict = Field(description="the Preprocess result for the job's run id: {run_id, request, data}")


class NextTask(Strict):
    action: Literal["next"]
    job_id: str
    slot: int = Field(ge=0)
    seq: int = Field(0, ge=0, description="how many jobs this slot took before: a retried call gets the same one")


class RecordTask(Strict):
    action: Literal["record"]
    job_id: str
    slot: int = Field(ge=0)
    seq: int = Field(ge=0)
    trial: int = Field(ge=0)
    rung: int = Field(ge=0)
    output: Any = Field(None, description="the trial execution's output (its validation result)")
    failure: dict | None = Field(None, description="the Catch's {Error, Cause} when the trial execution failed")


class FinalizeTask(Strict):
    action: Literal["finalize"]
    job_id: str


class FinishTask(Strict):
    action: Literal["finish"]
    job_id: str
    registered: dict = Field(description="what the Evaluate function returned for the best trial's model")


TuningTask = StartTask | NextTask | RecordTask | FinalizeTask | FinishTask


# -- ids ----------------------------------------------------------------------------------------------------
def new_job_id() -> str:
    return f"tune-{uuid.uuid4().hex[:12]}"


def trial_run_id(job_id: str, trial: int) -> str:
    """The training run of a trial: ``run-<12 hex>`` as every run (the runs API describes it), derived from the job
    and trial so that a retried slot starts the same run."""
    return "run-" + hashlib.sha256(f"{job_id}/{trial}".encode()).hexdigest()[:12]


def execution_name(run_id: str, rung: int) -> str:
    """The trial run's execution for ``rung``: the run id itself at rung 0, then ``<run>-rung<k>`` (a continuation
    of the same run, as ``runs`` names them)."""
    return run_id if rung == 0 else f"{run_id}-rung{rung}"


def _check_id(job_id: str) -> str:
    if not JOB_ID.match(job_id):
        raise NotFoundError(f"tuning job {job_id!r} does not exist")
    return job_id


# -- submission ---------------------------------------------------------------------------------------------
def preparation_request(request: TuningRequest, meta: dict) -> TrainingRequest:
    """The training request the job's data is prepared with (once, for every trial): the problem's linear model (a
    classifier's target is encoded as classes), the problem's column decisions added to the request's spec."""
    found = problem.infer_problem(meta, request.target, request.preprocessing)
    linear = {"mode": "sync", "hyperparameters": {"model": found.linear_model}}
    return tuning_plan.trial_request(request, linear, request.max_epochs, found).model_copy(update={"trial": True})


def submit(store: ObjectStore, sfn, state_machine_arn: str, request: TuningRequest, region: str) -> dict[str, Any]:
    """Validate the request against the data set (problem, search space, budget: ``tuning_plan.plan``; the data
    preparation: ``runs.check_feasible``), then write the job's record and start its execution. A refused request
    starts and writes nothing."""
    meta = ingestion.describe(store, request.dataset, request.version)
    request = request.model_copy(update={"version": meta["version"]})  # pin the version every trial trains on
    planned = tuning_plan.plan(request, meta, region)
    prepare = preparation_request(request, meta)
    runs.check_feasible(prepare, meta)
    job_id = new_job_id()
    record = {
        "job_id": job_id,
        "request": request.model_dump(mode="json"),
        "task": planned["task"],
        "metric": planned["metric"],
        "problem": planned["problem"],
        "search_space": planned["space"],
        "trials": planned["trials"],
        "rungs": planned["rungs"],
        "estimated_cost_usd": planned["estimated_cost_usd"],
        "prepare": prepare.model_dump(mode="json"),
        "started_at": datetime.now(UTC).isoformat(),
    }
    key = layout.tuning_job_key(job_id)
    store.put_json(key, record, if_absent=True)
    slots = list(range(min(request.max_parallel_trials, len(planned["trials"]))))
    execution = {"job_id": job_id, "prepare": {"run_id": job_id, "request": record["prepare"]}, "slots": slots}
    try:
        sfn.start_execution(stateMachineArn=state_machine_arn, name=job_id, input=json.dumps(execution))
    except Exception:
        store.delete([key])  # nothing half-written: a job without an execution never shows
        raise
    return {
        "job_id": job_id,
        "status": "RUNNING",
        "task": planned["task"],
        "metric": planned["metric"],
        "estimated_cost_usd": planned["estimated_cost_usd"],
        "max_trials": request.max_trials,
        "max_parallel_trials": request.max_parallel_trials,
        "rungs": planned["rungs"],
        "search_space": planned["space"],
        "decisions": planned["problem"].get("decisions", []),
    }


# -- the job's stored state ---------------------------------------------------------------------------------
def _record(store: ObjectStore, job_id: str) -> dict[str, Any]:
    try:
        return store.get_json(layout.tuning_job_key(_check_id(job_id)))
    except NotFound:
        raise NotFoundError(f"tuning job {job_id!r} does not exist") from None


def _claims(store: ObjectStore, job_id: str) -> tuple[dict[str, Any], str | None]:
    try:
        return store.get_json_tagged(layout.tuning_claims_key(job_id))
    except NotFound:
        return {"jobs": []}, None


def _results(store: ObjectStore, job_id: str) -> dict[tuple[int, int], dict[str, Any]]:
    found = {}
    for key in store.list_keys(layout.tuning_results_prefix(job_id)):
        result = store.get_json(key)
        found[(int(result["trial"]), int(result["rung"]))] = result
    return found


def _loss(result: dict[str, Any]) -> float:
    """ASHA's view of a result: its validation loss; a failed or diverged trial's is infinite."""
    loss = result.get("validation_loss")
    return float(loss) if result.get("status") == "completed" and loss is not None else math.inf


# -- Start ----------------------------------------------------------------------------------------------------
def start(store: ObjectStore, task: StartTask) -> dict[str, Any]:
    """Keep the data the job prepared (the Preprocess result) for the trials, and open the claims."""
    if "data" not in task.prepared:
        raise InvalidInput(
            "the data set is above the distributed-preparation threshold: a tuning job prepares its data in one "
            "Preprocess call; tune on a sample of it"
        )
    with_ids = _check_id(task.job_id)
    with contextlib.suppress(AlreadyExists):  # a retried call finds them written
        store.put_json(layout.tuning_data_key(with_ids), task.prepared["data"], if_absent=True)
    with contextlib.suppress(AlreadyExists):
        store.put_json(layout.tuning_claims_key(with_ids), {"jobs": []}, if_absent=True)
    return {"job_id": task.job_id}


# -- NextJob ----------------------------------------------------------------------------------------------------
def next_action(store: ObjectStore, task: NextTask) -> dict[str, Any]:
    """What slot ``task.slot`` does next: ``run`` a (trial, rung) (with the training execution's name and input),
    ``wait`` (trials are running whose results decide the next job) or ``done``. The job is claimed by
    compare-and-swap on the claims, so concurrent slots never take the same (trial, rung); a retried call (same slot
    and seq) gets the job it was handed before."""
    record = _record(store, task.job_id)
    n_trials, rungs = len(record["trials"]), list(record["rungs"])
    eta = int(record["request"]["reduction_factor"])
    lost = 0
    while True:  # ends: every pass claims a job, returns, or counts a lost compare-and-swap
        claims, etag = _claims(store, task.job_id)
        mine = [c for c in claims["jobs"] if c["slot"] == task.slot and c["seq"] == task.seq and not c.get("free")]
        if mine:
            job = mine[0]
            break
        results = _results(store, task.job_id)
        _settle_free(store, task.job_id, claims, results)
        started = [(int(c["trial"]), int(c["rung"])) for c in claims["jobs"]]
        losses = {k: _loss(v) for k, v in results.items()}
        settled = [k for k, v in results.items() if _settled(v)]
        decision = asha.next_job(n_trials, len(rungs), eta, started, losses, settled)
        if decision == "wait" or decision == "done":
            return {"job_id": task.job_id, "slot": task.slot, "seq": task.seq, "action": decision}
        trial, rung = decision
        job = {
            "trial": trial,
            "rung": rung,
            "slot": task.slot,
            "seq": task.seq,
            "run_id": trial_run_id(task.job_id, trial),
            "claimed_at": datetime.now(UTC).isoformat(),
        }
        if rung > 0 and (trial, rung - 1) in settled:
            job["free"] = True
        try:
            if etag is None:
                store.put_json(layout.tuning_claims_key(task.job_id), {"jobs": [job]}, if_absent=True)
            else:
                store.put_json(layout.tuning_claims_key(task.job_id), {"jobs": [*claims["jobs"], job]}, if_match=etag)
        except (Conflict, AlreadyExists):
            lost += 1  # another slot claimed first: decide again on what it wrote
            if lost >= CLAIM_ATTEMPTS:
                raise Conflict(f"slot {task.slot} lost {CLAIM_ATTEMPTS} claims in a row") from None
            continue
        if not job.get("free"):
            break
        _settle_free(store, task.job_id, {"jobs": [job]}, results)  # recorded without a run: ask ASHA again
    trial, rung = int(job["trial"]), int(job["rung"])
    return {
        "job_id": task.job_id,
        "slot": task.slot,
        "seq": task.seq,
        "action": "run",
        "trial": trial,
        "rung": rung,
        "name": execution_name(job["run_id"], rung),
        "input": trial_input(store, record, task.job_id, trial, rung),
    }


def _settled(result: dict[str, Any] | None) -> bool:
    """Whether a (trial, rung)'s result would come out the same at a larger budget: its run stopped on its own
    (``SETTLED``: converged, solved, early-stopped), not at the rung's epoch budget."""
    return result is not None and result.get("status") == "completed" and result.get("stop_reason") in SETTLED


def _settle_free(
    store: ObjectStore, job_id: str, claims: dict[str, Any], results: dict[tuple[int, int], dict[str, Any]]
) -> None:
    """Record the result of every free promotion among ``claims`` that has none yet (``results`` updated in place):
    the result at the rung below, as it is (the same epochs, loss, metric and stop reason), create-only. The claim
    is written first, so a call that stopped between the two writes has its result written by the next call."""
    for c in claims["jobs"]:
        trial, rung = int(c["trial"]), int(c["rung"])
        below = results.get((trial, rung - 1))
        if not c.get("free") or (trial, rung) in results or below is None:
            continue
        result = {
            **below,
            "rung": rung,
            "recorded_at": datetime.now(UTC).isoformat(),
            "free": True,  # promoted without a run: it had stopped on its own at the rung below
        }
        with contextlib.suppress(AlreadyExists):  # another slot settled it first: the same result
            store.put_json(layout.tuning_result_key(job_id, trial, rung), result, if_absent=True)
        results[(trial, rung)] = result


def trial_request(record: dict[str, Any], trial: int, rung: int, *, final: bool = False) -> TrainingRequest:
    """The training request of ``trial`` at ``rung``: the job's preparation request with the trial's mode and
    hyperparameters, ``max_epochs`` the rung's budget."""
    sampled = record["trials"][trial]
    hyperparameters = {**sampled["hyperparameters"], "max_epochs": int(record["rungs"][rung])}
    given = {**record["prepare"], "rounds_per_execution": None}  # the most that fit the trial's own mode
    return TrainingRequest.model_validate(
        {**given, "mode": sampled["mode"], "hyperparameters": hyperparameters, "trial": not final}
    )


def _trial_data(store: ObjectStore, job_id: str, model: str) -> dict[str, Any]:
    """The job's prepared data, its output count that of the trial's model (a binary target: one logistic output,
    two for a network)."""
    data = store.get_json(layout.tuning_data_key(job_id))
    return {**data, "n_outputs": models.n_outputs(model, len(data.get("classes") or []))}


def _last_state(store: ObjectStore, run_id: str) -> dict[str, Any]:
    keys = store.list_keys(layout.rounds_prefix(run_id))
    if not keys:
        raise NotFoundError(f"training run {run_id!r} has no round stored to continue from")
    return dict(store.get_json(keys[-1])["state"])


def trial_input(store: ObjectStore, record: dict[str, Any], job_id: str, trial: int, rung: int) -> dict[str, Any]:
    """The training execution's input: ``{run_id, request, data, tuning}`` at rung 0 (the training state machine
    then initializes the run's parameters on the job's data; ``tuning`` names the job and trial for the runs API); a
    promoted trial continues its own run from its last round, with ``train`` added, with the larger budget."""
    request = trial_request(record, trial, rung)
    run_id = trial_run_id(job_id, trial)
    payload: dict[str, Any] = {
        "run_id": run_id,
        "request": request.model_dump(mode="json"),
        "data": _trial_data(store, job_id, request.hyperparameters.model),
        "tuning": {"job_id": job_id, "trial": trial},  # the runs API marks the run as this job's trial
    }
    if rung > 0:
        payload["train"] = {**_last_state(store, run_id), "done": False, "reason": None, "handover": False}
    return payload


# -- RecordResult ---------------------------------------------------------------------------------------------
def _failure(failure: dict[str, Any]) -> tuple[str, str | None]:
    """A failed trial execution's error name and message: the child's own (its cause is the described child)."""
    error, cause = str(failure.get("Error") or "error"), failure.get("Cause")
    try:
        child = json.loads(cause) if isinstance(cause, str) else None
    except ValueError:
        child = None
    if isinstance(child, dict) and ("Error" in child or "Cause" in child):
        error, cause = str(child.get("Error") or error), child.get("Cause")
    return error, runs.failure_reason(cause if isinstance(cause, str) else None)


def record(store: ObjectStore, task: RecordTask) -> dict[str, Any]:
    """Store the (trial, rung)'s result create-only: a duplicate delivery finds it there and changes nothing; a
    result for a (trial, rung) that was never handed out (late, or from elsewhere) is not recorded. Returns the
    slot's next state (seq + 1)."""
    following = {"job_id": task.job_id, "slot": task.slot, "seq": task.seq + 1}
    claims, _ = _claims(store, _check_id(task.job_id))
    claim = next((c for c in claims["jobs"] if (c["trial"], c["rung"]) == (task.trial, task.rung)), None)
    if claim is None or claim.get("free"):  # never handed out to a run (a free promotion records itself)
        return {**following, "recorded": False}
    result: dict[str, Any] = {
        "trial": task.trial,
        "rung": task.rung,
        "run_id": claim["run_id"],
        "recorded_at": datetime.now(UTC).isoformat(),
    }
    output = json.loads(task.output) if isinstance(task.output, str) else task.output
    error, message = _failure(task.failure) if task.failure is not None else (None, None)
    if error == TrainingDiverged.__name__:  # a result, not a crash: the trial stops early
        result.update(status="diverged", stop_reason="diverged", reason=message or "the run diverged")
    elif error is not None:
        result.update(status="failed", reason=f"{error}: {message}" if message else error)
    elif not isinstance(output, dict) or "validation_loss" not in output:
        result.update(status="failed", reason="the trial's run returned no validation result")
    elif output.get("validation_loss") is None:
        epochs = output.get("rounds")
        result.update(status="diverged", reason=f"the validation loss is not finite after {epochs} epochs")
        result.update(epochs=epochs, stop_reason="diverged")
    else:
        result.update(
            status="completed",
            validation_loss=float(output["validation_loss"]),
            validation_loss_se=output.get("validation_loss_se"),
            validation_metric=output.get("validation_metric"),
            epochs=output.get("rounds"),
            stop_reason=output.get("stop_reason"),
        )
    try:
        store.put_json(layout.tuning_result_key(task.job_id, task.trial, task.rung), result, if_absent=True)
    except AlreadyExists:
        return {**following, "recorded": False}  # delivered twice: the first delivery stands
    return {**following, "recorded": True}


UNKNOWN_LOSS: dict[str, Any] = {"validation_loss": None, "validation_loss_se": None, "validation_metric": None}


# -- the leaderboard ------------------------------------------------------------------------------------------
def leaderboard(
    record: dict[str, Any],
    claims: dict[str, Any],
    results: dict[tuple[int, int], dict[str, Any]],
    *,
    finished: bool,
    trial_costs: dict[str, float] | None = None,
) -> list[dict[str, Any]]:
    """One entry per trial, best first (``mlcore.math.tuning.leaderboard_order``): the rung it reached, its latest
    validation loss and metric, and its status: pending (not started, or waiting for ASHA's decision), running,
    stopped_early (the job ended before promoting it, or its run diverged: stop_reason "diverged"), completed
    (trained to the last rung) or failed."""
    n_rungs, eta = len(record["rungs"]), int(record["request"]["reduction_factor"])
    claimed: dict[int, list[int]] = {}
    for c in claims["jobs"]:
        claimed.setdefault(int(c["trial"]), []).append(int(c["rung"]))
    entries = []
    for trial, sampled in enumerate(record["trials"]):
        run_id = trial_run_id(record["job_id"], trial)
        rungs = sorted(claimed.get(trial, []))
        entry: dict[str, Any] = {
            "trial": trial,
            "mode": sampled["mode"],
            "hyperparameters": sampled["hyperparameters"],
            "rung": rungs[-1] if rungs else 0,
            "epochs": 0,
            "validation_loss": None,
            "validation_loss_se": None,
            "validation_metric": None,
            "status": "pending",
            "stop_reason": None,
            "run_id": run_id if rungs else None,
            "cost_usd": (trial_costs or {}).get(run_id),
        }
        done = [results[(trial, r)] for r in rungs if (trial, r) in results]
        entry["history"] = [_history_point(r) for r in done]
        if done:
            last = done[-1]
            entry["epochs"] = last.get("epochs") or 0
            entry["validation_loss"] = last.get("validation_loss")
            entry["validation_loss_se"] = last.get("validation_loss_se")
            entry["validation_metric"] = last.get("validation_metric")
        top = results.get((trial, entry["rung"])) if rungs else None
        if not rungs:
            entry["stop_reason"] = "not started: the search ended first" if finished else None
        elif top is None:
            entry["status"] = "failed" if finished else "running"
            entry["stop_reason"] = "the job ended before the trial did" if finished else None
        elif top["status"] == "failed":
            entry.update(status="failed", stop_reason=top.get("reason"), **UNKNOWN_LOSS)
        elif top["status"] == "diverged":
            entry.update(status="stopped_early", stop_reason="diverged", **UNKNOWN_LOSS)
        elif entry["rung"] == n_rungs - 1:
            entry.update(status="completed", stop_reason=top.get("stop_reason"))
        elif finished:
            entry["status"] = "stopped_early"
            entry["stop_reason"] = (
                f"successive halving: not in the top 1/{eta} at rung {entry['rung']} ({entry['epochs']} epochs)"
            )
        entries.append(entry)
    return asha.leaderboard_order(entries)


def _history_point(result: dict[str, Any]) -> dict[str, Any]:
    """A trial's result at one rung, as its leaderboard entry's ``history`` shows it: the epochs its run reached
    (below the rung's budget when it stopped on its own), the validation loss and metric, the stop reason (a failed
    result's: its reason)."""
    failed = result.get("status") in ("failed", "diverged")
    return {
        "rung": int(result["rung"]),
        "epochs": result.get("epochs") or 0,
        "validation_loss": None if failed else result.get("validation_loss"),
        "validation_metric": None if failed else result.get("validation_metric"),
        "stop_reason": result.get("stop_reason") or result.get("reason") if failed else result.get("stop_reason"),
    }


def _best(board: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The trial to register (``mlcore.math.tuning.select``: the one-standard-error rule) and why; None when no
    trial has a validation loss."""
    first = board[0] if board else None
    if first is None or first["validation_loss"] is None or first["status"] == "failed":
        return None
    index, why = asha.select(board)
    chosen = board[index]
    keys = ("trial", "validation_loss", "validation_loss_se", "validation_metric", "hyperparameters", "mode")
    return {**{k: chosen[k] for k in keys}, "selected_because": why}


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _cross_validated(
    store: ObjectStore,
    record: dict[str, Any],
    board: list[dict[str, Any]],
    data: dict[str, Any],
    seconds_left: Callable[[], float] | None,
) -> dict[str, Any] | None:
    """The best trial by cross-validation (``crossval``): the finalists re-scored on ``FOLDS`` folds of the job's
    training + validation rows, each trained to the budget of the rung it reached, chosen by the one-standard-error
    rule on the cross-validated loss; with the finalists' figures. None when every finalist's fold runs diverged."""
    entries = crossval.finalists(board)
    trials = [(int(e["trial"]), trial_request(record, int(e["trial"]), int(e["rung"]))) for e in entries]
    prepare = TrainingRequest.model_validate(record["prepare"])
    started = time.perf_counter()
    scored = crossval.cross_validate(
        crossval.pooled_rows(store, data),
        [(trial, request.hyperparameters) for trial, request in trials],
        n_classes=len(data.get("classes") or []),
        n_shards=len(data["shards"]),
        validation_fraction=prepare.validation_fraction,
        seed=prepare.seed,
        run_prefix=str(record["job_id"]),
        seconds_left=seconds_left,
    )
    if not any(math.isfinite(s["cv_loss"]) for s in scored):
        return None
    ranked = [{**s, "hyperparameters": e["hyperparameters"]} for s, e in zip(scored, entries, strict=True)]
    index, why = asha.select_cross_validated(ranked, crossval.FOLDS)
    chosen = entries[index]
    keys = ("trial", "validation_loss", "validation_loss_se", "validation_metric", "hyperparameters", "mode")
    figures = [
        {"trial": s["trial"], "cv_loss": _finite(s["cv_loss"]), "cv_loss_se": _finite(s["cv_loss_se"]),
         "cv_metric": s["cv_metric"]}
        for s in scored
    ]  # fmt: skip
    seconds = round(time.perf_counter() - started, 3)
    return {**{k: chosen[k] for k in keys}, "selected_because": why, "cross_validation": figures,
            "cross_validation_seconds": seconds}  # fmt: skip


def selection(
    store: ObjectStore,
    job_id: str,
    record: dict[str, Any],
    board: list[dict[str, Any]],
    seconds_left: Callable[[], float] | None = None,
) -> dict[str, Any] | None:
    """The trial to register and why, chosen once and stored create-only (``layout.tuning_selection_key``), so that
    a retried finalize and ``finish`` use the same choice: by cross-validation when ``crossval.applies`` (a small data
    set, two sync finalists at least), else ``_best`` (the one-standard-error rule on the validation split; also when
    the cross-validation would not fit the invocation's ``seconds_left``, which ``selected_because`` then says). None
    (nothing stored) when no trial has a validation loss."""
    key = layout.tuning_selection_key(job_id)
    with contextlib.suppress(NotFound):
        return store.get_json(key)
    best = _best(board)
    if best is None:
        return None
    data = store.get_json(layout.tuning_data_key(job_id))
    if crossval.applies(data, board):
        try:
            best = _cross_validated(store, record, board, data, seconds_left) or best
        except crossval.OutOfTime as err:
            best = {**best, "selected_because": f"{best['selected_because']}; cross-validation did not fit: {err}"}
    try:
        store.put_json(key, best, if_absent=True)
    except AlreadyExists:  # a concurrent finalize stored its choice first: the same, seeded
        return store.get_json(key)
    return best


# -- Finalize -------------------------------------------------------------------------------------------------
def finalize(store: ObjectStore, task: FinalizeTask, seconds_left: Callable[[], float] | None = None) -> dict[str, Any]:
    """The Evaluate task that registers the best trial's model (``selection``): its run's last state, its request
    (``trial`` false, the epochs it reached) and the search history for the lineage. Every trial failed:
    AllTrialsFailed, naming the reasons (the job fails). ``seconds_left``: the invocation's remaining time."""
    record = _record(store, task.job_id)
    claims, _ = _claims(store, task.job_id)
    results = _results(store, task.job_id)
    board = leaderboard(record, claims, results, finished=True)
    best = selection(store, task.job_id, record, board, seconds_left)
    if best is None:
        reasons = sorted({str(r.get("reason")) for r in results.values() if r.get("status") in ("failed", "diverged")})
        raise AllTrialsFailed(f"every trial of tuning job {task.job_id} failed: {'; '.join(reasons)[:400]}")
    trial = int(best["trial"])
    rung = max(r for t, r in results if t == trial and results[(t, r)]["status"] == "completed")
    run_id = trial_run_id(task.job_id, trial)
    request = trial_request(record, trial, rung, final=True)
    history = [
        {
            "trial": r["trial"],
            "rung": r["rung"],
            "epochs": r.get("epochs") or 0,
            "budget": record["rungs"][r["rung"]],
            "status": r["status"],
            "validation_loss": r.get("validation_loss"),
            "validation_metric": r.get("validation_metric"),
        }
        for r in sorted(results.values(), key=lambda r: (r["trial"], r["rung"]))
    ][:MAX_SEARCH_HISTORY]
    return {
        "run_id": run_id,
        "request": request.model_dump(mode="json"),
        "data": _trial_data(store, task.job_id, request.hyperparameters.model),
        "train": _last_state(store, run_id),
        "tuning": {
            "job_id": task.job_id,
            "trial": trial,
            "rung": rung,
            "metric": record["metric"],
            "validation_loss": best["validation_loss"],
            "validation_metric": best["validation_metric"],
            "selected_because": best["selected_because"],
            **({"cross_validation": best["cross_validation"]} if "cross_validation" in best else {}),
            "rungs": record["rungs"],
            "trials": record["trials"],
            "search": history,
        },
    }


# -- Finish ---------------------------------------------------------------------------------------------------
def promotion(registered: dict[str, Any], production: dict[str, Any] | None) -> dict[str, Any]:
    """The job's ``model``: the registered version, whether it is production now, and why (or why not)."""
    version = int(registered["version"])
    promoted = production is not None and int(production.get("version", -1)) == version
    if promoted:
        reason = "promoted to production: it beats the trivial baseline and any previous production version"
    elif registered.get("warnings"):
        reason = str(registered["warnings"][0])
    else:
        current = production.get("version") if production else None
        reason = f"not promoted: its test metrics do not beat production version {current}"
    return {"model_name": registered["model_name"], "version": version, "promoted": promoted, "reason": reason}


def usage_of(
    store: ObjectStore, sfn, lam, training_arn: str, run_ids: list[str], region: str
) -> tuple[dict[str, float], float]:
    """Each trial run's cost (USD, ``runs.stored_usage``: measured once from its executions and stored) and the
    worker-seconds (billed Lambda time) of all of them."""
    prices = cost.price_table(region)
    costs, seconds = {}, 0.0
    for run_id in run_ids:
        used = runs.stored_usage(store, sfn, lam, training_arn, run_id)
        costs[run_id] = float(cost.cost(used, prices)["total"])
        seconds += sum(fn.billed_ms for fn in used.functions.values()) / 1000
    return costs, seconds


def finish(
    store: ObjectStore,
    task: FinishTask,
    production: dict[str, Any] | None,
    usage: tuple[dict[str, float], float],
) -> dict[str, Any]:
    """Write the finished job's summary: leaderboard, best trial, model, cost (the trials' usage summed)."""
    record = _record(store, task.job_id)
    claims, _ = _claims(store, task.job_id)
    results = _results(store, task.job_id)
    costs, worker_seconds = usage
    board = leaderboard(record, claims, results, finished=True, trial_costs=costs)
    started = [e for e in board if e["status"] != "pending"]
    summary = {
        "job_id": task.job_id,
        "ended_at": datetime.now(UTC).isoformat(),
        "leaderboard": board,
        "best": selection(store, task.job_id, record, board),
        "model": promotion(task.registered, production),
        "trial_costs": costs,
        "cost_usd": round(sum(costs.values()), 6),
        "worker_seconds": round(worker_seconds, 3),
        "early_stopped_share": (
            round(sum(e["status"] == "stopped_early" for e in started) / len(started), 4) if started else 0.0
        ),
    }
    store.put_json(layout.tuning_summary_key(task.job_id), summary)
    return {"job_id": task.job_id, "model": summary["model"]}


def trial_runs(store: ObjectStore, job_id: str) -> list[str]:
    """The training runs the job started, in trial order."""
    claims, _ = _claims(store, job_id)
    return sorted({str(c["run_id"]) for c in claims["jobs"]}, key=lambda r: r)


# -- the API --------------------------------------------------------------------------------------------------
def _execution(sfn, state_machine_arn: str, job_id: str) -> dict[str, Any]:
    with aws.missing_execution_is(f"tuning job {job_id!r} does not exist"):
        return sfn.describe_execution(executionArn=aws.execution_arn(state_machine_arn, _check_id(job_id)))


def describe(store: ObjectStore, sfn, state_machine_arn: str, job_id: str) -> dict[str, Any]:
    """Status, request, leaderboard (best first), best trial, registered model and cost of one job."""
    record = _record(store, job_id)
    execution = _execution(sfn, state_machine_arn, job_id)
    status = STATUSES.get(execution["status"], "ABORTED")
    try:
        summary = store.get_json(layout.tuning_summary_key(job_id))
    except NotFound:
        summary = {}
    claims, _ = _claims(store, job_id)
    finished = status != "RUNNING"
    board = summary.get("leaderboard") or leaderboard(record, claims, _results(store, job_id), finished=finished)
    result: dict[str, Any] = {
        "job_id": job_id,
        "status": status,
        "task": record["task"],
        "metric": record["metric"],
        "request": record["request"],
        "rungs": record["rungs"],
        "started_at": record["started_at"],
        "ended_at": execution["stopDate"].isoformat() if execution.get("stopDate") else None,
        "estimated_cost_usd": record["estimated_cost_usd"],
        "cost_usd": summary.get("cost_usd"),
        "early_stopped_share": summary.get("early_stopped_share"),
        "worker_seconds": summary.get("worker_seconds"),
        "leaderboard": board,
        "best": summary.get("best") if summary else _best(board),
        "model": summary.get("model"),
    }
    if status == "FAILED":
        result["error"] = {"type": execution.get("error"), "message": runs.failure_reason(execution.get("cause"))}
    return result


def _page_token(job: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(f"{job['started_at']}|{job['job_id']}".encode()).decode().rstrip("=")


def _after(token: str) -> tuple[str, str]:
    try:
        started_at, job_id = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode().split("|")
        datetime.fromisoformat(started_at)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("next is not a page token this API returned: pass the `next` of the previous page") from None
    if not JOB_ID.match(job_id):
        raise InvalidInput("next is not a page token this API returned: pass the `next` of the previous page")
    return started_at, job_id


def list_jobs(
    store: ObjectStore, sfn, state_machine_arn: str, limit: int = 50, next_token: str | None = None
) -> dict[str, Any]:
    """A page of tuning jobs, newest first; ``next`` names the following page (None on the last)."""
    after = _after(next_token) if next_token else None
    found = []
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=state_machine_arn):
        for e in page["executions"]:
            key = (e["startDate"].isoformat(), e["name"])
            if JOB_ID.match(e["name"]) and (after is None or key < after):
                found.append(e)
        if len(found) > limit:
            break
    found.sort(key=lambda e: (e["startDate"], e["name"]), reverse=True)
    jobs = []
    for e in found[:limit]:
        try:
            record = store.get_json(layout.tuning_job_key(e["name"]))
        except NotFound:
            continue
        try:
            best = (store.get_json(layout.tuning_summary_key(e["name"])).get("best") or {}).get("validation_metric")
        except NotFound:
            best = None
        jobs.append(
            {
                "job_id": e["name"],
                "status": STATUSES.get(e["status"], "ABORTED"),
                "task": record["task"],
                "metric": record["metric"],
                "model_name": record["request"]["model_name"],
                "best_validation_metric": best,
                "started_at": e["startDate"].isoformat(),
                "ended_at": e["stopDate"].isoformat() if e.get("stopDate") else None,
            }
        )
    token = _page_token(jobs[-1]) if len(found) > limit and jobs else None
    return {"jobs": jobs, "next": token}


def stop(store: ObjectStore, sfn, state_machine_arn: str, training_arn: str, job_id: str) -> dict[str, Any]:
    """Stop a running job: its execution, then the trial executions still running (their runs keep what they
    stored). A job that is not running is a conflict."""
    _record(store, job_id)
    execution = _execution(sfn, state_machine_arn, job_id)
    if execution["status"] != "RUNNING":
        status = STATUSES.get(execution["status"], "ABORTED")
        raise ConflictError(f"tuning job {job_id!r} is {status}: only a RUNNING job can be stopped")
    sfn.stop_execution(executionArn=execution["executionArn"], error="StoppedByUser", cause="stopped through the API")
    claims, _ = _claims(store, job_id)
    results = _results(store, job_id)
    for c in claims["jobs"]:
        if c.get("free") or (c["trial"], c["rung"]) in results:
            continue  # ended, or promoted without a run
        arn = aws.execution_arn(training_arn, execution_name(c["run_id"], int(c["rung"])))
        try:
            if sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
                sfn.stop_execution(executionArn=arn, error="StoppedByUser", cause=f"tuning job {job_id} stopped")
        except Exception:  # not started yet, or ended meanwhile: nothing to stop
            continue
    return {"job_id": job_id, "status": "ABORTED"}
