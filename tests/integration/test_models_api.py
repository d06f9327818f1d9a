"""Registry API (list, show, promote, roll back) and Predict's alias/version selection and body limits, on moto."""

from __future__ import annotations

import base64
import json

import pytest

from mlcore.infra.storage import S3Store
from mlcore.serving import online, registry
from mllocal import apigw
from tests.helpers import load_event
from tests.unit.fakes import CrashAt

ROW = [100.0, 3, 10, 1.5, 300, "harbor"]


def _call(cloud, method, path, body=None, **kwargs):
    response = cloud.request(method, path, body, **kwargs)
    return response["statusCode"], json.loads(response["body"])


def _register_copy(cloud, run_id: str, r2: float, intercept_shift: float = 0.0) -> int:
    store = S3Store(cloud.stack.bucket)
    doc = registry.load_version(store, "housing-sample", 1).model_dump(mode="json")
    for k in ("version", "created_at", "library_versions", "format_version"):
        doc.pop(k)
    doc["metrics"]["test"]["r2"] = r2
    doc["model"]["intercept"] = [doc["model"]["intercept"][0] + intercept_shift]
    return registry.register(store, run_id, doc).version


PREDICT = "/models/housing-sample/predict"


def _register_worse(cloud, model) -> int:
    """Version 2: test r2 0.5 below version 1's, predictions 1000 higher; production stays at 1."""
    return _register_copy(cloud, "run-worse", model.metrics["test"]["r2"] - 0.5, intercept_shift=1000.0)


def test_list_models_shows_the_version_behind_each_alias(cloud, model):
    assert _call(cloud, "GET", "/models") == (200, [{"name": "housing-sample", "latest": 1, "production": 1}])
    _register_worse(cloud, model)
    assert _call(cloud, "GET", "/models")[1] == [{"name": "housing-sample", "latest": 2, "production": 1}]


def test_show_a_version_returns_its_artifact(cloud, model):
    r2 = model.metrics["test"]["r2"]
    worse = _register_worse(cloud, model)
    status, body = _call(cloud, "GET", f"/models/housing-sample/versions/{worse}")
    assert status == 200 and body["version"] == 2 and body["metrics"]["test"]["r2"] == pytest.approx(r2 - 0.5)
    assert {"hyperparameters", "feature_names", "preprocessor", "lineage", "training_curve"} <= set(body)


def test_predict_serves_production_unless_an_alias_or_a_version_is_asked_for(cloud, model):
    _register_worse(cloud, model)
    # Predict serves production (1) by default; latest and a pinned version on request
    row = {"instances": [ROW]}
    v1 = _call(cloud, "POST", PREDICT, row)[1]
    assert v1["version"] == 1
    latest = _call(cloud, "POST", PREDICT, row, query={"alias": "latest"})[1]
    assert latest["version"] == 2
    assert latest["predictions"][0] == pytest.approx(v1["predictions"][0] + 1000.0)
    assert _call(cloud, "POST", PREDICT, row, query={"version": "2"})[1]["version"] == 2


def test_predict_rejects_an_unknown_alias_or_version(cloud, model):
    _register_worse(cloud, model)
    row = {"instances": [ROW]}
    status, body = _call(cloud, "POST", PREDICT, row, query={"alias": "staging"})
    assert status == 422 and "alias" in json.dumps(body)
    status, body = _call(cloud, "POST", PREDICT, row, query={"version": "9"})
    assert (status, body) == (404, {"message": "model 'housing-sample' has no version 9"})


def test_promoting_a_version_that_is_not_better_needs_force(cloud, model):
    _register_worse(cloud, model)
    status, body = _call(cloud, "POST", "/models/housing-sample/promote", {"version": 2})
    assert status == 409 and "does not beat production version 1" in body["message"]
    status, body = _call(cloud, "POST", "/models/housing-sample/promote", {"version": 2, "force": True})
    assert status == 200 and (body["version"], body["reason"]) == (2, "forced")
    status, body = _call(cloud, "GET", "/models/housing-sample")
    assert body["versions"] == [1, 2] and body["aliases"]["production"]["version"] == 2


def test_the_promote_event_promotes_with_curls_default_content_type(cloud, model):
    _register_worse(cloud, model)
    event = load_event("models_promote")  # the body is JSON labelled application/x-www-form-urlencoded, as curl -d
    event["body"] = json.dumps({"version": 2, "force": True})
    payload, error = cloud.invoke("ModelsFunction", event)
    assert error is None and payload["statusCode"] == 200, payload
    assert (json.loads(payload["body"])["version"], json.loads(payload["body"])["reason"]) == (2, "forced")


def test_rollback_walks_back_the_production_history(cloud, model):
    _register_worse(cloud, model)
    assert _call(cloud, "POST", "/models/housing-sample/promote", {"version": 2, "force": True})[0] == 200
    status, body = _call(cloud, "POST", "/models/housing-sample/rollback")
    assert (status, body["version"]) == (200, 1)
    status, body = _call(cloud, "POST", "/models/housing-sample/rollback")
    assert status == 409 and "no earlier production version" in body["message"]


def test_a_better_version_is_promoted_when_it_is_registered(cloud, model):
    _register_worse(cloud, model)
    better = _register_copy(cloud, "run-better", model.metrics["test"]["r2"] + 0.01)
    assert _call(cloud, "GET", "/models")[1] == [{"name": "housing-sample", "latest": better, "production": better}]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/models/nope", None, 404),
        ("GET", "/models/housing-sample/versions/0", None, 422),
        ("GET", "/models/housing-sample/versions/abc", None, 422),
        ("POST", "/models/housing-sample/promote", {"version": "x"}, 422),
        ("POST", "/models/housing-sample/promote", {"version": 7}, 404),
        ("POST", "/models/nope/rollback", None, 404),
    ],
)
def test_registry_api_errors_are_4xx(cloud, model, method, path, body, status):
    assert _call(cloud, method, path, body)[0] == status


def _invoke_base64(cloud, encoded: str) -> dict:
    """Predict invoked with a base64-encoded body, as API Gateway sends binary media types."""
    event = apigw.proxy_event("POST", PREDICT, "/models/{name}/predict", {"name": "housing-sample"}, body=encoded)
    event["isBase64Encoded"] = True
    payload, error = cloud.invoke("PredictFunction", event)
    assert error is None, payload
    return payload


def test_an_oversized_body_is_413(cloud, model):
    big = json.dumps({"instances": [ROW], "pad": "x" * online.MAX_BODY_BYTES})
    status, body = _call(cloud, "POST", PREDICT, big)
    assert status == 413 and str(online.MAX_BODY_BYTES) in body["message"]
    payload = _invoke_base64(cloud, base64.b64encode(b"x" * (online.MAX_BODY_BYTES + 3)).decode())
    assert payload["statusCode"] == 413


def test_a_base64_encoded_body_is_decoded(cloud, model):
    payload = _invoke_base64(cloud, base64.b64encode(json.dumps({"instances": [ROW, ROW]}).encode()).decode())
    assert payload["statusCode"] == 200, payload
    assert len(json.loads(payload["body"])["predictions"]) == 2


def test_a_body_that_is_not_base64_is_400(cloud, model):
    payload = _invoke_base64(cloud, "!!not base64!!")
    assert payload["statusCode"] == 400, payload


def test_a_body_that_is_not_utf8_is_400(cloud, model):
    status, body = _call(cloud, "POST", PREDICT, b"\xff\xfe not utf-8")  # sent base64-encoded, as API Gateway does
    assert status == 400 and "UTF-8" in body["message"]


@pytest.mark.parametrize(
    ("instances", "status", "words"),
    [
        (["abc"], 422, "instances"),
        ([[None] * 5 + [None], 1], 422, "instances"),
        ([[True, 3, 10, 1.5, 300, "harbor"]], 400, "instances[0].area_m2"),
        ([[100.0, 3, 10, 1.5, 300, ["harbor"]]], 400, "instances[0].neighborhood"),
    ],
)
def test_wrong_types_are_4xx(cloud, model, instances, status, words):
    got_status, body = _call(cloud, "POST", "/models/housing-sample/predict", {"instances": instances})
    assert got_status == status and words in json.dumps(body), body


def test_conditional_writes_on_s3(cloud):
    from mlcore.infra.storage import AlreadyExists, Conflict

    store = S3Store(cloud.stack.bucket)
    etag = store.put_json("models/x/aliases/production.json", {"version": 1}, if_absent=True)
    with pytest.raises(AlreadyExists):
        store.put_json("models/x/aliases/production.json", {"version": 9}, if_absent=True)
    doc, tag = store.get_json_tagged("models/x/aliases/production.json")
    assert (doc, tag) == ({"version": 1}, etag)
    store.put_json("models/x/aliases/production.json", {"version": 2}, if_match=etag)
    with pytest.raises(Conflict):  # stale ETag: someone wrote in between
        store.put_json("models/x/aliases/production.json", {"version": 3}, if_match=etag)
    assert store.get_json("models/x/aliases/production.json") == {"version": 2}


# -- a corrupted model file is a 500 naming the model, the version and the field --------------------------------

VERSION_1 = "models/housing-sample/versions/000001/model.json"
WHERE = f"model 'housing-sample' version 1 ({VERSION_1}) is corrupt: "


def _corrupt(doc: dict, change) -> bytes:
    doc = json.loads(json.dumps(doc))
    change(doc)
    return json.dumps(doc).encode()


def _set(path: list, value):
    def change(doc):
        for key in path[:-1]:
            doc = doc[key]
        doc[path[-1]] = value

    return change


CORRUPTIONS = {
    "truncated": (None, "Invalid JSON: EOF while parsing"),
    "coefficient shape": (
        lambda doc: doc["model"]["coefficients"].pop(),
        "model.coefficients must be 9 x 1 with an intercept of 1, got 8 x [1], intercept 1",
    ),
    "zero scale": (
        _set(["preprocessor", "columns", 0, "scale"], 0.0),
        "preprocessor.columns.0.numeric.scale: Input should be greater than 0",
    ),
    "negative scale": (
        _set(["preprocessor", "columns", 0, "scale"], -1.0),
        "preprocessor.columns.0.numeric.scale: Input should be greater than 0",
    ),
    "name": (_set(["name"], "other-model"), "name is 'other-model', its path says 'housing-sample'"),
    "version": (_set(["version"], 7), "version is 7, its path says 1"),
}


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_a_corrupted_model_file_is_a_500_naming_the_model_version_and_field(cloud, model, corruption, caplog):
    change, detail = CORRUPTIONS[corruption]
    good = cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=VERSION_1)["Body"].read()
    body = good[: len(good) // 2] if change is None else _corrupt(json.loads(good), change)
    cloud.s3.put_object(Bucket=cloud.stack.bucket, Key=VERSION_1, Body=body)
    caplog.clear()
    for method, path, payload in (
        ("POST", PREDICT, {"instances": [ROW]}),
        ("GET", "/models/housing-sample/versions/1", None),
        ("POST", "/models/housing-sample/promote", {"version": 1, "force": True}),
    ):
        response = cloud.request(method, path, payload)
        assert response["statusCode"] == 500, (path, response)
        message = json.loads(response["body"])["message"]
        assert message.startswith(WHERE) and detail in message, message
        assert "Traceback" not in response["body"]
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 3  # one logger.error per request, with the problem and no stack trace
    assert all(r.getMessage() == "corrupt stored data" and detail in r.problem and not r.exc_info for r in errors)


# -- registration survives a crash at any of its writes ---------------------------------------------------------


def test_a_registration_that_crashed_at_any_write_completes_on_retry_and_serves(cloud, model):
    store = S3Store(cloud.stack.bucket)
    fields = registry.load_version(store, "housing-sample", 1).model_dump(mode="json")
    for k in ("version", "created_at", "library_versions", "format_version"):
        fields.pop(k)
    counting = CrashAt(store, 0)
    registry.register(counting, "run-count", {**fields, "name": "counted"})
    assert counting.writes == 4  # the run's claim, the version file, latest, production
    for k in range(1, counting.writes + 1):
        name = f"crash-{k}"
        with pytest.raises(ConnectionError):
            registry.register(CrashAt(store, k), f"run-crash-{k}", {**fields, "name": name})
        assert registry.register(store, f"run-crash-{k}", {**fields, "name": name}).version == 1
        assert registry.register(store, f"run-crash-{k}", {**fields, "name": name}).version == 1
        assert registry.list_versions(store, name) == [1]
        status, body = _call(cloud, "GET", f"/models/{name}")
        assert status == 200 and {a: d["version"] for a, d in body["aliases"].items()} == {"latest": 1, "production": 1}
        status, body = _call(cloud, "POST", f"/models/{name}/predict", {"instances": [ROW]})
        assert (status, body["model"], body["version"]) == (200, name, 1), body


# -- a model worse than the trivial baseline ----------------------------------------------------------------------


def test_a_model_worse_than_the_mean_is_registered_with_a_warning_and_is_not_production(cloud):
    """One round from zero parameters (the committed events): test R² -10.5, worse than predicting the mean."""
    for name, function in (
        ("ingest_api", "IngestFunction"),
        ("preprocess", "PreprocessFunction"),
        ("aggregator_init", "AggregatorFunction"),
    ):
        assert cloud.invoke(function, load_event(name))[1] is None
    results = []
    for index in (0, 1):
        event = load_event("gradient_worker")
        event["shard"] = {"index": index, "key": f"processed/run-example/shards/shard-{index:05d}.npy", "rows": 15}
        results.append(cloud.invoke("GradientWorkerFunction", event)[0])
    assert cloud.invoke("AggregatorFunction", {**load_event("aggregator"), "results": results})[1] is None
    registered, error = cloud.invoke("EvaluateFunction", load_event("evaluate"))
    assert error is None, registered
    warning = (
        "worse than the trivial baseline: test r2 -10.54 <= 0 of always predicting the mean; not promoted to production"
    )
    assert registered["warnings"] == [warning]
    status, body = _call(cloud, "GET", "/models/housing-sample/versions/1")
    assert body["warnings"] == [warning] and body["metrics"]["baseline"]["beaten"] is False
    assert _call(cloud, "GET", "/models")[1] == [{"name": "housing-sample", "latest": 1, "production": None}]
    assert _call(cloud, "POST", PREDICT, {"instances": [ROW]}) == (
        404,
        {"message": "model 'housing-sample' has no 'production' version"},
    )
    status, body = _call(cloud, "POST", "/models/housing-sample/promote", {"version": 1})
    assert (status, body["message"]) == (
        409,
        "version 1 does not beat the trivial baseline (test r2 -10.54 <= 0 of always predicting the mean); "
        "use force to promote anyway",
    )
    status, body = _call(cloud, "POST", "/models/housing-sample/promote", {"version": 1, "force": True})
    assert (status, body["version"]) == (200, 1)
    assert _call(cloud, "POST", PREDICT, {"instances": [ROW]})[0] == 200
