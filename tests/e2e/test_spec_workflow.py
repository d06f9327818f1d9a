"""A preprocessing spec through the whole workflow: the shards are what the spec says, the model artifact
carries the spec, and Predict (raw rows in, through ModelArtifact.preprocessor.transform) gives exactly
the predictions of the trained weights on the training-time test block: no train/serve skew."""

from __future__ import annotations

import csv
import io
import json
from types import SimpleNamespace

import numpy as np
import pytest

from mlcore.steps.preparation.in_memory import split_indices
from mllocal.cloud import LocalCloud
from mllocal.template import ROOT, local_stack
from tests.helpers import keys

DATA = ROOT / "data" / "insurance.csv"
SPEC = json.loads((ROOT / "data" / "insurance_spec.json").read_text())
N_ROWS = 300


def _obj(cloud, key):
    return cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=key)["Body"].read()


@pytest.fixture(scope="module")
def spec_run():
    """A model trained with the insurance spec on its first rows; its artifact, preprocessor and manifest."""
    lines = DATA.read_text().splitlines()[: N_ROWS + 1]
    with LocalCloud(local_stack(overrides={"LogLevel": "WARNING"})) as cloud:
        body = "\n".join(lines) + "\n"
        resp = cloud.request("POST", "/datasets/insurance", body, headers={"Content-Type": "text/csv"})
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
        manifest_key = next(k for k in keys(cloud, "processed/") if k.endswith("manifest.json"))
        yield SimpleNamespace(
            cloud=cloud,
            lines=lines,
            artifact=artifact,
            prep=artifact["preprocessor"],
            kinds={c["name"]: c["kind"] for c in artifact["preprocessor"]["columns"]},
            manifest=json.loads(_obj(cloud, manifest_key)),
        )


def test_the_artifact_carries_the_spec(spec_run):
    prep = spec_run.prep
    assert prep["spec"]["columns"]["occupation"] == {**prep["spec"]["columns"]["occupation"], "hash_buckets": 64}
    assert prep["dropped_columns"] == ["policy_id", "email"]
    assert spec_run.kinds == {
        "age": "numeric",
        "bmi": "numeric",
        "income": "numeric",
        "children": "numeric",
        "smoker": "categorical",
        "region": "categorical",
        "occupation": "hashed",
    }
    assert not any("@example.com" in key or "P1000" in key for key in spec_run.artifact["feature_names"])


def test_the_shards_are_what_the_spec_says(spec_run):
    manifest = spec_run.manifest
    assert manifest["spec"] == spec_run.prep["spec"] and manifest["dropped_columns"] == ["policy_id", "email"]


def test_predict_applies_the_training_transform_to_raw_rows(spec_run):
    cloud, kinds, artifact = spec_run.cloud, spec_run.kinds, spec_run.artifact
    # the raw test rows, as a client would send them (identifiers left out, "" as null)
    rows = list(csv.DictReader(io.StringIO("\n".join(spec_run.lines))))
    _, test_idx = split_indices(len(rows), 0.2, 5)
    instances = [
        {
            name: (None if rows[i][name] == "" else float(rows[i][name]) if kinds[name] == "numeric" else rows[i][name])
            for name in kinds
        }
        for i in test_idx
    ]
    # the version this run registered (20 epochs need not beat the trivial baseline to become production)
    resp = cloud.request("POST", "/models/insurance/predict", {"instances": instances}, query={"alias": "latest"})
    assert resp["statusCode"] == 200, resp
    served = np.array(json.loads(resp["body"])["predictions"])

    test_block = np.load(io.BytesIO(_obj(cloud, spec_run.manifest["test"]["key"])), allow_pickle=False)
    # the test block holds the raw test rows' targets: the served rows are the same rows
    np.testing.assert_allclose(test_block[:, -1], [float(rows[i]["charges"]) for i in test_idx], rtol=1e-6)
    coefficients = np.array(artifact["model"]["coefficients"])
    expected = test_block[:, :-1].astype(np.float64) @ coefficients[:, 0] + artifact["model"]["intercept"][0]
    np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-3 * np.abs(expected).max())
