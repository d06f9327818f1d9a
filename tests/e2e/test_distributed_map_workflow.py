"""More shards than inline_map_max_shards: the gradients run in a Distributed Map whose items are read from
the shard list Preprocess wrote, processed/<run>/shards.json (ItemReader), with the inline Map's parameters."""

from __future__ import annotations

import io
import json
import math

import numpy as np


def _history(cloud, arn):
    pages = cloud.sfn.get_paginator("get_execution_history").paginate(executionArn=arn)
    return [e for page in pages for e in page["events"]]


def test_distributed_map_above_the_inline_threshold_matches_the_inline_map(cloud, housing_sample):
    resp = cloud.request("POST", "/datasets/housing", housing_sample, headers={"Content-Type": "text/csv"})
    assert resp["statusCode"] == 201, resp
    thetas, histories = {}, {}
    for name, threshold in (("run-inline", 40), ("run-distributed", 2)):
        request = {
            "dataset": "housing",
            "target": "price_k",
            "model_name": name,
            "n_shards": 3,
            "inline_map_max_shards": threshold,
            "hyperparameters": {"max_epochs": 3, "tolerance": 0.0, "solver": "sgd"},
        }
        arn = cloud.start("TrainingStateMachine", request, name=name)
        execution = cloud.wait(arn)
        assert execution["status"] == "SUCCEEDED", execution
        key = f"runs/{name}/params/round-00003.npz"
        thetas[name] = np.load(io.BytesIO(cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=key)["Body"].read()))[
            "theta"
        ]
        histories[name] = {e["type"] for e in _history(cloud, arn)}
    assert "MapRunStarted" in histories["run-distributed"] and "MapRunStarted" not in histories["run-inline"]
    np.testing.assert_array_equal(thetas["run-distributed"], thetas["run-inline"])


def test_the_cost_of_a_distributed_run_counts_its_child_executions(cloud, housing_sample):
    resp = cloud.request("POST", "/datasets/housing", housing_sample, headers={"Content-Type": "text/csv"})
    assert resp["statusCode"] == 201, resp
    request = {
        "dataset": "housing",
        "target": "price_k",
        "model_name": "distributed",
        "n_shards": 3,
        "inline_map_max_shards": 2,
        "hyperparameters": {"max_epochs": 3, "tolerance": 0.0, "solver": "sgd"},
    }
    arn = cloud.start("TrainingStateMachine", request, name="run-0000000000d1")
    assert cloud.wait(arn)["status"] == "SUCCEEDED"
    doc = json.loads(cloud.request("GET", "/training-runs/run-0000000000d1/cost")["body"])
    usage = doc["actual"]["usage"]
    # the workers ran in the Distributed Map's child executions, which the parent's history does not hold:
    # 3 rounds x 3 shards, each child 2 transitions (its start, its worker state); the billed time is estimated
    worker = usage["functions"]["GradientWorker"]
    assert (worker["invocations"], worker["memory_mb"], usage["functions"]["Aggregator"]["invocations"]) == (9, 1769, 4)
    rows = usage["train_rows"] / 3
    assert worker["billed_ms"] == 9 * math.ceil(round(12 + 0.107 / 1000 * rows, 6))
    parent = sum(e["type"].endswith("StateEntered") for e in _history(cloud, arn))
    assert usage["state_transitions"] == parent + 2 * 9
    assert (usage["rounds"], usage["express_executions"]) == (3, 0)
