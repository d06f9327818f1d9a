"""Async mode end to end: the real statemachines/training.asl.json in moto's interpreter, the real handlers,
compare-and-swap updates on the parameter head; the result compared with scikit-learn."""

from __future__ import annotations

import io
import json

import numpy as np
from sklearn.linear_model import LinearRegression

from mlcore.steps.preparation.in_memory import build_matrices
from mlcore.steps.tabular import column_kinds, read_csv, to_columns
from mllocal.template import ROOT
from tests.conftest import keys

HOUSING = b"".join((ROOT / "data" / "housing.csv").read_bytes().splitlines(keepends=True)[:801])


def _get(cloud, key):
    return cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=key)["Body"].read()


def test_async_training_runs_end_to_end_and_applies_every_update_once(cloud):
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
    assert model["rounds"] == 12

    # one worker call per shard per pass, each submitting 10 updates; no per-step barrier
    assert cloud.invocations["GradientWorkerFunction"] == 4 * 12
    assert cloud.invocations["AggregatorFunction"] == 12 + 1
    rounds = [json.loads(_get(cloud, k)) for k in keys(cloud, "runs/run-async/rounds/")]
    assert [r["round"] for r in rounds] == list(range(12))
    assert all(r["updates"] == 40 and r["mode"] == "async" for r in rounds)
    assert rounds[-1]["version"] == 12 * 4 * 10  # final version == accepted submissions
    assert all(r["staleness_max"] <= 4 for r in rounds)

    head = np.load(io.BytesIO(_get(cloud, "runs/run-async/async/head.npz")), allow_pickle=False)
    final = np.load(io.BytesIO(_get(cloud, "runs/run-async/params/round-00012.npz")), allow_pickle=False)
    assert int(head["version"]) == 480
    # the registered model is the head's running average of the parameters (averaging, the default)
    np.testing.assert_array_equal(final["theta"], head["average"])
    np.testing.assert_array_equal(final["iterate"], head["theta"])
    artifact = json.loads(_get(cloud, model["artifact_key"]))
    np.testing.assert_allclose(artifact["model"]["coefficients"], head["average"][:-1])
    np.testing.assert_allclose(artifact["model"]["intercept"], head["average"][-1])

    # close to scikit-learn's least squares on the same split and features
    frame = read_csv(HOUSING)
    _, train, test, _, _ = build_matrices(to_columns(frame), column_kinds(frame), "price_k", 0.2, 1)
    reference = LinearRegression().fit(train[:, :-1].astype(float), train[:, -1])
    ref_r2 = reference.score(test[:, :-1].astype(float), test[:, -1])
    assert abs(model["metrics"]["r2"] - ref_r2) < 0.02, [r["loss"] for r in rounds]

    assert artifact["hyperparameters"]["max_staleness"] == 4
    assert artifact["hyperparameters"]["averaging"] is True and artifact["hyperparameters"]["averaging_power"] == 3
    assert artifact["training_curve"][-1]["version"] == 480
