"""Worker results through the real state machine: a normal run hands every result to the aggregator in the Map's
result and writes no gradient or update to S3; with the inline budget forced to 0 every result goes through S3,
and the run's parameters come out bit for bit the same."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from mlcore.infra import layout
from mlcore.steps import schemas
from tests.helpers import keys

ROUNDS = 3
HYPERPARAMETERS = {
    "sgd": {"optimizer": "momentum", "learning_rate": 0.1, "max_epochs": ROUNDS, "tolerance": 0.0, "solver": "sgd"},
    "local_steps": {
        "optimizer": "sgd",
        "learning_rate": 0.05,
        "max_epochs": ROUNDS,
        "tolerance": 0.0,
        "solver": "sgd",
        "worker_mode": "local_steps",
        "steps_per_invocation": 4,
        "batch_size": 20,
    },
    "exact": {"solver": "exact"},
}


def _executions(cloud) -> set[str]:
    """Every execution of every state machine so far (the run's own and any child executions it started)."""
    return {
        e["executionArn"]
        for m in cloud.sfn.list_state_machines()["stateMachines"]
        for e in cloud.sfn.list_executions(stateMachineArn=m["stateMachineArn"])["executions"]
    }


def _train(cloud, name: str, hp: dict) -> tuple[dict, list[dict]]:
    """The run's output and its workers' results, from the histories of the executions it took."""
    request = {"dataset": "housing", "target": "price_k", "model_name": name, "n_shards": 4, "hyperparameters": hp}
    before = _executions(cloud)
    execution = cloud.run("TrainingStateMachine", request, name=name)
    assert execution["status"] == "SUCCEEDED", execution
    outputs = []
    for arn in _executions(cloud) - before:
        for page in cloud.sfn.get_paginator("get_execution_history").paginate(executionArn=arn):
            outputs += [
                json.loads(e["taskSucceededEventDetails"]["output"])["Payload"]
                for e in page["events"]
                if e["type"] == "TaskSucceeded" and '"loss_sum"' in e["taskSucceededEventDetails"]["output"]
            ]
    return json.loads(execution["output"]), outputs


def _params(cloud, run_id: str) -> list[bytes]:
    pages = cloud.s3.get_paginator("list_objects_v2").paginate(
        Bucket=cloud.stack.bucket, Prefix=f"{layout.RUNS}{run_id}/params/"
    )
    found = sorted(o["Key"] for page in pages for o in page.get("Contents", []))
    bodies = [cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=k)["Body"].read() for k in found]
    return [np.load(io.BytesIO(b), allow_pickle=False)["theta"].tobytes() for b in bodies]


@pytest.mark.parametrize("kind", list(HYPERPARAMETERS))
def test_results_travel_inline_unless_over_the_budget_with_the_same_parameters(
    cloud, housing_sample, monkeypatch, kind
):
    resp = cloud.request("POST", "/datasets/housing", housing_sample, headers={"Content-Type": "text/csv"})
    assert resp["statusCode"] == 201, resp
    hp = HYPERPARAMETERS[kind]
    rounds = 1 if kind == "exact" else ROUNDS
    workers = 4 * rounds

    inline, inline_results = _train(cloud, f"run-inline-{kind}", hp)
    assert keys(cloud, layout.SCRATCH) == []  # no gradient, statistics or update went through S3
    assert len(inline_results) == workers and all(r["gradient"] and r["gradient_key"] is None for r in inline_results)

    monkeypatch.setattr(schemas, "INLINE_RESULTS_BYTES", 0)  # every result over its share: through S3
    via_s3, s3_results = _train(cloud, f"run-s3-{kind}", hp)
    written = keys(cloud, layout.SCRATCH)
    assert len(written) == workers * (2 if kind == "local_steps" else 1)
    assert all(r["gradient"] is None and r["gradient_key"] in written for r in s3_results)
    if kind == "local_steps":
        assert all(r["update"] is None and r["update_key"] in written for r in s3_results)

    assert inline["rounds"] == via_s3["rounds"] == rounds and inline["metrics"] == via_s3["metrics"]
    assert _params(cloud, f"run-inline-{kind}") == _params(cloud, f"run-s3-{kind}")  # bit for bit, every round
