"""Async mode end to end: the real statemachines/training.asl.json in moto's interpreter, the real handlers,
compare-and-swap updates on the parameter head; the result compared with scikit-learn."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from mlcore.steps.preparation.in_memory import build_matrices
from mlcore.steps.tabular import column_kinds, read_csv, to_columns
from mllocal.cloud import LocalCloud
from mllocal.template import local_stack
from tests.helpers import HOUSING_CSV, first_rows, keys

HOUSING = first_rows(HOUSING_CSV, 800)


def _get(cloud, key):
    return cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=key)["Body"].read()


@pytest.fixture(scope="module")
def async_run():
    """One async run of 12 passes over 4 shards, each worker call submitting 10 updates."""
    with LocalCloud(local_stack(overrides={"LogLevel": "WARNING"})) as cloud:
        resp = cloud.request("POST", "/datasets/housing", HOUSING, headers={"Content-Type": "text/csv"})
        assert resp["statusCode"] == 201, resp
        hp = {
            "optimizer": "sgd",
            "learning_rate": 0.2,
            "batch_size": 64,
            "steps_per_invocation": 10,
            "max_staleness": 4,
            "max_epochs": 12,
            "tolerance": 0.0,
        }
        request = {
            "dataset": "housing",
            "target": "price_k",
            "model_name": "housing-async",
            "n_shards": 4,
            "seed": 1,
            "mode": "async",
            "hyperparameters": hp,
        }
        execution = cloud.run("TrainingStateMachine", request, name="run-async")
        assert execution["status"] == "SUCCEEDED", execution
        model = json.loads(execution["output"])
        yield SimpleNamespace(
            cloud=cloud,
            model=model,
            rounds=[json.loads(_get(cloud, k)) for k in keys(cloud, "runs/run-async/rounds/")],
            head=np.load(io.BytesIO(_get(cloud, "runs/run-async/async/head.npz")), allow_pickle=False),
            final=np.load(io.BytesIO(_get(cloud, "runs/run-async/params/round-00012.npz")), allow_pickle=False),
            artifact=json.loads(_get(cloud, model["artifact_key"])),
        )


def test_async_training_runs_one_worker_call_per_shard_per_pass(async_run):
    assert async_run.model["rounds"] == 12
    # one worker call per shard per pass, each submitting 10 updates; no per-step barrier
    assert async_run.cloud.invocations["GradientWorkerFunction"] == 4 * 12
    assert async_run.cloud.invocations["AggregatorFunction"] == 12 + 1
    assert [r["round"] for r in async_run.rounds] == list(range(12))


def test_async_training_applies_every_update_once(async_run):
    rounds = async_run.rounds
    assert all(r["updates"] == 40 and r["mode"] == "async" for r in rounds)
    assert rounds[-1]["version"] == 12 * 4 * 10  # final version == accepted submissions
    assert int(async_run.head["version"]) == 480
    assert async_run.artifact["training_curve"][-1]["version"] == 480


def test_async_training_bounds_the_staleness(async_run):
    assert all(r["staleness_max"] <= 4 for r in async_run.rounds)
    assert async_run.artifact["hyperparameters"]["max_staleness"] == 4


def test_the_registered_async_model_is_the_heads_running_average(async_run):
    head, final, artifact = async_run.head, async_run.final, async_run.artifact
    # the registered model is the head's running average of the parameters (averaging, the default)
    np.testing.assert_array_equal(final["theta"], head["average"])
    np.testing.assert_array_equal(final["iterate"], head["theta"])
    np.testing.assert_allclose(artifact["model"]["coefficients"], head["average"][:-1])
    np.testing.assert_allclose(artifact["model"]["intercept"], head["average"][-1])
    assert artifact["hyperparameters"]["averaging"] is True and artifact["hyperparameters"]["averaging_power"] == 3


def test_async_training_is_close_to_scikit_learn(async_run):
    # close to scikit-learn's least squares on the same split and features
    frame = read_csv(HOUSING)
    _, train, test, _, _ = build_matrices(to_columns(frame), column_kinds(frame), "price_k", 0.2, 1)
    reference = LinearRegression().fit(train[:, :-1].astype(float), train[:, -1])
    ref_r2 = reference.score(test[:, :-1].astype(float), test[:, -1])
    assert abs(async_run.model["metrics"]["r2"] - ref_r2) < 0.02, [r["loss"] for r in async_run.rounds]


# -- a run that diverges fails naming the round and the learning rate --------------------------------------------

README_ASYNC = {"optimizer": "momentum", "learning_rate": 0.1, "max_epochs": 300}  # the README's, in async mode
DIVERGING = {
    "sync": (
        "run-d1e000000001",
        "sync",
        {"optimizer": "sgd", "learning_rate": 10.0, "max_epochs": 300, "solver": "sgd"},
        3,
    ),
    "local_steps": (
        "run-d1e000000002",
        "sync",
        {"worker_mode": "local_steps", "learning_rate": 10.0, "batch_size": 64, "max_epochs": 300},
        1,
    ),
    # async: the round depends on how the workers interleave (its loss passes 1e6 x round 0's between rounds 5 and
    # 20): the run is stopped by the rule, named, with every round before it recorded
    "async": ("run-d1e000000003", "async", README_ASYNC, None),
}


@pytest.mark.parametrize("kind", DIVERGING)
def test_a_run_that_diverges_fails_naming_the_round_and_the_learning_rate(async_run, kind):
    cloud = async_run.cloud  # the module's LocalCloud (one per process), its housing data set uploaded
    run_id, mode, hp, round_ = DIVERGING[kind]
    request = {
        "dataset": "housing",
        "target": "price_k",
        "model_name": f"diverging-{kind.replace('_', '-')}",
        "n_shards": 4,
        "seed": 1,
        "mode": mode,
        "hyperparameters": hp,
    }
    execution = cloud.run("TrainingStateMachine", request, name=run_id)
    assert execution["status"] == "FAILED"
    response = cloud.request("GET", f"/training-runs/{run_id}")
    body = json.loads(response["body"])
    assert response["statusCode"] == 200, body
    if round_ is None:
        round_ = body["rounds_completed"]
        assert round_ >= 1
    expected = f"diverged at round {round_}; lower learning_rate (was {hp['learning_rate']:g})"
    assert (response["statusCode"], body["status"], body["error"]) == (
        200,
        "FAILED",
        {"type": "TrainingDiverged", "message": expected},
    )
    assert body["rounds_completed"] == round_  # the rounds before it are recorded, the diverged one is not
    assert not keys(cloud, f"models/{request['model_name']}/")  # nothing registered
