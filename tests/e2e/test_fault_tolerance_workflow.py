"""Failed shards through the real state machine: the Map's Catch hands the aggregator a failure marker,
which averages over the shards that returned when the failures are within the tolerated percentage."""

from __future__ import annotations

import json

import pytest

from mllocal.cloud import LocalCloud
from mllocal.template import local_stack


def _broken_shard(spec, event):
    """Shard 3 fails in round 1 with an error Step Functions does not retry (its shard is gone)."""
    if spec.logical_id == "GradientWorkerFunction" and event.get("round") == 1 and event["shard"]["index"] == 3:
        event["shard"]["key"] = "processed/missing.npy"


@pytest.mark.parametrize(("tolerated", "status"), [(25, "SUCCEEDED"), (0, "FAILED")])
def test_a_failed_shard_is_tolerated_only_within_the_percentage(tolerated, status, housing_sample):
    with LocalCloud(local_stack(overrides={"LogLevel": "WARNING"}), hook=_broken_shard) as cloud:
        resp = cloud.request("POST", "/datasets/housing", housing_sample, headers={"Content-Type": "text/csv"})
        assert resp["statusCode"] == 201, resp
        request = {
            "dataset": "housing",
            "target": "price_k",
            "model_name": "small",
            "n_shards": 4,
            "hyperparameters": {"max_epochs": 3, "tolerated_failure_percentage": tolerated, "solver": "sgd"},
        }
        execution = cloud.run("TrainingStateMachine", request, name="run-faulty")
        assert execution["status"] == status, execution
        if status == "FAILED":
            assert execution["error"] == "RoundFailed"
            assert "shards [3] of 4 failed in round 1 (NotFound), over the tolerated 0%" in execution["cause"]
            return
        get = cloud.s3.get_object
        rounds = [
            json.loads(get(Bucket=cloud.stack.bucket, Key=f"runs/run-faulty/rounds/round-{r:05d}.json")["Body"].read())
            for r in range(3)
        ]
        assert [r["failed_shards"] for r in rounds] == [[], [3], []]
        assert rounds[1]["rows"] == rounds[0]["rows"] - 80  # shard 3's 80 rows left out of the average
