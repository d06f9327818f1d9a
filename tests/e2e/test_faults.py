"""Fault injection on the real state machine: transient failures and duplicate deliveries change nothing."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from mllocal.cloud import LocalCloud
from mllocal.faults import FaultInjector
from mllocal.template import local_stack

REQUEST = {
    "dataset": "h",
    "target": "price_k",
    "model_name": "h",
    "n_shards": 4,
    "seed": 5,
    "hyperparameters": {"optimizer": "adam", "learning_rate": 0.3, "max_epochs": 12, "solver": "sgd"},
}


def _train(rows: bytes, faults: FaultInjector | None = None) -> tuple[np.ndarray, dict, dict]:
    with LocalCloud(local_stack(overrides={"LogLevel": "ERROR"}), hook=faults) as cloud:
        resp = cloud.request("POST", "/datasets/h", rows, headers={"Content-Type": "text/csv"})
        execution = cloud.run(
            "TrainingStateMachine", {**REQUEST, "version": json.loads(resp["body"])["version"]}, name="run-faulty"
        )
        assert execution["status"] == "SUCCEEDED", execution
        model = json.loads(execution["output"])
        body = cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=f"runs/run-faulty/params/round-{12:05d}.npz")
        theta = np.load(io.BytesIO(body["Body"].read()), allow_pickle=False)["theta"]
        versions = cloud.s3.list_object_versions(Bucket=cloud.stack.bucket, Prefix="runs/run-faulty/params/")
        return theta, model, {"param_versions": len(versions["Versions"]), "calls": dict(cloud.invocations)}


@pytest.fixture(scope="module")
def clean(housing_sample):
    return _train(housing_sample)


def test_twenty_percent_worker_failures_reach_the_same_parameters(clean, housing_sample):
    faults = FaultInjector({"GradientWorkerFunction": {"failure_rate": 0.2}}, seed=11)
    theta, model, info = _train(housing_sample, faults)
    failures = faults.injected["GradientWorkerFunction"]["failures"]
    assert failures >= 5  # 48 worker calls at 20%: the retries really ran
    assert info["calls"]["GradientWorkerFunction"] == clean[2]["calls"]["GradientWorkerFunction"] + failures
    np.testing.assert_array_equal(theta, clean[0])
    assert model["metrics"] == clean[1]["metrics"]


def test_timed_out_invocations_are_retried_to_the_same_parameters(clean, housing_sample):
    """Timed-out GradientWorker and Aggregator invocations."""
    faults = FaultInjector(
        {"GradientWorkerFunction": {"timeout_rate": 0.2}, "AggregatorFunction": {"timeout_rate": 0.2}}, seed=5
    )
    theta, model, info = _train(housing_sample, faults)
    assert faults.injected["GradientWorkerFunction"]["timeouts"] >= 5
    assert faults.injected["AggregatorFunction"]["timeouts"] >= 1
    np.testing.assert_array_equal(theta, clean[0])
    assert model["metrics"] == clean[1]["metrics"]
    assert info["param_versions"] == 13  # a timed-out aggregation's step is not applied again


def test_duplicated_deliveries_change_nothing(clean, housing_sample):
    """Duplicated Aggregator and GradientWorker deliveries."""
    faults = FaultInjector(
        {"AggregatorFunction": {"duplicate_rate": 0.5}, "GradientWorkerFunction": {"duplicate_rate": 0.3}}, seed=3
    )
    theta, model, info = _train(housing_sample, faults)
    assert faults.injected["AggregatorFunction"]["duplicates"] >= 3
    np.testing.assert_array_equal(theta, clean[0])
    assert model["metrics"] == clean[1]["metrics"]
    assert info["param_versions"] == clean[2]["param_versions"] == 13  # each round's parameters written once


def test_fault_settings_are_validated():
    with pytest.raises(ValueError, match="unknown keys \\['fail'\\]"):
        FaultInjector({"*": {"fail": 0.1}})
    with pytest.raises(ValueError, match="failure_rate must be in \\[0, 1\\), got 1.5"):
        FaultInjector({"GradientWorkerFunction": {"failure_rate": 1.5}})
