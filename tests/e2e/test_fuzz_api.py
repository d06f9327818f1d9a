"""Fuzz every route of the committed OpenAPI document with schemathesis against the local API server:
at least 1,000 generated requests (EXAMPLES per operation), no 5xx, every response conforming to the document."""

from __future__ import annotations

import json
import socket
from collections import Counter

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance, unsupported_method

from mllocal.server import LocalApi
from mllocal.template import ROOT

schema = schemathesis.openapi.from_path(ROOT / "docs" / "openapi.json")
OPERATIONS = sum(1 for _ in schema.get_all_operations())
EXAMPLES = -(-1100 // OPERATIONS)  # at least 1,000 requests over all operations
_real_getaddrinfo = socket.getaddrinfo


def _loopback_only(host, *args, **kwargs):
    """Generated URLs (data set URL ingestion) must never reach the network: names resolve to nothing."""
    if host in ("127.0.0.1", "localhost", "::1"):
        return _real_getaddrinfo(host, *args, **kwargs)
    raise socket.gaierror(f"fuzz test: no resolution of {host!r}")


@pytest.fixture(scope="module")
def server():
    socket.getaddrinfo = _loopback_only
    try:
        with LocalApi(port=0, access_log=False, log_level="ERROR") as api:
            yield api
    finally:
        socket.getaddrinfo = _real_getaddrinfo


@pytest.fixture
def sent():
    """The status codes of the requests one fuzz test sends; counted when the test has sent all of them.

    Hypothesis calls the test body once per generated request, so the checks on all the requests of one
    operation go after the last call: in this test's own teardown, which runs with the test, alone or not."""
    statuses: Counter[int] = Counter()
    yield statuses
    total = sum(statuses.values())
    print(f"fuzzed {total} requests: {dict(sorted(statuses.items()))}")
    # EXAMPLES per operation is at least 1,000 requests over all OPERATIONS
    assert total >= EXAMPLES, statuses
    assert not [code for code in statuses if code >= 500], statuses


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_fuzzed_requests_get_responses_that_conform_to_the_document(case, server, sent):
    response = case.call(base_url=server.url, headers={"x-api-key": server.api_key})
    sent[response.status_code] += 1
    # API Gateway answers an undeclared method with 403 "Missing Authentication Token", not 405; and a
    # schema-valid request may still name a data set or model that does not exist (a documented 4xx)
    case.validate_response(response, excluded_checks=[unsupported_method, positive_data_acceptance])


# Shapes the generated requests rarely reach, sent to every operation as raw JSON bodies: nesting past the
# documented depth, an integer past Python's int-string limit, a lone surrogate, a 200 KiB string field.
HOSTILE_BODIES = {
    "deep": "[" * 100_000 + "]" * 100_000,
    "huge int": '{"version": ' + "9" * 5000 + ', "n_shards": ' + "9" * 5000 + "}",
    "lone surrogate": '{"s3_key": "landing/\\ud800.csv", "name": "\\udfff", "instances": [{"x": "\\ud800"}]}',
    "long field": json.dumps({"name": "x" * 200_000, "s3_key": "k" * 200_000, "instances": [{"x": "y" * 200_000}]}),
}
ROUTES = [(op.ok().method.upper(), op.ok().path) for op in schema.get_all_operations()]


@pytest.mark.parametrize("shape", HOSTILE_BODIES)
@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_hostile_bodies_are_refused_or_ignored_by_every_operation_never_a_5xx(server, method, path, shape):
    url = server.url + path.format(name="m", job_id="batch-000000000000", run_id="run-000000000000", version=1)
    headers = {"x-api-key": server.api_key or "", "Content-Type": "application/json"}
    response = requests.request(method, url, data=HOSTILE_BODIES[shape].encode("utf-8"), headers=headers, timeout=60)
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if shape != "long field":  # the only one of the four that is valid JSON: a route may ignore or accept it
        assert response.status_code == 400 and "request body refused" in response.text, response.text[:300]
