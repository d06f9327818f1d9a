"""Logs of a whole run (ingest, training workflow, predictions) never contain feature values or raw rows."""

from __future__ import annotations

import io
import json

import pytest

from mlcore.infra.observability import logger
from mllocal.cloud import LocalCloud
from mllocal.template import local_stack

SECRET_TOWN = "zz-secret-town"
SECRET_VALUE = "987654.321"


@pytest.fixture
def captured_logs():
    """Everything the handlers' Powertools logger writes (its stream is set once per process)."""
    stream = io.StringIO()
    previous = logger.registered_handler.setStream(stream)
    yield stream
    logger.registered_handler.setStream(previous)


def test_debug_logs_of_a_run_contain_no_feature_values(captured_logs, capfd):
    rows = ["size,town,price"] + [f"{50 + i},{SECRET_TOWN if i % 3 else 'other'},{100 + 2 * i}" for i in range(60)]
    rows[7] = f"{SECRET_VALUE},{SECRET_TOWN},170"
    csv = ("\n".join(rows) + "\n").encode()
    with LocalCloud(local_stack(overrides={"LogLevel": "DEBUG"})) as cloud:
        resp = cloud.request("POST", "/datasets/private", csv, headers={"Content-Type": "text/csv"})
        assert resp["statusCode"] == 201
        request = {
            "dataset": "private",
            "target": "price",
            "model_name": "private",
            "n_shards": 2,
            "hyperparameters": {"max_epochs": 3},
        }
        assert cloud.run("TrainingStateMachine", request)["status"] == "SUCCEEDED"
        latest = {"alias": "latest"}  # 3 epochs: not better than the mean, so not production (serving.md)
        resp = cloud.request(
            "POST",
            "/models/private/predict",
            {"instances": [{"size": 4242.4242, "town": "yy-private-town"}]},
            query=latest,
        )
        assert resp["statusCode"] == 200
        bad = cloud.request(
            "POST", "/models/private/predict", {"instances": [{"size": "31337.5", "town": "x"}]}, query=latest
        )
        assert bad["statusCode"] == 400
    logs = capfd.readouterr()
    text = captured_logs.getvalue() + logs.out + logs.err
    assert "round aggregated" in text and "model registered" in text  # the handlers' logs were captured
    for secret in (SECRET_TOWN, SECRET_VALUE, "4242.4242", "yy-private-town", "31337.5"):
        assert secret not in text, secret
    assert json.dumps(rows[1]) not in text
