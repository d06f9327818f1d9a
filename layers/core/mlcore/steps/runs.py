"""Training runs: start the training workflow for a validated request and report its progress."""

from __future__ import annotations

import json
import math
import re
import uuid
from typing import Any

from mlcore.infra import aws, layout
from mlcore.infra.errors import NotFoundError
from mlcore.infra.storage import NotFound, ObjectStore
from mlcore.math import cost
from mlcore.steps import ingestion
from mlcore.steps.schemas import TrainingRequest
from mlcore.steps.training import training_curve

RUN_ID = re.compile(r"^run-[0-9a-f]{12}$")


def start(store: ObjectStore, sfn, state_machine_arn: str, request: TrainingRequest) -> dict[str, Any]:
    """Check the data set exists, then start one execution named after the new run id."""
    meta = ingestion.describe(store, request.dataset, request.version)
    request = request.model_copy(update={"version": meta["version"]})  # pin the version the run trains on
    run_id = f"run-{uuid.uuid4().hex[:12]}"
    sfn.start_execution(stateMachineArn=state_machine_arn, name=run_id, input=request.model_dump_json())
    return {"run_id": run_id, "status": "RUNNING", "dataset": request.dataset, "version": meta["version"]}


def _execution_arn(state_machine_arn: str, run_id: str) -> str:
    if not RUN_ID.match(run_id):
        raise NotFoundError(f"training run {run_id!r} does not exist")
    return aws.execution_arn(state_machine_arn, run_id)


def _executions(sfn, arn: str) -> list[dict[str, Any]]:
    """The descriptions of a run's executions: its first, then each it continued in (history limit)."""
    executions = [sfn.describe_execution(executionArn=arn)]
    for _ in range(1000):
        last = executions[-1]
        output = json.loads(last.get("output") or "{}") if last["status"] == "SUCCEEDED" else {}
        if not isinstance(output, dict) or "continued_as" not in output:
            break
        executions.append(sfn.describe_execution(executionArn=output["continued_as"]))
    return executions


def usage(sfn, lam, state_machine_arn: str, run_id: str) -> cost.Usage:
    """What a run did, from its execution history: Lambda invocations and billed milliseconds per
    step (task start to end), memory sizes from the functions' configuration, state transitions;
    S3 requests from the code's access pattern (cost.S3_REQUESTS)."""
    with aws.missing_execution_is(f"training run {run_id!r} does not exist"):
        events: list[dict[str, Any]] = []
        for execution in _executions(sfn, _execution_arn(state_machine_arn, run_id)):
            pages = sfn.get_paginator("get_execution_history").paginate(executionArn=execution["executionArn"])
            chunk = [e for page in pages for e in page["events"]]
            offset = max((e["id"] for e in events), default=0)
            events += [{**e, "id": e["id"] + offset, "previousEventId": e["previousEventId"] + offset} for e in chunk]
    by_id = {e["id"]: e for e in events}
    scheduled: dict[int, str] = {}  # TaskScheduled id -> function name
    result = cost.Usage()
    memory: dict[str, int] = {}
    for e in events:
        if e["type"].endswith("StateEntered"):
            result.state_transitions += 1
        elif e["type"] == "TaskScheduled":
            params = json.loads(e["taskScheduledEventDetails"].get("parameters") or "{}")
            scheduled[e["id"]] = str(params.get("FunctionName", ""))
        elif e["type"] in ("TaskSucceeded", "TaskFailed", "TaskTimedOut"):
            started = by_id.get(e["previousEventId"])
            if started is None or started["type"] != "TaskStarted" or started["previousEventId"] not in scheduled:
                continue
            function = scheduled[started["previousEventId"]]
            if function not in memory:
                memory[function] = int(lam.get_function_configuration(FunctionName=function)["MemorySize"])
            step = cost.step_of(function)
            fn = result.functions.setdefault(step, cost.FunctionUsage(memory_mb=memory[function]))
            fn.invocations += 1
            fn.billed_ms += max(1, math.ceil((e["timestamp"] - started["timestamp"]).total_seconds() * 1000))
    request = json.loads(events[0]["executionStartedEventDetails"]["input"]) if events else {}
    result.shards = int(request.get("n_shards", 0) or 0)
    result.rounds = max(result.functions.get("Aggregator", cost.FunctionUsage()).invocations - 1, 0)
    for e in events:  # the preprocess result carries the row count
        if e["type"] == "TaskSucceeded" and '"train_rows"' in e["taskSucceededEventDetails"].get("output", ""):
            payload = json.loads(e["taskSucceededEventDetails"]["output"]).get("Payload", {})
            result.train_rows = int(payload.get("data", {}).get("train_rows", 0))
            result.shards = len(payload.get("data", {}).get("shards", [])) or result.shards
            break
    cost.estimate_s3(result)
    return result


def run_cost(
    sfn,
    lam,
    state_machine_arn: str,
    run_id: str,
    region: str,
    rows: int | None = None,
    shards: int | None = None,
    rounds: int | None = None,
) -> dict[str, Any]:
    """The run's cost, and with any of rows/shards/rounds a what-if for that size."""
    measured = usage(sfn, lam, state_machine_arn, run_id)
    prices = cost.price_table(region)
    result = {"run_id": run_id, "actual": cost.cost(measured, prices)}
    if rows or shards or rounds:
        scaled = cost.what_if(
            measured, rows or measured.train_rows, shards or measured.shards, rounds or measured.rounds
        )
        result["what_if"] = cost.cost(scaled, prices)
    return result


def list_runs(sfn, state_machine_arn: str, limit: int = 50) -> list[dict[str, Any]]:
    """The most recent runs, newest first."""
    executions = [
        e
        for e in sfn.list_executions(stateMachineArn=state_machine_arn, maxResults=limit)["executions"]
        if RUN_ID.match(e["name"])
    ]  # continuations and resumptions belong to their run
    return [
        {
            "run_id": e["name"],
            "status": e["status"],
            "started_at": e["startDate"].isoformat(),
            **({"stopped_at": e["stopDate"].isoformat()} if e.get("stopDate") else {}),
        }
        for e in executions
    ]


def resume(store: ObjectStore, sfn, state_machine_arn: str, run_id: str) -> dict[str, Any]:
    """Start a new execution of a failed or stopped run from its last stored round (its checkpoint)."""
    if not RUN_ID.match(run_id):
        raise NotFoundError(f"training run {run_id!r} does not exist")
    try:
        context = store.get_json(layout.context_key(run_id))
    except NotFound:
        raise NotFoundError(f"training run {run_id!r} has no checkpoint to resume from") from None
    rounds = store.list_keys(layout.rounds_prefix(run_id))
    if rounds:
        train = store.get_json(rounds[-1])["state"]
    else:
        train = {"run_id": run_id, "round": 0, "params_key": layout.params_key(run_id, 0)}
    name = f"{run_id}-resume-r{train['round']}-{uuid.uuid4().hex[:6]}"
    payload = {"run_id": run_id, "request": context["request"], "data": context["data"], "train": train}
    sfn.start_execution(stateMachineArn=state_machine_arn, name=name, input=json.dumps(payload))
    return {"run_id": run_id, "status": "RUNNING", "execution": name, "resumed_from_round": train["round"]}


def describe(store: ObjectStore, sfn, state_machine_arn: str, run_id: str, curve: bool = False) -> dict[str, Any]:
    """Status, request, progress (and with ``curve`` every round's summary) of one run."""
    with aws.missing_execution_is(f"training run {run_id!r} does not exist"):
        executions = _executions(sfn, _execution_arn(state_machine_arn, run_id))
    request = json.loads(executions[0]["input"])  # the first execution's input is the training request
    desc = executions[-1]
    result: dict[str, Any] = {
        "run_id": run_id,
        "status": desc["status"],
        "started_at": desc["startDate"].isoformat(),
        "request": request,
    }
    if desc.get("stopDate"):
        result["stopped_at"] = desc["stopDate"].isoformat()
    if desc["status"] == "SUCCEEDED":
        result["model"] = json.loads(desc["output"])
    elif desc["status"] in ("FAILED", "TIMED_OUT", "ABORTED"):
        result["error"] = {"type": desc.get("error"), "message": desc.get("cause")}
    rounds = store.list_keys(layout.rounds_prefix(run_id))
    result["rounds_completed"] = len(rounds)
    if rounds:
        try:
            last = store.get_json(rounds[-1])
            result["last_round"] = {k: last[k] for k in ("round", "loss", "grad_norm")}
        except NotFound:
            pass
    if curve:
        result["curve"] = training_curve(store, run_id)
    return result
