"""A data set of three parts prepared a piece per function through the real training state machine (thresholds
lowered so a small data set takes the distributed path): it trains, evaluates on the pieces' test blocks and
predicts; a bad part fails the run with an error naming it, and nothing of the run's preparation is left."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlcore.infra import layout
from mlcore.steps.preparation import distributed, streaming
from mllocal.cloud import LocalCloud
from mllocal.template import local_stack
from tests.helpers import keys

HEADER = "x1,x2,city,y\n"


def _part(seed: int, n: int) -> str:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        x1, x2, city = rng.normal(), rng.normal(), rng.choice(["a", "b"])
        rows.append(
            f"{x1:.4f},{x2:.4f},{city},{3 * x1 - 2 * x2 + (1.5 if city == 'a' else 0) + 0.01 * rng.normal():.4f}\n"
        )
    return HEADER + "".join(rows)


def _ingest(cloud: LocalCloud, name: str, parts: list[str]) -> dict:
    for i, body in enumerate(parts):
        cloud.s3.put_object(Bucket=cloud.stack.bucket, Key=f"landing/{name}/part-{i}.csv", Body=body.encode())
    resp = cloud.request("POST", f"/datasets/{name}", {"s3_prefix": f"landing/{name}/"})
    assert resp["statusCode"] == 202, resp
    cloud.settle()
    return json.loads(cloud.request("GET", f"/datasets/{name}")["body"])


@pytest.fixture(scope="module")
def cloud():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(distributed, "DISTRIBUTED_THRESHOLD_BYTES", 0)
        patch.setattr(distributed, "PIECE_BYTES", 1)  # a piece per part
        patch.setattr(streaming, "CHUNK_ROWS", 50)
        with LocalCloud(local_stack(overrides={"LogLevel": "WARNING"})) as c:
            yield c


def _request(name: str, model_name: str) -> dict:
    return {
        "dataset": name,
        "target": "y",
        "model_name": model_name,
        "n_shards": 4,
        "validation_fraction": 0.1,
        "hyperparameters": {"solver": "exact"},
    }


def test_three_parts_are_prepared_by_pieces_then_train_evaluate_and_predict(cloud):
    meta = _ingest(cloud, "parts3", [_part(1, 120), _part(2, 90), _part(3, 150)])
    assert meta["status"] == "ready" and len(meta["parts"]) == 3 and meta["rows"] == 360
    execution = cloud.run("TrainingStateMachine", _request("parts3", "parts3"), name="run-pieces")
    assert execution["status"] == "SUCCEEDED", execution
    output = json.loads(execution["output"])

    manifest = json.loads(
        cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=layout.manifest_key("run-pieces"))["Body"].read()
    )
    assert manifest["distributed"]["pieces"] == 3
    assert [b["key"] for b in manifest["test"]["blocks"]] == [
        layout.held_out_piece_key("run-pieces", i) for i in range(3)
    ]
    assert len(manifest["shards"]) == 4 and manifest["validation"]["rows"] > 0
    rows = sum(s["rows"] for s in manifest["shards"]) + manifest["test"]["rows"] + manifest["validation"]["rows"]
    assert rows == 360
    assert keys(cloud, layout.processed_prefix("run-pieces")) == sorted(
        [
            *(s["key"] for s in manifest["shards"]),
            *(b["key"] for b in manifest["test"]["blocks"]),
            layout.held_out_key("run-pieces", "validation"),
            layout.shard_list_key("run-pieces"),
            layout.manifest_key("run-pieces"),
        ]
    )

    artifact = json.loads(cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=output["artifact_key"])["Body"].read())
    test_metrics = artifact["metrics"]["test"]
    assert test_metrics["r2"] > 0.99 and artifact["metrics"]["test_rows_evaluated"]["of"] == manifest["test"]["rows"]
    assert artifact["lineage"]["test_rows"] == manifest["test"]["rows"]

    instances = [{"x1": 1.0, "x2": 0.0, "city": "a"}, {"x1": 0.0, "x2": 1.0, "city": "b"}]
    resp = cloud.request("POST", "/models/parts3/predict", {"instances": instances}, query={"alias": "latest"})
    assert resp["statusCode"] == 200, resp
    np.testing.assert_allclose(json.loads(resp["body"])["predictions"], [4.5, -2.0], atol=0.1)


def test_a_bad_part_fails_the_run_naming_it_and_leaves_nothing(cloud):
    meta = _ingest(cloud, "broken", [_part(4, 60), _part(5, 60), _part(6, 60)])
    bad = meta["parts"][2]
    cloud.s3.put_object(Bucket=cloud.stack.bucket, Key=bad["key"], Body=(HEADER + '1.0,2.0,"a,3\n').encode())
    execution = cloud.run("TrainingStateMachine", _request("broken", "broken"), name="run-broken")
    assert execution["status"] == "FAILED"
    assert execution["error"] == "InvalidInput"
    assert "part 2 (landing/broken/part-2.csv): the file could not be read in chunks" in execution["cause"]
    assert keys(cloud, layout.processed_prefix("run-broken")) == []
    assert keys(cloud, layout.preparation_prefix("run-broken")) == []
