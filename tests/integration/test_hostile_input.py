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
