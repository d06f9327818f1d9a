"""The committed events, through the built functions, in a clean python3.12, against one moto server.

The steps run in order on the same bucket, the way a deployed stack runs them: ingest,
preprocess, init, one gradient per shard, aggregate, evaluate/register, predict. Each
step feeds the next with what the previous one really returned, after checking that
the committed sample event describes the same thing.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlcore.math.metrics import regression_metrics
from mlcore.serving import online
from mlcore.serving.registry import ModelArtifact
from mlcore.steps.schemas import unpack_vector

pytestmark = pytest.mark.packaging

# Functions that must stay lean: pandas and scikit-learn are never imported there.
HEAVY_MODULES = ("pandas", "sklearn")
# What each lean function must never import: Evaluate loads scikit-learn for its reference fit (lazily,
# never at init: see test_cold_start), but never pandas.
LEAN = {
    fid: HEAVY_MODULES
    for fid in (
        "PredictFunction",
        "GradientWorkerFunction",
        "AggregatorFunction",
        "RunsFunction",
        "ModelsFunction",
        "BatchPredictFunction",
        "BatchJobsFunction",
        "ExportFunction",
    )
} | {"EvaluateFunction": ("pandas",)}
# Predict is latency-bound: no X-Ray SDK (no Tracer) and no boto3 (botocore's S3 client is all it needs); onnx
# is the Export function's alone.
LEAN["PredictFunction"] += ("aws_xray_sdk", "boto3", "onnx")


@pytest.fixture(scope="module")
def chain() -> dict:
    """What each step returned, for the steps after it."""
    return {}


def needs(chain: dict, *steps: str) -> list:
    missing = [s for s in steps if s not in chain]
    if missing:
        pytest.skip(f"needs the earlier step(s) {missing}, which failed or were not selected")
    return [chain[s] for s in steps]


def is_subset(part, whole) -> bool:
    """``part`` is ``whole`` with some defaulted keys left out (what a committed event omits)."""
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(k in whole and is_subset(v, whole[k]) for k, v in part.items())
    return part == whole


def assert_lean(inv) -> None:
    if inv.function.logical_id in LEAN:
        loaded = [m for m in LEAN[inv.function.logical_id] if inv.loaded[m]]
        assert not loaded, f"{inv.function.logical_id} imported {loaded}"


def test_ingest_api(invoke, load_event, chain):
    inv = invoke("IngestFunction", load_event("ingest_api.json"))
    status, body = inv.api()
    assert status == 201, body
    assert body["created"] is True
    assert body["dataset"] == "housing-sample" and body["rows"] == 40
    assert inv.loaded["pandas"], "Ingest parses CSV with pandas; the module check would be meaningless otherwise"
    chain["dataset"] = body


def test_ingest_s3_upload_registers_the_same_version(invoke, load_event, bucket, chain):
    (dataset,) = needs(chain, "dataset")
    event = load_event("ingest_s3_upload.json")
    key = event["detail"]["object"]["key"]
    csv = load_event("ingest_api.json")["body"].encode()
    assert event["detail"]["bucket"]["name"] == bucket.name
    bucket.put(key, csv)

    result = invoke("IngestFunction", event).ok()

    assert result["created"] is False
    assert (result["version"], result["rows"], result["sha256"]) == (dataset["version"], 40, dataset["sha256"])
    assert not bucket.exists(key), "the upload must be deleted once registered"
    assert bucket.json(f"raw/housing-sample/{dataset['version']}/dataset.json")["source"] == "api"


def test_preprocess(invoke, load_event, bucket, chain):
    needs(chain, "dataset")
    inv = invoke("PreprocessFunction", load_event("preprocess.json"))
    out = inv.ok()
    data = out["data"]
    assert [(s["index"], s["rows"]) for s in data["shards"]] == [(0, 15), (1, 15)]
    assert (data["train_rows"], data["test_rows"]) == (30, 10)
    # the committed downstream events were written for exactly this output
    assert data == load_event("evaluate.json")["data"]
    assert data["n_features"] == load_event("aggregator_init.json")["n_features"]
    for shard in data["shards"]:
        block = bucket.array(shard["key"])
        assert block.dtype == np.float32 and block.shape == (shard["rows"], data["n_features"] + 1)
    assert bucket.json(data["manifest_key"])["dataset"]["version"] == chain["dataset"]["version"]
    chain["preprocess"] = out


def test_aggregator_init(invoke, load_event, bucket, chain):
    needs(chain, "preprocess")
    inv = invoke("AggregatorFunction", load_event("aggregator_init.json"))
    state = inv.ok()
    assert_lean(inv)
    assert state["round"] == 0 and state["params_key"] == load_event("gradient_worker.json")["params_key"]
    params = bucket.arrays(state["params_key"])
    assert not params["theta"].any() and params["theta"].shape == (10, 1)
    assert not params["velocity"].any()
    chain["init"] = state


@pytest.mark.parametrize("shard", [0, 1])
def test_gradient_worker(shard, invoke, load_event, bucket, chain):
    preprocess, _ = needs(chain, "preprocess", "init")
    event = load_event("gradient_worker.json")
    if shard:
        event["shard"] = {**event["shard"], "index": 1, "key": "processed/run-example/shards/shard-00001.npy"}
    assert event["shard"] == preprocess["data"]["shards"][shard]

    inv = invoke("GradientWorkerFunction", event)
    result = inv.ok()
    assert_lean(inv)

    committed = load_event("aggregator.json")["results"][shard]
    measured = ("loss_sum", "gradient")  # the gradient travels inline (2 shards: well within the budget)
    assert {k: v for k, v in result.items() if k not in measured} == {
        k: v for k, v in committed.items() if k not in measured
    }
    block = bucket.array(event["shard"]["key"])
    X, y = block[:, :-1].astype(np.float64), block[:, -1].astype(np.float64)
    w, b = np.zeros(X.shape[1]), 0.0  # round 0
    residual = X @ w + b - y
    expected = np.append(X.T @ residual, residual.sum())
    grad = unpack_vector(result["gradient"])
    assert grad.dtype == np.float64 and grad.shape == (X.shape[1] + 1,)
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())
    assert result["loss_sum"] == pytest.approx(0.5 * residual @ residual, rel=1e-6)
    chain[f"gradient-{shard}"] = result


def test_aggregator(invoke, load_event, bucket, chain):
    g0, g1 = needs(chain, "gradient-0", "gradient-1")
    event = load_event("aggregator.json")
    event["results"] = [g0, g1]  # what the Map state hands over (the committed loss_sum are placeholders)

    inv = invoke("AggregatorFunction", event)
    state = inv.ok()
    assert_lean(inv)

    hp = event["hyperparameters"]
    rows = g0["rows"] + g1["rows"]
    grad = (unpack_vector(g0["gradient"]) + unpack_vector(g1["gradient"])) / rows
    assert (state["round"], state["params_key"], state["done"]) == (1, "runs/run-example/params/round-00001.npz", False)
    assert state["loss"] == pytest.approx((g0["loss_sum"] + g1["loss_sum"]) / rows, rel=1e-12)
    assert state["grad_norm"] == pytest.approx(float(np.linalg.norm(grad)), rel=1e-12)
    params = bucket.arrays(state["params_key"])
    # momentum from zero velocity: v = g, theta = 0 - lr * v
    np.testing.assert_allclose(params["velocity"], grad, rtol=1e-12)
    np.testing.assert_allclose(params["theta"].ravel(), -hp["learning_rate"] * grad, rtol=1e-12)
    chain["aggregate"] = state


def test_evaluate_registers_version_1(invoke, load_event, bucket, chain):
    preprocess, state = needs(chain, "preprocess", "aggregate")
    event = load_event("evaluate.json")
    assert event["data"] == preprocess["data"]
    assert is_subset(event["request"], preprocess["request"]), (event["request"], preprocess["request"])
    assert (event["train"]["round"], event["train"]["params_key"]) == (state["round"], state["params_key"])

    inv = invoke("EvaluateFunction", event)
    registered = inv.ok()
    assert_lean(inv)

    assert registered["status"] == "registered"
    assert (registered["model_name"], registered["version"], registered["artifact_key"]) == (
        "housing-sample",
        1,
        "models/housing-sample/versions/000001/model.json",
    )
    theta = bucket.arrays(state["params_key"])["theta"].ravel()
    test = bucket.array(f"processed/{event['run_id']}/test.npy").astype(np.float64)
    expected = regression_metrics(test[:, -1], test[:, :-1] @ theta[:-1] + theta[-1])
    assert registered["metrics"] == pytest.approx({k: float(v) for k, v in expected.items()}, rel=1e-9)
    artifact = bucket.json(registered["artifact_key"])
    np.testing.assert_allclose(
        np.ravel([*artifact["model"]["coefficients"], artifact["model"]["intercept"]]), theta, rtol=1e-15
    )
    assert bucket.json("models/housing-sample/aliases/latest.json")["version"] == 1
    # one round from zero: worse than predicting the mean, so registered with a warning and not production
    assert registered["warnings"] == [
        f"worse than the trivial baseline: test r2 {expected['r2']:.4g} <= 0 of always predicting the mean; "
        "not promoted to production"
    ]
    assert not bucket.exists("models/housing-sample/aliases/production.json")
    reference = artifact["metrics"]["reference"]  # scikit-learn, packaged with Evaluate, on the same shards
    assert "LinearRegression" in reference["estimator"] and reference["train_rows"] == 30
    assert reference["difference"]["r2"] == pytest.approx(expected["r2"] - reference["test"]["r2"])
    chain["registered"] = registered


def test_predict(invoke, load_event, bucket, chain):
    (registered,) = needs(chain, "registered")
    event = load_event("predict.json")  # ?alias=latest: one round is worse than the mean, so not production
    assert event["queryStringParameters"] == {"alias": "latest"}
    inv = invoke("PredictFunction", event)
    status, body = inv.api()
    assert_lean(inv)

    assert status == 200, body
    assert (body["model"], body["version"], body["target"]) == ("housing-sample", 1, "price_k")
    assert len(body["predictions"]) == 2
    doc = bucket.json(registered["artifact_key"])
    instances = json.loads(event["body"])["instances"]
    expected = online.predict(ModelArtifact.model_validate(doc), instances)["predictions"]
    assert body["predictions"] == pytest.approx(expected, rel=1e-12)
    # and by hand, from the artifact's numbers alone
    columns = doc["preprocessor"]["columns"]
    for instance, prediction in zip(instances, body["predictions"], strict=True):
        names = [c["name"] for c in columns]
        values = instance if isinstance(instance, dict) else dict(zip(names, instance, strict=True))
        x: list[float] = []
        for col in columns:
            v = col["fill"] if values[col["name"]] is None else values[col["name"]]
            if col["kind"] == "numeric":
                x.append((v - col["mean"]) / col["scale"])
            else:
                x.extend(float(v == c) for c in col["categories"])
        expected_by_hand = np.dot(x, doc["model"]["coefficients"]) + doc["model"]["intercept"]
        assert prediction == pytest.approx(expected_by_hand, rel=1e-9)


BAD_REQUESTS = {
    "empty": ({"instances": []}, (400, 422), ["instances"]),
    "no-instances": ({"rows": [[1, 2]]}, (400, 422), ["instances"]),
    "short-row": ({"instances": [[92.2, 2]]}, (400,), ["instances[0]", "6"]),
    "not-a-number": ({"instances": [["big", 2, 1.0, 1.0, 1, "hills"]]}, (400,), ["instances[0].area_m2"]),
}


@pytest.fixture(scope="module")
def bad_requests(invoke, load_event, chain) -> dict:
    """The bad requests, in one warm Predict container (what a burst of them would meet)."""
    needs(chain, "registered")
    events = [load_event("predict.json") | {"body": json.dumps(body)} for body, _, _ in BAD_REQUESTS.values()]
    return dict(zip(BAD_REQUESTS, invoke.container("PredictFunction", events), strict=True))


@pytest.mark.parametrize("case", BAD_REQUESTS)
def test_predict_rejects_bad_requests(case, bad_requests):
    _, status, words = BAD_REQUESTS[case]
    inv = bad_requests[case]
    code, response = inv.api()
    assert_lean(inv)
    assert code in status, response
    text = json.dumps(response)
    assert all(w in text for w in words), f"the response does not name {words}: {text}"


def test_predict_unknown_model_is_404(invoke, load_event):
    event = load_event("predict.json")
    event["path"] = "/models/no-such-model/predict"
    event["pathParameters"] = {"name": "no-such-model"}
    code, response = invoke("PredictFunction", event).api()
    assert code == 404 and "no-such-model" in response["message"], response


def test_models_api(invoke, load_event, chain):
    needs(chain, "registered")
    inv = invoke("ModelsFunction", load_event("models.json"))
    status, body = inv.api()
    assert_lean(inv)
    assert status == 200, body
    assert body["versions"] == [1] and body["aliases"]["latest"]["version"] == 1 and "production" not in body["aliases"]


def test_export_onnx(invoke, load_event, bucket, chain):
    """The built Export function builds the version's ONNX graph with the onnx it ships (imported on the first
    request, never at init), stores it once, and answers as Predict does (onnxruntime, in the test process)."""
    (registered,) = needs(chain, "registered")
    first, second = invoke.container("ExportFunction", [load_event("export.json")] * 2)
    assert_lean(first)
    status, body = first.api()
    assert status == 200, body
    key = "models/housing-sample/versions/000001/model.onnx"
    assert (body["key"], body["built"], body["size"]) == (key, True, len(bucket.bytes(key)))
    assert first.loaded["onnx"] and not first.process["init_loaded"]["onnx"]
    assert second.api()[1] == {**body, "built": False, "download_url": second.api()[1]["download_url"]}

    ort = pytest.importorskip("onnxruntime")
    artifact = ModelArtifact.model_validate(bucket.json(registered["artifact_key"]))
    instances = json.loads(load_event("predict.json")["body"])["instances"]
    names = artifact.preprocessor.input_names
    rows = [dict(zip(names, i, strict=True)) if isinstance(i, list) else i for i in instances]
    feeds = {
        c.name: np.array([[r[c.name]] for r in rows], dtype=np.float32 if c.kind == "numeric" else object)
        for c in artifact.preprocessor.columns
    }
    (got,) = ort.InferenceSession(bucket.bytes(key), providers=["CPUExecutionProvider"]).run(None, feeds)
    np.testing.assert_allclose(got, online.predict(artifact, instances)["predictions"], rtol=1e-5)


def test_batch_steps(invoke, load_event, bucket, chain):
    """Plan, one chunk and finalize through the built BatchPredict (numpy only), on a job written by hand."""
    (registered,) = needs(chain, "registered")
    job_id = load_event("batch_predict.json")["job_id"]
    rows = "area_m2,bedrooms,age_years,distance_km,lot_m2,neighborhood\n92.2,2,62.7,3.11,156,harbor\nbig,2,1,1,1,x\n"
    bucket.put("uploads/batch/sample.csv", rows.encode())
    job = {"job_id": job_id, "model": "housing-sample", "version": registered["version"], "batch_rows": 1000}
    job |= {"input_key": "uploads/batch/sample.csv", "started": 0.0}
    bucket.put(f"batch/{job_id}/job.json", json.dumps(job).encode())
    events = [load_event("batch_predict.json")]
    plan = invoke.container("BatchPredictFunction", events)[0]
    assert_lean(plan)
    (chunk,) = bucket.json(plan.ok()["chunks_key"])
    step = invoke("BatchPredictFunction", {"action": "predict", "job_id": job_id, **chunk})
    assert step.ok() == {"first_row": 0, "rows": 2, "predicted": 1, "failures": 1}
    summary = invoke("BatchPredictFunction", {"action": "finalize", "job_id": job_id}).ok()
    assert (summary["rows"], summary["predicted"], summary["failures"]) == (2, 1, 1)

    # the job document exists, but no execution on this moto server: a 404 naming it, not a 5xx
    status, body = invoke("BatchJobsFunction", load_event("batch_jobs.json")).api()
    assert (status, body) == (404, {"message": f"batch job {job_id!r} has no workflow execution"})


def test_cold_start(function_id, invoke, request):
    """Lambda's init: the handler module imports from the function folder, its layers and the runtime alone.

    Reuses a container the steps above started; functions without a step get an init of their own.
    """
    started = [i for i in invoke.history if i.function.logical_id == function_id]
    inv = started[0] if started else invoke.cold_start(function_id)
    init_error = inv.process["init_error"]
    if init_error:
        trace = "".join(init_error["stackTrace"][-8:])
        pytest.fail(f"{function_id} fails its init: {init_error['errorMessage']}\n{trace}", pytrace=False)
    loaded = [m for m in HEAVY_MODULES if inv.process["init_loaded"][m]]
    assert function_id not in LEAN or not loaded, f"{function_id} imports {loaded} at init"
    assert inv.process["aws_xray_sdk"], f"aws_xray_sdk is not importable: {inv.process.get('aws_xray_sdk_error')}"
    request.node.user_properties.append(("init_ms", round(inv.process["init_ms"])))
    botocore = [f for f in inv.process["module_files"] if f.endswith("botocore/__init__.py")]
    request.node.user_properties.append(("botocore", botocore[0] if botocore else None))


def test_lean_functions_never_import_heavy_modules(invoke):
    """Across every invocation above, including cold starts and error paths."""
    seen = {inv.function.logical_id for inv in invoke.history}
    assert set(LEAN) <= seen, f"not invoked: {set(LEAN) - seen}"
    offenders = sorted(
        {
            (inv.function.logical_id, m)
            for inv in invoke.history
            if inv.function.logical_id in LEAN
            for m in LEAN[inv.function.logical_id]
            if inv.loaded[m]
        }
    )
    assert not offenders, offenders
