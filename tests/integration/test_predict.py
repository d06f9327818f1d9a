"""Predict handler through API Gateway REST proxy events, against a model registered on moto (the `model`
fixture in tests/conftest.py)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from mlcore.infra import layout
from mlcore.serving.registry import ModelArtifact
from tests.helpers import load_event


def _predict(cloud, body, name="housing-sample", raw=False, query=None):
    event = copy.deepcopy(load_event("predict"))
    event["path"] = f"/models/{name}/predict"
    event["pathParameters"] = {"name": name}
    event["queryStringParameters"] = query  # None: the default, production
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} if query else None
    event["body"] = body if raw else json.dumps(body)
    payload, error = cloud.invoke("PredictFunction", event)
    assert error is None, payload
    return payload["statusCode"], json.loads(payload["body"])


def _expected(artifact: ModelArtifact, rows: list[dict]) -> list[float]:
    """The model by hand: standardize, one-hot, impute exactly as the saved statistics say."""
    out = []
    for row in rows:
        x = []
        for col in artifact.preprocessor.columns:
            v = row[col.name]
            if col.kind == "numeric":
                x.append(((col.fill if v is None else v) - col.mean) / col.scale)
            else:
                x.extend(1.0 if (col.fill if v is None else v) == c else 0.0 for c in col.categories)
        out.append(float(np.dot(x, np.ravel(artifact.model.coefficients)) + artifact.model.intercept[0]))
    return out


def test_committed_event_predicts_both_instance_shapes(cloud, model):
    payload, error = cloud.invoke("PredictFunction", load_event("predict"))
    assert error is None and payload["statusCode"] == 200
    body = json.loads(payload["body"])
    assert (body["model"], body["version"], body["target"]) == ("housing-sample", 1, "price_k")
    rows = [
        {
            "area_m2": 92.2,
            "bedrooms": 2,
            "age_years": 62.7,
            "distance_km": 3.11,
            "lot_m2": 156,
            "neighborhood": "harbor",
        },
        {
            "area_m2": 128.4,
            "bedrooms": 3,
            "age_years": 5.4,
            "distance_km": 2.59,
            "lot_m2": None,
            "neighborhood": "riverside",
        },
    ]
    assert body["predictions"] == pytest.approx(_expected(model, rows), rel=1e-12)


UNSEEN = {
    "area_m2": 100.0,
    "bedrooms": 3,
    "age_years": 10,
    "distance_km": 1.5,
    "lot_m2": 300,
    "neighborhood": "downtown",  # not a category of the training rows
}


def test_object_and_list_instances_agree(cloud, model):
    status, body = _predict(cloud, {"instances": [UNSEEN, list(UNSEEN.values())]})
    assert status == 200
    assert body["predictions"][0] == body["predictions"][1]


def test_an_unseen_category_is_all_zero(cloud, model):
    status, body = _predict(cloud, {"instances": [UNSEEN]})
    assert status == 200
    assert body["predictions"][0] == pytest.approx(_expected(model, [UNSEEN])[0])


BAD_REQUESTS = [
    ({"instances": []}, 422, "instances"),
    ({}, 422, "instances"),
    (
        {"instances": [{"area_m2": 1}]},
        400,
        "instances[0] is missing feature(s): bedrooms, age_years, distance_km, lot_m2, neighborhood",
    ),
    (
        {"instances": [[1, 2, 3]]},
        400,
        "instances[0] has 3 values, expected 6 in this order: area_m2, bedrooms, "
        "age_years, distance_km, lot_m2, neighborhood",
    ),
    (
        {
            "instances": [
                {
                    "area_m2": "big",
                    "bedrooms": 2,
                    "age_years": 1,
                    "distance_km": 1,
                    "lot_m2": 1,
                    "neighborhood": "harbor",
                }
            ]
        },
        400,
        "instances[0].area_m2 must be a number or null, got 'big'",
    ),
    (
        {
            "instances": [
                {
                    "area_m2": 1,
                    "bedrooms": 2,
                    "age_years": 1,
                    "distance_km": 1,
                    "lot_m2": 1,
                    "neighborhood": "harbor",
                    "color": "red",
                }
            ]
        },
        200,
        "ignored column(s) that are not features of the model: color",
    ),
    ({"instances": [[1, 2, 3, 4, 5, "harbor"]] * 1001}, 422, "instances"),
]


def test_bad_requests_get_a_4xx_naming_the_field(cloud, model):
    for body, status, message in BAD_REQUESTS:
        got_status, got = _predict(cloud, body)
        assert got_status == status, (body, got)
        assert message in json.dumps(got), (message, got)


ROW = {"area_m2": 1, "bedrooms": 2, "age_years": 1, "distance_km": 1, "lot_m2": 1, "neighborhood": "harbor"}


def test_extra_columns_are_ignored_with_a_warning_unless_strict(cloud, model):
    status, plain = _predict(cloud, {"instances": [ROW]})
    status_extra, extra = _predict(cloud, {"instances": [{"id": 1, **ROW, "price_k": 300}, ROW]})
    assert status == status_extra == 200
    assert extra["predictions"] == [plain["predictions"][0]] * 2
    assert extra["warnings"] == ["ignored column(s) that are not features of the model: id, price_k"]
    assert plain.get("warnings") is None
    strict, refused = _predict(cloud, {"instances": [ROW, {**ROW, "id": 1}]}, query={"strict": "true"})
    assert (strict, refused) == (400, {"message": "instances[1] has unknown feature(s): id"})


def test_nan_is_400_naming_the_field(cloud, model):
    status, body = _predict(cloud, '{"instances": [[NaN, 2, 3, 4, 5, "harbor"]]}', raw=True)
    assert status == 400 and body["message"] == "instances[0].area_m2 must be finite, got nan"


def test_malformed_json_is_422(cloud, model):
    status, _ = _predict(cloud, '{"instances": [', raw=True)
    assert status == 422


def test_unknown_model_is_404(cloud, model):
    status, body = _predict(cloud, {"instances": [[1, 2, 3, 4, 5, "harbor"]]}, name="nope")
    assert (status, body) == (404, {"message": "model 'nope' has no 'production' version"})


def test_any_valid_rest_proxy_event_is_accepted(cloud, model):
    """A minimal event as API Gateway may send it: no multiValue fields, null headers."""
    event = {
        "resource": "/models/{name}/predict",
        "path": "/models/housing-sample/predict",
        "httpMethod": "POST",
        "headers": None,
        "multiValueHeaders": None,
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"name": "housing-sample"},
        "stageVariables": None,
        "requestContext": {
            "requestId": "r-1",
            "stage": "prod",
            "resourcePath": "/models/{name}/predict",
            "httpMethod": "POST",
        },
        "body": json.dumps({"instances": [[1, 2, 3, 4, 5, "harbor"]]}),
        "isBase64Encoded": False,
    }
    payload, error = cloud.invoke("PredictFunction", event)
    assert error is None and payload["statusCode"] == 200, payload


def test_the_batch_events_run_plan_chunk_and_finalize(cloud, model):
    """events/batch_predict.json (plan), batch_predict_chunk.json (one chunk: its byte range from chunks.json) and
    batch_predict_finalize.json, as `sam local invoke` would run them, over a job whose document is in the bucket."""
    job_id = load_event("batch_predict")["job_id"]
    header = "house,area_m2,bedrooms,age_years,distance_km,lot_m2,neighborhood\n"
    cloud.s3.put_object(
        Bucket=cloud.stack.bucket, Key="landing/rows.csv", Body=header + "h-1,92.2,2,62.7,3.11,156,harbor\n"
    )
    job = {"job_id": job_id, "model": "housing-sample", "version": 1, "input_key": "landing/rows.csv", "format": "csv"}
    job |= {"batch_rows": 1000, "id_columns": ["house"], "created_at": "2026-01-01T00:00:00+00:00", "started": 0.0}
    cloud.s3.put_object(Bucket=cloud.stack.bucket, Key=layout.job_key(job_id), Body=json.dumps(job))
    planned, error = cloud.invoke("BatchPredictFunction", load_event("batch_predict"))
    assert error is None and planned["rows"] == 1, planned
    chunks = json.loads(cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=planned["chunks_key"])["Body"].read())
    event = load_event("batch_predict_chunk")
    assert set(event) == {"action", "job_id", "first_row", "start", "end"} and event["job_id"] == job_id
    stats, error = cloud.invoke("BatchPredictFunction", {**event, **chunks[0]})
    assert error is None and stats["predicted"] == 1, stats
    summary, error = cloud.invoke("BatchPredictFunction", load_event("batch_predict_finalize"))
    assert error is None and summary["predicted"] == 1, summary
    body = cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=summary["predictions_key"])["Body"].read()
    assert json.loads(body)["house"] == "h-1"
