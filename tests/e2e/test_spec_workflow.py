"""A preprocessing spec through the whole workflow: the shards are what the spec says, the model artifact
carries the spec, and Predict (raw rows in, through ModelArtifact.preprocessor.transform) gives exactly
the predictions of the trained weights on the training-time test block: no train/serve skew."""

from __future__ import annotations

import csv
import io
import json

import numpy as np

from mlcore.steps.preparation.in_memory import split_indices
from mllocal.template import ROOT
from tests.conftest import keys

DATA = ROOT / "data" / "insurance.csv"
SPEC = json.loads((ROOT / "data" / "insurance_spec.json").read_text())
N_ROWS = 300


def _obj(cloud, key):
    return cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=key)["Body"].read()


def test_spec_trains_and_serves_the_same_transform(cloud):
    lines = DATA.read_text().splitlines()[: N_ROWS + 1]
    resp = cloud.request("POST", "/datasets/insurance", "\n".join(lines) + "\n", headers={"Content-Type": "text/csv"})
    assert resp["statusCode"] == 201, resp
    request = {
        "dataset": "insurance",
        "target": "charges",
        "model_name": "insurance",
        "n_shards": 2,
        "seed": 5,
        "preprocessing": SPEC,
        "hyperparameters": {"optimizer": "adam", "learning_rate": 0.1, "max_epochs": 20},
    }
    execution = cloud.run("TrainingStateMachine", request)
    assert execution["status"] == "SUCCEEDED", execution
    model = json.loads(execution["output"])
    artifact = json.loads(_obj(cloud, model["artifact_key"]))
    prep = artifact["preprocessor"]
    assert prep["spec"]["columns"]["occupation"] == {**prep["spec"]["columns"]["occupation"], "hash_buckets": 64}
    assert prep["dropped_columns"] == ["policy_id", "email"]
    kinds = {c["name"]: c["kind"] for c in prep["columns"]}
    assert kinds == {
        "age": "numeric",
        "bmi": "numeric",
        "income": "numeric",
        "children": "numeric",
        "smoker": "categorical",
        "region": "categorical",
        "occupation": "hashed",
    }
    assert not any("@example.com" in key or "P1000" in key for key in artifact["feature_names"])
    manifest_key = next(k for k in keys(cloud, "processed/") if k.endswith("manifest.json"))
    manifest = json.loads(_obj(cloud, manifest_key))
    assert manifest["spec"] == prep["spec"] and manifest["dropped_columns"] == ["policy_id", "email"]

    # the raw test rows, as a client would send them (identifiers left out, "" as null)
    rows = list(csv.DictReader(io.StringIO("\n".join(lines))))
    _, test_idx = split_indices(len(rows), 0.2, 5)
    instances = [
        {
            name: (None if rows[i][name] == "" else float(rows[i][name]) if kinds[name] == "numeric" else rows[i][name])
            for name in kinds
        }
        for i in test_idx
    ]
    resp = cloud.request("POST", "/models/insurance/predict", {"instances": instances})
    assert resp["statusCode"] == 200, resp
    served = np.array(json.loads(resp["body"])["predictions"])

    test_block = np.load(io.BytesIO(_obj(cloud, manifest["test"]["key"])), allow_pickle=False)
    coefficients = np.array(artifact["model"]["coefficients"])
    expected = test_block[:, :-1].astype(np.float64) @ coefficients[:, 0] + artifact["model"]["intercept"][0]
    np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-3 * np.abs(expected).max())
    np.testing.assert_allclose(test_block[:, -1], [float(rows[i]["charges"]) for i in test_idx], rtol=1e-6)
