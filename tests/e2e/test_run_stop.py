"""`POST /training-runs/{id}/stop` on a RUNNING run through the real training state machine in moto: the execution
ends ABORTED with nothing registered; `POST /training-runs/{id}/resume` continues it to a registered model."""

from __future__ import annotations

import json
import threading
import time

from mlcore.infra import layout
from mllocal.cloud import LocalCloud
from mllocal.template import local_stack
from tests.helpers import keys


class HoldInit:
    """Holds the Aggregator's init of every run at a gate while one is set (the run is RUNNING, in its first step)."""

    def __init__(self) -> None:
        self.gate: threading.Event | None = None
        self.held: set[str] = set()

    def __call__(self, spec, event):
        if spec.logical_id == "AggregatorFunction" and event.get("action") == "init" and self.gate is not None:
            self.held.add(event["run_id"])
            self.gate.wait(timeout=120)
        return None


def _body(resp: dict) -> dict:
    return json.loads(resp["body"])


def test_a_running_run_is_stopped_then_resumed_to_a_registered_model(housing_sample):
    hook = HoldInit()
    with LocalCloud(local_stack(overrides={"LogLevel": "WARNING"}), hook=hook) as cloud:
        resp = cloud.request("POST", "/datasets/housing", housing_sample, headers={"Content-Type": "text/csv"})
        assert resp["statusCode"] == 201, resp
        arn = cloud.state_machine_arns["TrainingStateMachine"].replace(":stateMachine:", ":execution:")
        hook.gate = threading.Event()
        try:
            request = {"dataset": "housing", "target": "price_k", "model_name": "housing-stop"}
            resp = cloud.request("POST", "/training-runs", request)
            assert resp["statusCode"] == 202, resp
            run_id = _body(resp)["run_id"]
            deadline = time.monotonic() + 120
            while run_id not in hook.held and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _body(cloud.request("GET", f"/training-runs/{run_id}"))["status"] == "RUNNING"
            resp = cloud.request("POST", f"/training-runs/{run_id}/stop")
            assert (resp["statusCode"], _body(resp)) == (202, {"run_id": run_id, "status": "ABORTED"})
        finally:
            hook.gate.set()
            hook.gate = None
        assert cloud.wait(f"{arn}:{run_id}", timeout=120)["status"] == "ABORTED"
        cloud.settle(timeout=60)
        assert _body(cloud.request("GET", f"/training-runs/{run_id}"))["status"] == "ABORTED"
        assert keys(cloud, layout.versions_prefix("housing-stop")) == []
        assert _body(cloud.request("POST", f"/training-runs/{run_id}/stop"))["message"] == (
            f"training run {run_id!r} is ABORTED: only a RUNNING run can be stopped"
        )

        resp = cloud.request("POST", f"/training-runs/{run_id}/resume")
        assert resp["statusCode"] == 202, resp
        resumed = _body(resp)
        assert (resumed["run_id"], resumed["status"]) == (run_id, "RUNNING")
        assert cloud.wait(f"{arn}:{resumed['execution']}", timeout=300)["status"] == "SUCCEEDED"
        cloud.settle(timeout=60)
        described = _body(cloud.request("GET", f"/training-runs/{run_id}"))
        assert described["status"] == "SUCCEEDED" and described["model"]["version"] == 1
        assert keys(cloud, layout.versions_prefix("housing-stop")) == [layout.version_key("housing-stop", 1)]
