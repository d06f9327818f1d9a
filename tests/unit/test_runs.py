"""Training-run bookkeeping without AWS: which executions make up a run, when it may resume, how it failed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from mlcore.infra import layout
from mlcore.infra.errors import ConflictError
from mlcore.steps import runs

from .fakes import FakeStore

ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:training"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class FakeStepFunctions:
    """describe_execution and a newest-first list_executions over the given executions."""

    def __init__(self, executions: list[tuple[str, str]]):
        self.executions = [
            {
                "name": name,
                "executionArn": f"{ARN.replace(':stateMachine:', ':execution:')}:{name}",
                "status": status,
                "startDate": T0 + timedelta(minutes=i),
                "input": json.dumps({"dataset": "d"}),
            }
            for i, (name, status) in enumerate(executions)
        ]
        self.started: list[str] = []

    def describe_execution(self, executionArn: str) -> dict:
        return next(e for e in self.executions if e["executionArn"] == executionArn)

    def get_paginator(self, operation: str):
        assert operation == "list_executions"
        newest_first = sorted(self.executions, key=lambda e: e["startDate"], reverse=True)
        listed = [{k: e[k] for k in ("name", "executionArn", "status", "startDate")} for e in newest_first]
        return type("Paginator", (), {"paginate": lambda self, **_: iter([{"executions": listed}])})()

    def list_executions(self, **_) -> dict:
        return {"executions": next(iter(self.get_paginator("list_executions").paginate()))["executions"]}

    def start_execution(self, name: str, **_) -> dict:
        self.started.append(name)
        return {}


RUN = "run-00000000000c"


@pytest.mark.parametrize("status", ["RUNNING", "SUCCEEDED"])
def test_a_running_or_finished_run_is_not_resumed(status):
    sfn = FakeStepFunctions([(RUN, "FAILED"), (f"{RUN}-resume-r4-abcdef", status)])
    with pytest.raises(ConflictError, match=f"^training run '{RUN}' is {status}: only a run that FAILED"):
        runs.resume(FakeStore(), sfn, ARN, RUN)
    assert sfn.started == []


@pytest.mark.parametrize("status", ["FAILED", "TIMED_OUT", "ABORTED"])
def test_a_stopped_run_resumes_from_its_last_round(status):
    store = FakeStore({layout.context_key(RUN): {"request": {}, "data": {}}})
    sfn = FakeStepFunctions([(RUN, "SUCCEEDED"), (f"{RUN}-r3", status), ("run-00000000000d", "RUNNING")])
    resumed = runs.resume(store, sfn, ARN, RUN)
    assert resumed["resumed_from_round"] == 0 and sfn.started == [resumed["execution"]]
    assert resumed["execution"].startswith(f"{RUN}-resume-r0-")


def test_the_run_list_groups_executions_by_run_and_shows_the_latest_status():
    sfn = FakeStepFunctions(
        [(RUN, "SUCCEEDED"), ("run-00000000000d", "FAILED"), (f"{RUN}-r3", "RUNNING"), ("batch-0", "RUNNING")]
    )
    listed = runs.list_runs(sfn, ARN)
    assert [(r["run_id"], r["status"]) for r in listed] == [("run-00000000000d", "FAILED"), (RUN, "RUNNING")]
    assert listed[1]["started_at"] == T0.isoformat()


def test_a_lambda_failure_is_reported_by_its_message_without_the_stack_trace():
    cause = json.dumps(
        {"errorType": "InvalidInput", "errorMessage": "column 'x' must be numeric", "stackTrace": ["  File /var/task"]}
    )
    assert runs.failure_reason(cause) == "column 'x' must be numeric"
    assert runs.failure_reason("States.Timeout\nmore") == "States.Timeout"
    assert runs.failure_reason("x" * 2000) == "x" * (runs.MAX_REASON - 1) + "…"
    assert runs.failure_reason(None) is None
