"""Preprocess, GradientWorker, Aggregator and Evaluate handlers on moto, driven by the committed events."""

from __future__ import annotations

import copy
import io
import json

import numpy as np
import pytest

from mlcore.steps.schemas import unpack_vector
from tests.helpers import keys, load_event, versions


def _ok(cloud, function, event):
    payload, error = cloud.invoke(function, event)
    assert error is None, payload
    return payload


def _array(cloud, key):
    return np.load(
        io.BytesIO(cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=key)["Body"].read()), allow_pickle=False
    )


def _vector(cloud, result):
    """A worker result's vector: inline, or from S3."""
    return unpack_vector(result["gradient"]) if result["gradient"] else _array(cloud, result["gradient_key"])


@pytest.fixture
def prepared(cloud):
    """The sample data set ingested and preprocessed into 2 shards (events/preprocess.json)."""
    _ok(cloud, "IngestFunction", load_event("ingest_api"))
    return _ok(cloud, "PreprocessFunction", load_event("preprocess"))


def _manifest(cloud, prepared) -> dict:
    key = prepared["data"]["manifest_key"]
    return json.loads(cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=key)["Body"].read())


def test_preprocess_reports_the_split(prepared):
    data = prepared["data"]
    assert [s["rows"] for s in data["shards"]] == [15, 15]
    assert (data["train_rows"], data["test_rows"], data["n_features"]) == (30, 10, 9)


def test_preprocess_writes_a_manifest_of_the_features(cloud, prepared):
    assert _manifest(cloud, prepared)["feature_names"] == [
        "area_m2",
        "bedrooms",
        "age_years",
        "distance_km",
        "lot_m2",
        "neighborhood=harbor",
        "neighborhood=hills",
        "neighborhood=old_town",
        "neighborhood=riverside",
    ]


def test_preprocess_writes_float32_shards_standardized_on_the_training_rows(cloud, prepared):
    shards = [_array(cloud, s["key"]) for s in prepared["data"]["shards"]]
    assert all(s.dtype == np.float32 and s.shape == (15, 10) for s in shards)
    train = np.vstack(shards)
    # statistics were fitted on the training rows: standardized numeric columns have mean 0, std 1
    np.testing.assert_allclose(train[:, :5].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(train[:, :5].std(axis=0), 1, atol=1e-5)
    assert not np.isnan(train).any()


def test_preprocess_writes_the_test_block(cloud, prepared):
    assert _array(cloud, _manifest(cloud, prepared)["test"]["key"]).shape == (10, 10)


def test_preprocess_passes_the_validated_request_on(prepared):
    assert prepared["request"]["hyperparameters"]["max_epochs"] == 50  # validated request carried on


def _preprocess_without_the_target(cloud):
    _ok(cloud, "IngestFunction", load_event("ingest_api"))
    event = load_event("preprocess")
    event["request"]["target"] = "price"
    return cloud.invoke("PreprocessFunction", event)


def test_preprocess_rejects_a_missing_target(cloud):
    payload, error = _preprocess_without_the_target(cloud)
    assert error == "Unhandled" and payload["errorType"] == "InvalidInput"
    assert payload["errorMessage"].startswith("target column 'price' is not in the data set (columns: area_m2,")


def test_preprocess_with_a_missing_target_writes_nothing(cloud):
    _, error = _preprocess_without_the_target(cloud)
    assert error == "Unhandled"
    assert keys(cloud, "processed/") == []


def test_preprocess_rejects_invalid_hyperparameters_before_reading_anything(cloud):
    event = load_event("preprocess")
    event["request"]["hyperparameters"]["learning_rate"] = -1
    payload, error = cloud.invoke("PreprocessFunction", event)
    assert error == "Unhandled" and payload["errorType"] == "ValidationError"
    assert "learning_rate" in payload["errorMessage"]
    assert keys(cloud, "processed/") == []


def test_worker_gradient_equals_the_shard_gradient(cloud, prepared):
    _ok(cloud, "AggregatorFunction", load_event("aggregator_init"))
    result = _ok(cloud, "GradientWorkerFunction", load_event("gradient_worker"))
    shard = _array(cloud, "processed/run-example/shards/shard-00000.npy").astype(np.float64)
    X, y = shard[:, :-1], shard[:, -1]
    residual = -y  # parameters start at zero
    assert result["rows"] == 15 and result["round"] == 0
    assert result["loss_sum"] == pytest.approx(0.5 * residual @ residual, rel=1e-6)
    np.testing.assert_allclose(unpack_vector(result["gradient"]), np.append(X.T @ residual, residual.sum()), rtol=1e-5)
    assert result["gradient_key"] is None and keys(cloud, "scratch/") == []  # inline: nothing written


def test_a_worker_whose_shard_does_not_know_the_count_writes_its_gradient_to_s3(cloud, prepared):
    _ok(cloud, "AggregatorFunction", load_event("aggregator_init"))
    event = load_event("gradient_worker")
    del event["shard"]["n_shards"]
    result = _ok(cloud, "GradientWorkerFunction", event)
    key = "scratch/run-example/gradients/round-00000/shard-00000.npy"
    assert (result["gradient"], result["gradient_key"]) == (None, key) and keys(cloud, "scratch/") == [key]


def _round_zero(cloud, inline: bool = True):
    _ok(cloud, "AggregatorFunction", load_event("aggregator_init"))
    results = []
    for name in ("gradient_worker", "gradient_worker_shard1"):  # the two shards events/aggregator.json refers to
        event = load_event(name)
        if not inline:
            del event["shard"]["n_shards"]
        results.append(_ok(cloud, "GradientWorkerFunction", event))
    event = load_event("aggregator")
    event["results"] = results
    return event, results


@pytest.mark.parametrize("inline", [True, False], ids=["inline", "s3"])
def test_aggregator_averages_the_gradients_by_rows(cloud, prepared, inline):
    event, results = _round_zero(cloud, inline)
    assert len(keys(cloud, "scratch/")) == (0 if inline else 2)
    state = _ok(cloud, "AggregatorFunction", event)
    grads = [_vector(cloud, r) for r in results]
    mean_grad = (grads[0] + grads[1]) / 30
    assert state["round"] == 1 and state["done"] is False
    assert state["loss"] == pytest.approx((results[0]["loss_sum"] + results[1]["loss_sum"]) / 30)
    assert state["grad_norm"] == pytest.approx(np.linalg.norm(mean_grad))
    params = np.load(
        io.BytesIO(cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=state["params_key"])["Body"].read()),
        allow_pickle=False,
    )
    # momentum from zero velocity: theta1 = -lr * grad
    np.testing.assert_allclose(params["theta"].ravel(), -0.1 * mean_grad, rtol=1e-12)
    np.testing.assert_allclose(params["velocity"], mean_grad, rtol=1e-12)


@pytest.mark.parametrize("inline", [True, False], ids=["inline", "s3"])
def test_aggregator_steps_once_per_round(cloud, prepared, inline):
    event, results = _round_zero(cloud, inline)
    state = _ok(cloud, "AggregatorFunction", event)
    # a duplicated delivery (results in another order, repeated shard) changes nothing
    replay = copy.deepcopy(event)
    replay["results"] = [results[1], results[0], results[1]]
    assert _ok(cloud, "AggregatorFunction", replay) == state
    assert _ok(cloud, "AggregatorFunction", event) == state
    assert versions(cloud, state["params_key"]) == 1
    assert versions(cloud, "runs/run-example/rounds/round-00000.json") == 1


def _aggregate_with_a_late_result(cloud) -> tuple[dict, list[dict]]:
    event, results = _round_zero(cloud)
    late = {**results[1], "shard": 5, "round": 3}  # a late delivery from another round
    event["results"] = [*results, late]
    return _ok(cloud, "AggregatorFunction", event), results


def test_aggregator_records_the_results_of_another_round_as_ignored(cloud, prepared):
    _aggregate_with_a_late_result(cloud)
    summary = json.loads(
        cloud.s3.get_object(Bucket=cloud.stack.bucket, Key="runs/run-example/rounds/round-00000.json")["Body"].read()
    )
    assert (summary["ignored_shards"], summary["shards"], summary["rows"]) == ([5], 2, 30)


def test_aggregator_leaves_the_results_of_another_round_out_of_the_step(cloud, prepared):
    state, results = _aggregate_with_a_late_result(cloud)
    grads = [_vector(cloud, r) for r in results]
    params = np.load(
        io.BytesIO(cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=state["params_key"])["Body"].read()),
        allow_pickle=False,
    )
    np.testing.assert_allclose(params["theta"].ravel(), -0.1 * (grads[0] + grads[1]) / 30, rtol=1e-12)


def test_aggregator_averages_over_the_shards_that_returned_within_the_tolerance(cloud, prepared):
    event, results = _round_zero(cloud)
    failed = {"failed": True, "shard": 1, "round": 0, "rows": 15, "error": "Lambda.ServiceException"}
    event["results"] = [results[0], failed]
    payload, error = cloud.invoke("AggregatorFunction", event)  # default: no failed shard tolerated
    assert error == "Unhandled"
    assert payload["errorMessage"] == (
        "shards [1] of 2 failed in round 0 (Lambda.ServiceException), over the tolerated 0%"
    )
    assert keys(cloud, "runs/run-example/params/") == ["runs/run-example/params/round-00000.npz"]

    event["hyperparameters"]["tolerated_failure_percentage"] = 50
    state = _ok(cloud, "AggregatorFunction", event)
    grad = _vector(cloud, results[0])
    assert state["loss"] == pytest.approx(results[0]["loss_sum"] / 15)  # weighted by the rows that returned
    params = np.load(
        io.BytesIO(cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=state["params_key"])["Body"].read()),
        allow_pickle=False,
    )
    np.testing.assert_allclose(params["theta"].ravel(), -0.1 * grad / 15, rtol=1e-12)
    summary = json.loads(
        cloud.s3.get_object(Bucket=cloud.stack.bucket, Key="runs/run-example/rounds/round-00000.json")["Body"].read()
    )
    assert (summary["failed_shards"], summary["rows"]) == ([1], 15)


def test_evaluate_registers_versions_idempotently_per_run(cloud, prepared):
    event, _ = _round_zero(cloud)
    _ok(cloud, "AggregatorFunction", event)
    first = _ok(cloud, "EvaluateFunction", load_event("evaluate"))
    assert (first["model_name"], first["version"]) == ("housing-sample", 1)
    again = _ok(cloud, "EvaluateFunction", load_event("evaluate"))
    assert again == first
    assert keys(cloud, "models/housing-sample/versions/") == ["models/housing-sample/versions/000001/model.json"]

    artifact = json.loads(cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=first["artifact_key"])["Body"].read())
    theta = np.load(
        io.BytesIO(
            cloud.s3.get_object(Bucket=cloud.stack.bucket, Key="runs/run-example/params/round-00001.npz")["Body"].read()
        ),
        allow_pickle=False,
    )["theta"].ravel()
    assert artifact["model"]["coefficients"] == theta[:-1, None].tolist()
    assert artifact["model"]["intercept"] == [theta[-1]]
    test = _array(cloud, "processed/run-example/test.npy").astype(np.float64)
    pred = test[:, :-1] @ theta[:-1] + theta[-1]
    from sklearn.metrics import mean_squared_error, r2_score

    assert artifact["metrics"]["test"]["r2"] == pytest.approx(r2_score(test[:, -1], pred))
    assert artifact["metrics"]["test"]["rmse"] == pytest.approx(np.sqrt(mean_squared_error(test[:, -1], pred)))
    assert artifact["training_curve"][0]["round"] == 0
    assert artifact["lineage"]["run_id"] == "run-example" and artifact["lineage"]["rows"] == 40
    assert set(artifact["library_versions"]) >= {"python", "numpy", "mlcore"}
    assert artifact["preprocessor"]["target"] == "price_k"

    other = load_event("evaluate")
    other["run_id"] = "run-other"
    second = _ok(cloud, "EvaluateFunction", other)
    assert second["version"] == 2
    latest = json.loads(
        cloud.s3.get_object(Bucket=cloud.stack.bucket, Key="models/housing-sample/aliases/latest.json")["Body"].read()
    )
    assert latest["version"] == 2


def test_evaluate_holds_a_bounded_sample_of_a_large_test_block_and_fits_the_reference_on_a_sample(
    cloud, prepared, monkeypatch
):
    from mlcore.steps import evaluation

    event, _ = _round_zero(cloud)
    _ok(cloud, "AggregatorFunction", event)
    test = _array(cloud, "processed/run-example/test.npy")
    manifest = json.loads(
        cloud.s3.get_object(Bucket=cloud.stack.bucket, Key="processed/run-example/manifest.json")["Body"].read()
    )
    train_rows = [s["rows"] for s in manifest["shards"]]
    monkeypatch.setattr(evaluation, "EVALUATED_MAX_ROWS", len(test) - 1)
    monkeypatch.setattr(evaluation, "REFERENCE_MAX_ROWS", 10)
    sampled = load_event("evaluate")
    sampled["run_id"] = "run-sampled"
    artifact_key = _ok(cloud, "EvaluateFunction", sampled)["artifact_key"]
    metrics = json.loads(cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=artifact_key)["Body"].read())["metrics"]
    assert metrics["test_rows_evaluated"] == {"rows": len(test) - 1, "of": len(test)}
    assert metrics["test"]["rows"] == metrics["reference"]["test"]["rows"] == len(test) - 1
    quotas = [10 * r // sum(train_rows) for r in train_rows]
    assert metrics["reference"]["train_rows"] == sum(quotas) and metrics["reference"]["train_rows_of"] == sum(
        train_rows
    )
