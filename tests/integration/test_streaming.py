"""The bounded-memory Preprocess path (two streaming passes) on moto, in small chunks."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from mlcore.infra.errors import InvalidInput
from mlcore.infra.storage import S3Store
from mlcore.steps.preparation import dispatch, streaming
from mlcore.steps.schemas import TrainingRequest
from tests.helpers import keys


def _csv(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(10, 3, n).round(3)
    income = np.exp(rng.normal(10, 0.5, n)).round(0)
    city = rng.choice(["a", "b", "c"], n).astype(object)
    x_text = np.array([f"{v}" for v in x], dtype=object)
    x_text[rng.random(n) < 0.1] = ""
    city[rng.random(n) < 0.1] = ""
    y = 2 * x + 0.001 * income + rng.normal(0, 1, n)
    lines = ["id,x,income,city,y"] + [f"u{i},{x_text[i]},{income[i]:.0f},{city[i]},{y[i]:.4f}" for i in range(n)]
    return ("\n".join(lines) + "\n").encode()


SPEC = {"columns": {"id": {"drop": True}, "income": {"transform": "log1p"}, "city": {"encoding": "onehot"}}}


def _load(cloud, key):
    body = cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=key)["Body"].read()
    return np.load(io.BytesIO(body), allow_pickle=False)


@pytest.fixture
def ingested(cloud, monkeypatch):
    data = _csv()
    resp = cloud.request("POST", "/datasets/big", data, headers={"Content-Type": "text/csv"})
    assert resp["statusCode"] == 201
    monkeypatch.setattr(streaming, "CHUNK_ROWS", 700)  # several chunks, one not a multiple of the others
    return data


@pytest.fixture
def streamed(cloud, ingested):
    request = TrainingRequest.model_validate(
        {"dataset": "big", "target": "y", "model_name": "big", "n_shards": 3, "seed": 4, "preprocessing": SPEC}
    )
    result = dispatch.preprocess(S3Store(cloud.stack.bucket), request, "run-stream", stream_threshold=0)
    manifest = json.loads(cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=result.manifest_key)["Body"].read())
    return request, result, manifest, [_load(cloud, s.key) for s in result.shards]


def test_streaming_writes_float32_shards_of_the_planned_sizes(cloud, streamed):
    _, result, manifest, shards = streamed
    assert manifest["streaming"]["chunk_rows"] == 700
    assert [s.shape[0] for s in shards] == [s.rows for s in result.shards]
    test = _load(cloud, manifest["test"]["key"])
    assert test.dtype == np.float32 and test.shape == (result.test_rows, result.n_features + 1)
    assert result.train_rows + result.test_rows == 3000
    assert 450 < result.test_rows < 750  # each row in test with probability 0.2
    train = np.vstack(shards)
    assert train.dtype == np.float32 and np.isfinite(train).all()


def test_streaming_statistics_are_the_training_rows(streamed):
    request, _, manifest, shards = streamed
    train = np.vstack(shards)
    # standardized columns have mean 0 and std 1 over exactly the training rows
    np.testing.assert_allclose(train[:, :2].mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(train[:, :2].std(axis=0), 1, atol=1e-4)

    # same rows, same split, computed independently: the median fill is exact below the reservoir size
    frame = pd.read_csv(io.BytesIO(_csv()), skipinitialspace=True)
    split = np.concatenate([streaming.row_splits(len(c), s, request) for s, c in _chunked(frame, 700)])
    training = frame[split == streaming.TRAIN]
    x_col, income_col, city_col = manifest["preprocessor"]["columns"]
    assert x_col["fill"] == training["x"].median()
    filled_x = training["x"].fillna(x_col["fill"])
    assert x_col["mean"] == pytest.approx(filled_x.mean(), rel=1e-12)
    assert x_col["scale"] == pytest.approx(filled_x.std(ddof=0), rel=1e-9)
    assert income_col["mean"] == pytest.approx(np.log1p(training["income"]).mean(), rel=1e-12)
    assert city_col["fill"] == training["city"].mode()[0] and city_col["categories"] == ["a", "b", "c"]
    assert np.array_equal(np.sort(train[:, -1]), np.sort(training["y"].to_numpy(dtype=np.float32)))


def test_both_paths_write_the_same_manifest_fields(cloud, streamed):
    request, _, streamed_manifest, _ = streamed
    in_memory = dispatch.preprocess(S3Store(cloud.stack.bucket), request, "run-memory")
    manifest = json.loads(cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=in_memory.manifest_key)["Body"].read())
    assert set(streamed_manifest) - set(manifest) == {"streaming"}
    for field in ("dataset", "target", "dropped_columns", "spec", "classes", "feature_names", "schema", "format"):
        assert streamed_manifest[field] == manifest[field], field
    shard_list = cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=in_memory.shards_key)["Body"].read()
    assert json.loads(shard_list) == manifest["shards"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"target": "nope"}, "^target column 'nope' is not in the data set \\(columns: id, x, income, city, y\\)$"),
        ({"n_shards": 1000, "test_fraction": 0.85}, "^n_shards=1000 is more than the \\d+ training rows$"),
        ({"validation_fraction": 0.0001}, "^\\d+ training rows are too few for validation_fraction=0.0001$"),
        (
            {"target": "city", "hyperparameters": {"model": "logistic_regression"}},
            "^target column 'city': logistic_regression needs exactly 2 classes, got 3; use softmax_regression$",
        ),
    ],
)
def test_both_paths_refuse_with_the_same_message(cloud, ingested, change, message):
    request = TrainingRequest.model_validate(
        {"dataset": "big", "target": "y", "model_name": "big", "preprocessing": SPEC, **change}
    )
    store = S3Store(cloud.stack.bucket)
    for threshold in (0, dispatch.STREAM_THRESHOLD_BYTES):  # streaming, in memory
        with pytest.raises(InvalidInput, match=message):
            dispatch.preprocess(store, request, f"run-{threshold}", stream_threshold=threshold)
    assert keys(cloud, "processed/") == []


def _chunked(frame, size):
    for start in range(0, len(frame), size):
        yield start, frame.iloc[start : start + size]


def test_streaming_failure_writes_nothing(cloud, ingested):
    request = TrainingRequest.model_validate(
        {"dataset": "big", "target": "y", "model_name": "big", "preprocessing": {"columns": {"id": {"drop": False}}}}
    )
    with pytest.raises(InvalidInput, match="^column 'id' has 2400|^column 'id' has \\d+ categories"):
        dispatch.preprocess(S3Store(cloud.stack.bucket), request, "run-stream", stream_threshold=0)
    assert keys(cloud, "processed/") == []


def test_streaming_classification_maps_labels_to_class_indices(cloud, monkeypatch):
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, 900)
    labels = np.where(x > 0.5, "high", np.where(x < -0.5, "low", "mid"))
    lines = ["x,label"] + [f"{a:.4f},{b}" for a, b in zip(x, labels, strict=True)]
    resp = cloud.request("POST", "/datasets/cls", "\n".join(lines) + "\n", headers={"Content-Type": "text/csv"})
    assert resp["statusCode"] == 201
    monkeypatch.setattr(streaming, "CHUNK_ROWS", 250)
    request = TrainingRequest.model_validate(
        {
            "dataset": "cls",
            "target": "label",
            "model_name": "cls",
            "n_shards": 2,
            "hyperparameters": {"model": "softmax_regression"},
        }
    )
    result = dispatch.preprocess(S3Store(cloud.stack.bucket), request, "run-cls", stream_threshold=0)
    assert (result.classes, result.n_outputs) == (["high", "low", "mid"], 3)
    train = np.vstack([_load(cloud, s.key) for s in result.shards])
    scaled = train[:, 0]  # standardization keeps the order of x: largest is "high" (0), smallest "low" (1)
    assert set(np.unique(train[:, -1])) == {0.0, 1.0, 2.0}
    assert (train[scaled == scaled.max(), -1] == 0).all() and (train[scaled == scaled.min(), -1] == 1).all()
