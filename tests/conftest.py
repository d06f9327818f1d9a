"""Shared fixtures: the template's resources on moto with the real handlers (mllocal.LocalCloud), a small
housing sample, and a model registered by the real steps. Plain helpers are in tests/helpers.py."""

from __future__ import annotations

import pytest

from mlcore.serving.registry import ModelArtifact
from mllocal.cloud import LocalCloud
from mllocal.template import local_stack
from tests.helpers import HOUSING_CSV, first_rows, load_event

MODEL_ROUNDS = 30  # from one round (test R² -10.5) to R² 0.9


@pytest.fixture
def cloud():
    with LocalCloud(local_stack(overrides={"LogLevel": "WARNING"})) as c:
        yield c


@pytest.fixture(scope="session")
def housing_sample() -> bytes:
    """The header and the first 400 rows of data/housing.csv."""
    return first_rows(HOUSING_CSV, 400)


@pytest.fixture
def model(cloud) -> ModelArtifact:
    """Version 1 of 'housing-sample', registered on moto by the real steps from the committed events: MODEL_ROUNDS
    rounds, so that it beats the trivial baseline (test R² > 0) and is the production version."""
    for name, function in (
        ("ingest_api", "IngestFunction"),
        ("preprocess", "PreprocessFunction"),
        ("aggregator_init", "AggregatorFunction"),
    ):
        _, error = cloud.invoke(function, load_event(name))
        assert error is None
    state = {key: load_event("aggregator")[key] for key in ("round", "params_key")}
    for _ in range(MODEL_ROUNDS):
        results = []
        for index in (0, 1):
            event = {**load_event("gradient_worker"), "round": state["round"], "params_key": state["params_key"]}
            event["shard"] = {"index": index, "key": f"processed/run-example/shards/shard-{index:05d}.npy", "rows": 15}
            results.append(cloud.invoke("GradientWorkerFunction", event)[0])
        event = {**load_event("aggregator"), "round": state["round"], "params_key": state["params_key"]}
        event["results"] = results
        state, error = cloud.invoke("AggregatorFunction", event)
        assert error is None, state
    registered, error = cloud.invoke("EvaluateFunction", {**load_event("evaluate"), "train": state})
    assert error is None
    doc = cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=registered["artifact_key"])["Body"].read()
    return ModelArtifact.model_validate_json(doc)
