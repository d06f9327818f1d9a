"""Local-steps worker mode through the real state machine: each worker runs several minibatch SGD
steps on its shard and the aggregator averages the parameter changes by rows; it reaches the loss of
gradient mode in fewer rounds."""

from __future__ import annotations

import json


def _curve(cloud, name, hp) -> list[float]:
    request = {"dataset": "housing", "target": "price_k", "model_name": name, "n_shards": 2, "hyperparameters": hp}
    execution = cloud.run("TrainingStateMachine", request, name=name)
    assert execution["status"] == "SUCCEEDED", execution
    artifact_key = json.loads(execution["output"])["artifact_key"]
    artifact = json.loads(cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=artifact_key)["Body"].read())
    return [r["loss"] for r in artifact["training_curve"]]


def test_local_steps_reach_the_loss_of_gradient_mode_in_fewer_rounds(cloud, housing_sample):
    resp = cloud.request("POST", "/datasets/housing", housing_sample, headers={"Content-Type": "text/csv"})
    assert resp["statusCode"] == 201, resp
    common = {"optimizer": "sgd", "learning_rate": 0.1, "tolerance": 0.0}
    gradient = _curve(cloud, "run-gradient", {**common, "max_epochs": 30, "solver": "sgd"})
    local = _curve(
        cloud,
        "run-local",
        {**common, "max_epochs": 10, "worker_mode": "local_steps", "steps_per_invocation": 8, "batch_size": 40},
    )
    target = gradient[-1]  # gradient mode's loss after 30 rounds
    # the curve records the loss at each round's starting parameters
    reached = next(i for i, loss in enumerate(local) if loss <= target)
    assert reached < 10 < len(gradient)
    assert local[-1] < target
