"""Training runs: start the training workflow for a validated request and report its progress."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from botocore.exceptions import ClientError

from . import datasets, training
from .errors import NotFoundError
from .schemas import TrainingRequest
from .storage import NotFound, S3Store

RUN_ID = re.compile(r"^run-[0-9a-f]{12}$")


def start(store: S3Store, sfn, state_machine_arn: str, request: TrainingRequest) -> dict[str, Any]:
    """Check the data set exists, then start one execution named after the new run id."""
    meta = datasets.describe(store, request.dataset, request.version)
    request = request.model_copy(update={"version": meta["version"]})  # pin the version the run trains on
    run_id = f"run-{uuid.uuid4().hex[:12]}"
    sfn.start_execution(stateMachineArn=state_machine_arn, name=run_id, input=request.model_dump_json())
    return {"run_id": run_id, "status": "RUNNING", "dataset": request.dataset, "version": meta["version"]}


def _execution_arn(state_machine_arn: str, name: str) -> str:
    return state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"


def resume(store: S3Store, sfn, state_machine_arn: str, run_id: str) -> dict[str, Any]:
    """Start a new execution of a failed or stopped run from its last stored round (its checkpoint)."""
    if not RUN_ID.match(run_id):
        raise NotFoundError(f"training run {run_id!r} does not exist")
    try:
        context = store.get_json(training.context_key(run_id))
    except NotFound:
        raise NotFoundError(f"training run {run_id!r} has no checkpoint to resume from") from None
    rounds = store.list_keys(f"runs/{run_id}/rounds/")
    if rounds:
        train = store.get_json(rounds[-1])["state"]
    else:
        train = {"run_id": run_id, "round": 0, "params_key": training.params_key(run_id, 0)}
    name = f"{run_id}-resume-r{train['round']}-{uuid.uuid4().hex[:6]}"
    payload = {"run_id": run_id, "request": context["request"], "data": context["data"], "train": train}
    sfn.start_execution(stateMachineArn=state_machine_arn, name=name, input=json.dumps(payload))
    return {"run_id": run_id, "status": "RUNNING", "execution": name, "resumed_from_round": train["round"]}


def describe(store: S3Store, sfn, state_machine_arn: str, run_id: str) -> dict[str, Any]:
    if not RUN_ID.match(run_id):
        raise NotFoundError(f"training run {run_id!r} does not exist")
    execution_arn = _execution_arn(state_machine_arn, run_id)
    try:
        desc = sfn.describe_execution(executionArn=execution_arn)
        for _ in range(1000):  # follow the executions the run continued in (history limit)
            output = json.loads(desc.get("output") or "{}") if desc["status"] == "SUCCEEDED" else {}
            if not isinstance(output, dict) or "continued_as" not in output:
                break
            desc = sfn.describe_execution(executionArn=output["continued_as"])
    except ClientError as err:
        if err.response["Error"]["Code"] == "ExecutionDoesNotExist":
            raise NotFoundError(f"training run {run_id!r} does not exist") from None
        raise
    result: dict[str, Any] = {"run_id": run_id, "status": desc["status"], "started_at": desc["startDate"].isoformat()}
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
    return result
