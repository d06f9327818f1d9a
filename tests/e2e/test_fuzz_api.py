"""Fuzz every route of the committed OpenAPI document with schemathesis against the local API server:
at least 3,000 generated requests (EXAMPLES per operation), no 5xx, every response conforming to the document.

Besides schemathesis's own strategies, one generated JSON body in three has one of its fields (or, for a body
that is not an object, the whole body) replaced by a hostile shape the schema-driven generation never draws:
nesting past the documented depth, an integer past Python's int-string limit, a lone surrogate, a 200 KiB
string. The two that Python's json module cannot write are sent as raw JSON text by this module's serializer."""

from __future__ import annotations

import json
import socket
from collections import Counter

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import positive_data_acceptance, unsupported_method
from schemathesis.transport.serialization import serialize_json

from mllocal.server import LocalApi
from mllocal.template import ROOT

schema = schemathesis.openapi.from_path(ROOT / "docs" / "openapi.json")
# a body over a route's documented size limit is a 413, as refusing as the default's 400 or 422
_rejection = schema.config.checks.negative_data_rejection
_rejection.expected_statuses = [*_rejection.expected_statuses, "413"]
OPERATIONS = sum(1 for _ in schema.get_all_operations())
EXAMPLES = -(-3000 // OPERATIONS)  # at least 3,000 requests over all operations
_real_getaddrinfo = socket.getaddrinfo


def _loopback_only(host, *args, **kwargs):
    """Generated URLs (data set URL ingestion) must never reach the network: names resolve to nothing."""
    if host in ("127.0.0.1", "localhost", "::1"):
        return _real_getaddrinfo(host, *args, **kwargs)
    raise socket.gaierror(f"fuzz test: no resolution of {host!r}")


class RawJson(str):
    """JSON text sent as it is, in place of a value: shapes Python's json module refuses to write."""


HOSTILE_VALUES = {
    "deep": RawJson("[" * 100_000 + "]" * 100_000),
    "huge int": RawJson("9" * 5000),
    "lone surrogate": "landing/\ud800.csv",
    "long field": "x" * 200_000,
}


@schema.hook
def flatmap_body(context, body):
    """Keep two generated bodies in three; in the third, put a hostile value in one field (or as the body)."""
    hostile = st.sampled_from(sorted(HOSTILE_VALUES)).map(HOSTILE_VALUES.__getitem__)
    if isinstance(body, dict) and body:
        replaced = st.tuples(st.sampled_from(sorted(body)), hostile).map(lambda kv: {**body, kv[0]: kv[1]})
    else:
        replaced = hostile
    return st.one_of(st.just(body), st.just(body), replaced)


def _json_with_raw_values(context, value) -> bytes:
    """schemathesis's own JSON serialization, with a RawJson value (the body, or one field) written as its text."""
    raw = {k: v for k, v in value.items() if isinstance(v, RawJson)} if isinstance(value, dict) else {}
    if isinstance(value, RawJson):
        return str(value).encode("utf-8")
    if raw:  # each raw field holds a placeholder string while the rest is written by json.dumps
        text = json.dumps({k: f"@raw:{k}@" if k in raw else v for k, v in value.items()}, allow_nan=False)
        for k, v in raw.items():
            text = text.replace(json.dumps(f"@raw:{k}@"), v)
        return text.encode("utf-8")
    body = serialize_json(value)
    return body["data"] if "data" in body else json.dumps(body["json"], allow_nan=False).encode("utf-8")


schemathesis.serializer("application/json")(_json_with_raw_values)  # the decorator returns None


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
    """The status codes of the requests one fuzz test sends, and how many carried a hostile value; counted when
    the test has sent all of them.

    Hypothesis calls the test body once per generated request, so the checks on all the requests of one
    operation go after the last call: in this test's own teardown, which runs with the test, alone or not."""
    statuses: Counter[int] = Counter()
    hostile: Counter[str] = Counter()
    yield statuses, hostile
    total = sum(statuses.values())
    print(f"fuzzed {total} requests: {dict(sorted(statuses.items()))}; hostile values: {dict(hostile)}")
    # EXAMPLES per operation is at least 3,000 requests over all OPERATIONS
    assert total >= EXAMPLES, statuses
    assert not [code for code in statuses if code >= 500], statuses


def _hostile_shape(body) -> str | None:
    values = body.values() if isinstance(body, dict) else [body]
    return next((shape for v in values for shape, h in HOSTILE_VALUES.items() if v is h), None)


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_fuzzed_requests_get_responses_that_conform_to_the_document(case, server, sent):
    statuses, hostile = sent
    response = case.call(base_url=server.url, headers={"x-api-key": server.api_key})
    statuses[response.status_code] += 1
    if shape := _hostile_shape(case.body):
        hostile[shape] += 1
    # API Gateway answers an undeclared method with 403 "Missing Authentication Token", not 405; and a
    # schema-valid request may still name a data set or model that does not exist (a documented 4xx)
    case.validate_response(response, excluded_checks=[unsupported_method, positive_data_acceptance])


# Every operation, sent each hostile value as the whole body (deep) or in the fields routes read: refused
# before any handler parses it, except the 200 KiB string (valid JSON a route may ignore or accept)
FIELDS_READ = ("s3_key", "name", "version", "instances")
HOSTILE_BODIES = {
    shape: _json_with_raw_values(
        None, value if shape == "deep" else dict.fromkeys(("s3_key", "name", "version"), value)
    )
    for shape, value in HOSTILE_VALUES.items()
}
ROUTES = [(op.ok().method.upper(), op.ok().path) for op in schema.get_all_operations()]


@pytest.mark.parametrize("shape", HOSTILE_BODIES)
@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_hostile_bodies_are_refused_or_ignored_by_every_operation_never_a_5xx(server, method, path, shape):
    url = server.url + path.format(
        name="m", job_id="batch-000000000000", run_id="run-000000000000", version=1, upload_id="0123456789abcdef"
    )
    headers = {"x-api-key": server.api_key or "", "Content-Type": "application/json"}
    response = requests.request(method, url, data=HOSTILE_BODIES[shape], headers=headers, timeout=60)
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if shape != "long field":  # the only one of the four that is valid JSON: a route may ignore or accept it
        assert response.status_code == 400 and "request body refused" in response.text, response.text[:300]
