"""Hostile shapes of input get a 4xx naming the problem and leave nothing behind (no 5xx anywhere): JSON bodies
nested too deep, integer literals past Python's limit, lone surrogates; CSV fields over the csv module's limit
and JSON Lines nested too deep in uploads; malformed URLs for URL ingestion."""

from __future__ import annotations

import json
import re

import pytest

from tests.helpers import keys

DEEP = "[" * 100_000 + "]" * 100_000
HUGE_INT = '{"version": ' + "9" * 5000 + "}"
SURROGATE = '{"s3_key": "landing/\\ud800.csv"}'
SHAPES = {
    "deep": (DEEP, "^request body refused: JSON nested more than 64 levels deep$"),
    "huge int": (HUGE_INT, "^request body refused: an integer literal has 5000 digits, more than 4300$"),
    "lone surrogate": (SURROGATE, "lone surrogate \\(\\\\ud800\\)"),
}
JSON_ROUTES = [
    ("POST", "/datasets"),
    ("POST", "/datasets/x"),
    ("POST", "/training-runs"),
    ("POST", "/models/m/predict"),
    ("POST", "/models/m/promote"),
    ("POST", "/batch-jobs"),
]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("method", "path"), JSON_ROUTES)
def test_hostile_json_bodies_are_a_400_naming_the_problem(cloud, method, path, shape):
    body, message = SHAPES[shape]
    resp = cloud.request(method, path, body, headers={"Content-Type": "application/json"})
    assert resp["statusCode"] == 400, resp
    assert re.search(message, json.loads(resp["body"])["message"]), resp["body"]
    assert keys(cloud) == []


@pytest.mark.parametrize(
    ("data", "content_type", "message"),
    [
        (
            b"a,b\n1," + b"x" * 140_000 + b"\n2,y\n",
            "text/csv",
            "^line 2 is not well-formed CSV: field larger than field limit \\(131072\\)$",
        ),
        (
            b'{"a": 1}\n{"a": ' + b"[" * 100 + b"]" * 100 + b"}\n",
            "application/x-ndjson",
            "^line 2 is refused: JSON nested more than 64 levels deep$",
        ),
    ],
)
def test_uploads_with_hostile_records_are_a_400_naming_the_line(cloud, data, content_type, message):
    resp = cloud.request("POST", "/datasets/hostile", data, headers={"Content-Type": content_type})
    assert resp["statusCode"] == 400, resp
    assert re.search(message, json.loads(resp["body"])["message"]), resp["body"]
    assert keys(cloud) == []


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://a:99999/", "is malformed: Port out of range 0-65535"),
        ("https://a:abc/", "is malformed: Port could not be cast to integer value as 'abc'"),
        ("https://a:-1/", "is malformed: Port could not be cast to integer value as '-1'"),
        ("https://[::1/", "is malformed: Invalid IPv6 URL"),
        ("https://a..b/", "invalid host name 'a..b': label empty or too long"),
        ("https://" + "a" * 64 + ".example/", "label empty or too long"),
        ("https://" + ".".join(["abcdefghij"] * 25) + "/", "invalid host name: 274 characters, more than 253"),
    ],
)
def test_malformed_urls_for_url_ingestion_are_a_400_naming_the_problem(cloud, url, message):
    body = json.dumps({"url": url})
    resp = cloud.request("POST", "/datasets/web", body, headers={"Content-Type": "application/json"})
    assert resp["statusCode"] == 400, resp
    assert message in json.loads(resp["body"])["message"]
    assert keys(cloud) == []


RUN = {"dataset": "housing", "target": "price_k", "model_name": "m"}


@pytest.mark.parametrize(
    ("body", "loc", "cap"),
    [
        ({**RUN, "seed": 10**400}, ["body", "seed"], "4294967295"),
        ({**RUN, "seed": 2**32}, ["body", "seed"], "4294967295"),
        (
            {**RUN, "mode": "async", "hyperparameters": {"batch_size": 10**6 + 1}},
            ["body", "hyperparameters", "batch_size"],
            "1000000",
        ),
    ],
)
def test_a_training_run_seed_or_batch_size_past_its_cap_is_a_422_naming_it_with_nothing_started(cloud, body, loc, cap):
    """The tuning request's caps (seed 2**32-1, batch_size 10**6) hold for a training run too."""
    arn = cloud.state_machine_arns["TrainingStateMachine"]
    resp = cloud.request("POST", "/training-runs", json.dumps(body), headers={"Content-Type": "application/json"})
    assert resp["statusCode"] == 422, resp
    detail = json.loads(resp["body"])["detail"]
    assert [(d["loc"], d["msg"]) for d in detail] == [(loc, f"Input should be less than or equal to {cap}")]
    assert keys(cloud) == []
    assert cloud.sfn.list_executions(stateMachineArn=arn)["executions"] == []


@pytest.mark.parametrize(
    ("method", "path", "body", "quoted"),
    [
        ("POST", "/training-runs", {**RUN, "dataset": "x" * 1_000_000}, "invalid data set name 'xxx"),
        ("POST", "/datasets/d", {"s3_key": "landing/" + "x" * 999_992}, "object 'landing/xxx"),
        ("POST", "/datasets/d", {"s3_key": "runs/" + "x" * 999_995}, "s3_key 'runs/xxx"),
    ],
)
def test_an_error_quotes_at_most_100_characters_of_a_1_mb_value(cloud, method, path, body, quoted):
    resp = cloud.request(method, path, json.dumps(body), headers={"Content-Type": "application/json"})
    assert 400 <= resp["statusCode"] < 500, resp["body"][:300]
    message = json.loads(resp["body"])["message"]
    assert message.startswith(quoted), message[:300]
    assert "… (1000000 characters)" in message and len(message) < 400, message
    assert keys(cloud) == []
