"""Softmax and logistic regression through the real training state machine, against scikit-learn."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.linear_model import LogisticRegression

from mlcore.steps.preparation.in_memory import build_matrices
from mlcore.steps.tabular import column_kinds, read_csv, to_columns
from mllocal.cloud import LocalCloud
from mllocal.template import local_stack


def _csv(loader, labels) -> bytes:
    data = loader(as_frame=True)
    frame = data.frame.rename(columns={"target": "label"})
    frame["label"] = [labels[i] for i in data.target]
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    return buf.getvalue().encode()


@pytest.fixture(
    scope="module",
    params=[
        ("softmax_regression", load_wine, ["barolo", "grignolino", "barbera"]),
        ("logistic_regression", load_breast_cancer, ["malignant", "benign"]),
    ],
    ids=lambda p: p[0],
)
def trained(request):
    """A classifier trained by the state machine, and scikit-learn's on the same split and features."""
    model, loader, labels = request.param
    csv = _csv(loader, labels)
    with LocalCloud(local_stack(overrides={"LogLevel": "WARNING"})) as cloud:
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
        frame = read_csv(csv)
        prep, train, test, _, _ = build_matrices(to_columns(frame), column_kinds(frame), "label", 0.2, 0, model)
        n = train.shape[0]
        ref = LogisticRegression(C=1.0 / (0.01 * n), tol=1e-10, max_iter=10_000).fit(train[:, :-1], train[:, -1])
        yield SimpleNamespace(
            cloud=cloud,
            registered=json.loads(execution["output"]),
            labels=labels,
            frame=frame,
            prep=prep,
            test=test,
            ref=ref,
            ref_acc=ref.score(test[:, :-1], test[:, -1]),
        )


def test_classes_are_the_sorted_labels(trained):
    assert trained.prep.classes == sorted(trained.labels)


def test_classifier_metrics_match_scikit_learn(trained):
    test, ref, metrics = trained.test, trained.ref, trained.registered["metrics"]
    assert metrics["accuracy"] >= trained.ref_acc - 1.0 / test.shape[0]  # at most one row worse
    assert metrics["log_loss"] == pytest.approx(
        float(np.mean(-np.log(ref.predict_proba(test[:, :-1])[np.arange(test.shape[0]), test[:, -1].astype(int)]))),
        abs=0.02,
    )


def test_the_artifact_records_the_scikit_learn_reference(trained):
    key = trained.registered["artifact_key"]
    recorded = json.loads(trained.cloud.s3.get_object(Bucket=trained.cloud.stack.bucket, Key=key)["Body"].read())
    recorded = recorded["metrics"]
    assert "LogisticRegression(C=" in recorded["reference"]["estimator"]
    assert recorded["reference"]["test"]["accuracy"] == pytest.approx(trained.ref_acc, abs=1.0 / trained.test.shape[0])
    assert set(recorded["reference"]["difference"]) >= {"accuracy", "f1_macro", "log_loss"}


def test_the_registered_classifier_serves_probabilities(trained):
    labels = trained.labels
    row = trained.frame.drop(columns="label").iloc[0].to_dict()
    resp = trained.cloud.request("POST", "/models/clf/predict", {"instances": [row]})
    body = json.loads(resp["body"])
    assert resp["statusCode"] == 200 and body["classes"] == sorted(labels)
    assert body["predictions"][0] in labels
    probs = np.array(body["probabilities"][0])
    assert probs.sum() == pytest.approx(1.0) and body["classes"][int(probs.argmax())] == body["predictions"][0]
    X0 = trained.prep.transform({k: [v] for k, v in row.items()})
    np.testing.assert_allclose(probs, trained.ref.predict_proba(X0)[0], atol=0.05)
