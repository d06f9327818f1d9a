"""Softmax and logistic regression through the real training state machine, against scikit-learn."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.linear_model import LogisticRegression

from mlcore.steps.preparation.in_memory import build_matrices
from mlcore.steps.tabular import column_kinds, read_csv, to_columns


def _csv(loader, labels) -> bytes:
    data = loader(as_frame=True)
    frame = data.frame.rename(columns={"target": "label"})
    frame["label"] = [labels[i] for i in data.target]
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    return buf.getvalue().encode()


@pytest.mark.parametrize(
    ("model", "loader", "labels"),
    [
        ("softmax_regression", load_wine, ["barolo", "grignolino", "barbera"]),
        ("logistic_regression", load_breast_cancer, ["malignant", "benign"]),
    ],
)
def test_classifier_trains_registers_and_serves_probabilities(cloud, model, loader, labels):
    csv = _csv(loader, labels)
    resp = cloud.request("POST", "/datasets/clf", csv, headers={"Content-Type": "text/csv"})
    version = json.loads(resp["body"])["version"]
    hp = {
        "model": model,
        "optimizer": "momentum",
        "learning_rate": 0.5,
        "l2": 0.01,
        "max_epochs": 400,
        "tolerance": 1e-3,
    }
    execution = cloud.run(
        "TrainingStateMachine",
        {
            "dataset": "clf",
            "version": version,
            "target": "label",
            "model_name": "clf",
            "n_shards": 3,
            "hyperparameters": hp,
        },
    )
    assert execution["status"] == "SUCCEEDED", execution
    registered = json.loads(execution["output"])

    frame = read_csv(csv)
    prep, train, test, _, _ = build_matrices(to_columns(frame), column_kinds(frame), "label", 0.2, 0, model)
    assert prep.classes == sorted(labels)
    n = train.shape[0]
    ref = LogisticRegression(C=1.0 / (0.01 * n), tol=1e-10, max_iter=10_000).fit(train[:, :-1], train[:, -1])
    ref_acc = ref.score(test[:, :-1], test[:, -1])
    assert registered["metrics"]["accuracy"] >= ref_acc - 1.0 / test.shape[0]  # at most one row worse
    assert registered["metrics"]["log_loss"] == pytest.approx(
        float(np.mean(-np.log(ref.predict_proba(test[:, :-1])[np.arange(test.shape[0]), test[:, -1].astype(int)]))),
        abs=0.02,
    )

    key = registered["artifact_key"]
    recorded = json.loads(cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=key)["Body"].read())["metrics"]
    assert "LogisticRegression(C=" in recorded["reference"]["estimator"]
    assert recorded["reference"]["test"]["accuracy"] == pytest.approx(ref_acc, abs=1.0 / test.shape[0])
    assert set(recorded["reference"]["difference"]) >= {"accuracy", "f1_macro", "log_loss"}

    row = frame.drop(columns="label").iloc[0].to_dict()
    resp = cloud.request("POST", "/models/clf/predict", {"instances": [row]})
    body = json.loads(resp["body"])
    assert resp["statusCode"] == 200 and body["classes"] == sorted(labels)
    assert body["predictions"][0] in labels
    probs = np.array(body["probabilities"][0])
    assert probs.sum() == pytest.approx(1.0) and body["classes"][int(probs.argmax())] == body["predictions"][0]
    X0 = prep.transform({k: [v] for k, v in row.items()})
    np.testing.assert_allclose(probs, ref.predict_proba(X0)[0], atol=0.05)
