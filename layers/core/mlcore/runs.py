"""Training runs: start the training workflow for a validated request and report its progress."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from botocore.exceptions import ClientError

from . import datasets
from .errors import NotFoundError
from .schemas import TrainingRequest
from .storage import NotFound, S3Store
from .training import training_curve

RUN_ID = re.compile(r"^run-[0-9a-f]{12}$")


def start(store: S3Store, sfn, state_machine_arn: str, request: TrainingRequest) -> dict[str, Any]:
    """Check the data set exists, then start one execution named after the new run id."""
    meta = datasets.describe(store, request.dataset, request.version)
    request = request.model_copy(update={"version": meta["version"]})  # pin the version the run trains on
    run_id = f"run-{uuid.uuid4().hex[:12]}"
    sfn.start_execution(stateMachineArn=state_machine_arn, name=run_id, input=request.model_dump_json())
    return {"run_id": run_id, "status": "RUNNING", "dataset": request.dataset, "version": meta["version"]}


def list_runs(sfn, state_machine_arn: str, limit: int = 50) -> list[dict[str, Any]]:
    """The most recent runs, newest first."""
    executions = sfn.list_executions(stateMachineArn=state_machine_arn, maxResults=limit)["executions"]
    return [
        {
            "run_id": e["name"],
            "status": e["status"],
            "started_at": e["startDate"].isoformat(),
            **({"stopped_at": e["stopDate"].isoformat()} if e.get("stopDate") else {}),
        }
        for e in executions
    ]


def describe(store: S3Store, sfn, state_machine_arn: str, run_id: str, curve: bool = False) -> dict[str, Any]:
    """Status, request, progress (and with ``curve`` every round's summary) of one run."""
    if not RUN_ID.match(run_id):
        raise NotFoundError(f"training run {run_id!r} does not exist")
    execution_arn = state_machine_arn.replace(":stateMachine:", ":execution:") + f":{run_id}"
    try:
        desc = sfn.describe_execution(executionArn=execution_arn)
    except ClientError as err:
        if err.response["Error"]["Code"] == "ExecutionDoesNotExist":
            raise NotFoundError(f"training run {run_id!r} does not exist") from None
        raise
    result: dict[str, Any] = {
        "run_id": run_id,
        "status": desc["status"],
        "started_at": desc["startDate"].isoformat(),
        "request": json.loads(desc["input"]),
    }
    if desc.get("stopDate"):
        result["stopped_at"] = desc["stopDate"].isoformat()
    if desc["status"] == "SUCCEEDED":
        result["model"] = json.loads(desc["output"])
    elif desc["status"] in ("FAILED", "TIMED_OUT", "ABORTED"):
        result["error"] = {"type": desc.get("error"), "message": desc.get("cause")}
    rounds = store.list_keys(f"runs/{run_id}/rounds/")
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
