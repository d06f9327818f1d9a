"""A training request of a data set, a target and a model name, end to end through the API and the real workflow
on moto: the task and the model are inferred, an identifier dropped and a high-cardinality text column hashed, each
decision shown at the start, recorded in the manifest and in the run's description; a target that cannot be learned
is refused with nothing started."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from mlcore.infra import layout
from mllocal.cloud import LocalCloud
from mllocal.template import local_stack
from tests.helpers import keys

ROWS = 300


def _csv() -> bytes:
    rng = np.random.default_rng(3)
    lines = ["row_id,x1,x2,code,constant,label"]
    for i in range(ROWS):
        x1, x2 = rng.normal(), rng.normal()
        label = "yes" if x1 + 0.5 * x2 + 0.3 * rng.normal() > 0 else "no"
        lines.append(f"{5000 + i},{x1:.4f},{x2:.4f},c{int(rng.integers(0, 90))},k,{label}")
    return ("\n".join(lines) + "\n").encode()


def _body(resp):
    return resp["statusCode"], json.loads(resp["body"])


def _executions(cloud) -> list:
    return cloud.sfn.list_executions(stateMachineArn=cloud.state_machine_arns["TrainingStateMachine"])["executions"]


@pytest.fixture(scope="module")
def plain():
    with LocalCloud(local_stack(overrides={"LogLevel": "WARNING"})) as cloud:
        resp = cloud.request("POST", "/datasets/plain", _csv(), headers={"Content-Type": "text/csv"})
        assert resp["statusCode"] == 201, resp
        status, started = _body(
            cloud.request("POST", "/training-runs", {"dataset": "plain", "target": "label", "model_name": "plain"})
        )
        assert status == 202, started
        run_id = started["run_id"]
        execution = cloud.wait(
            cloud.state_machine_arns["TrainingStateMachine"].replace(":stateMachine:", ":execution:") + f":{run_id}"
        )
        manifest = json.loads(
            cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=layout.manifest_key(run_id))["Body"].read()
        )
        yield SimpleNamespace(
            cloud=cloud,
            started=started,
            execution=execution,
            described=_body(cloud.request("GET", f"/training-runs/{run_id}"))[1],
            manifest=manifest,
        )


def test_the_start_shows_the_inferred_task_model_and_decisions(plain):
    started = plain.started
    assert (started["model"], started["problem"]["task"], started["problem"]["metric"]) == (
        "logistic_regression",
        "binary",
        "accuracy",
    )
    decisions = {d["column"]: d for d in started["problem"]["decisions"]}
    assert set(decisions) == {"row_id", "code"}
    assert decisions["row_id"]["action"] == "drop" and decisions["row_id"]["reason"].startswith(
        f"identifier: {ROWS} distinct whole numbers in {ROWS} rows with a value"
    )
    assert decisions["code"]["action"] == "hash"


def test_the_plain_request_trains_and_its_run_records_the_problem(plain):
    described, manifest = plain.described, plain.manifest
    assert plain.execution["status"] == "SUCCEEDED"
    assert described["status"] == "SUCCEEDED" and described["stop_reason"] == "converged"  # Newton, by default
    assert described["request"]["hyperparameters"]["model"] == "logistic_regression"
    assert described["problem"] == manifest["problem"] == plain.started["problem"]
    assert "row_id" in manifest["dropped_columns"]
    assert manifest["feature_names"] == ["x1", "x2", *(f"code#{b}" for b in range(64)), "constant=k"]
    model = described["model"]
    assert model["warnings"] == [] and model["metrics"]["accuracy"] > 0.8
    status, registered = _body(plain.cloud.request("GET", "/models/plain"))
    assert status == 200 and registered["aliases"]["production"]["version"] == model["version"]  # beats the majority


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("constant", "target column 'constant' has a single class: there is nothing to learn"),
        ("nope", "target column 'nope' is not in the data set (columns: row_id, x1, x2, code, constant, label)"),
    ],
)
def test_a_target_that_cannot_be_learned_is_refused_and_nothing_starts(plain, target, message):
    before, written = _executions(plain.cloud), keys(plain.cloud)
    status, body = _body(
        plain.cloud.request("POST", "/training-runs", {"dataset": "plain", "target": target, "model_name": "other"})
    )
    assert (status, body) == (400, {"message": message})
    assert _executions(plain.cloud) == before and keys(plain.cloud) == written
