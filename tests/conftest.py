"""Shared fixtures: the template's resources on moto with the real handlers (mllocal.LocalCloud), a small
housing sample, and a model registered by the real steps. Plain helpers are in tests/helpers.py."""

from __future__ import annotations

import pytest

from mlcore.infra import layout
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


_MODEL_BUCKET: dict[str, tuple[bytes, str, dict[str, str]]] = {}  # the bucket after the first `model` registered it


@pytest.fixture
def model(cloud) -> ModelArtifact:
    """Version 1 of 'housing-sample', registered on moto by the real steps from the committed events: MODEL_ROUNDS
    rounds, so that it beats the trivial baseline (test R² > 0) and is the production version.

    The steps run once per session; later tests get the bucket's objects as they left it (bodies, content types and
    metadata), copied into their own fresh cloud."""
    if not _MODEL_BUCKET:
        _register_model(cloud)
        _MODEL_BUCKET.update(_objects(cloud))
    else:
        for key, (body, content_type, metadata) in _MODEL_BUCKET.items():
            cloud.s3.put_object(
                Bucket=cloud.stack.bucket, Key=key, Body=body, ContentType=content_type, Metadata=metadata
            )
    doc = _MODEL_BUCKET[layout.version_key("housing-sample", 1)][0]
    return ModelArtifact.model_validate_json(doc)


def _objects(cloud) -> dict[str, tuple[bytes, str, dict[str, str]]]:
    found = {}
    for page in cloud.s3.get_paginator("list_objects_v2").paginate(Bucket=cloud.stack.bucket):
        for item in page.get("Contents", []):
            got = cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=item["Key"])
            found[item["Key"]] = (got["Body"].read(), got["ContentType"], got.get("Metadata") or {})
    return found


def _register_model(cloud) -> None:
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
    assert registered["artifact_key"] == layout.version_key("housing-sample", 1), registered
