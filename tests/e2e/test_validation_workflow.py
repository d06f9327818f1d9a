"""A validation split through the real state machine: the aggregator records the validation loss per
round in the training curve of the registered model, and early stopping keeps the best round."""

from __future__ import annotations

import json


def test_validation_loss_is_recorded_per_round(cloud, housing_sample):
    resp = cloud.request("POST", "/datasets/housing", housing_sample, headers={"Content-Type": "text/csv"})
    assert resp["statusCode"] == 201, resp
    request = {
        "dataset": "housing",
        "target": "price_k",
        "model_name": "validated",
        "n_shards": 2,
        "validation_fraction": 0.2,
        "hyperparameters": {"optimizer": "sgd", "learning_rate": 0.5, "max_epochs": 8, "patience": 2, "solver": "sgd"},
    }
    execution = cloud.run("TrainingStateMachine", request, name="run-validated")
    assert execution["status"] == "SUCCEEDED", execution
    artifact_key = json.loads(execution["output"])["artifact_key"]
    artifact = json.loads(cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=artifact_key)["Body"].read())
    curve = artifact["training_curve"]
    losses = [r["validation_loss"] for r in curve]
    assert len(curve) == 8 and all(loss > 0 for loss in losses)
    assert losses[-1] < losses[0]
    assert artifact["hyperparameters"]["patience"] == 2
