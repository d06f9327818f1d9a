"""The request guard every API function runs before routing: which bodies are read as JSON, which are refused."""

from __future__ import annotations

import json

import pytest

from mlcore.infra.http import guard


def _event(body: str, content_type: str | None) -> dict:
    headers = {"Content-Type": content_type} if content_type else {}
    return {"body": body, "headers": headers, "multiValueHeaders": {k: [v] for k, v in headers.items()}}


@pytest.mark.parametrize("content_type", [None, "application/x-www-form-urlencoded", "application/json"])
def test_a_json_body_is_read_as_json_when_unlabelled_or_sent_as_curls_default(content_type):
    event, rejected = guard(_event('{"version": 1}', content_type))
    assert rejected is None
    assert event["body"] == '{"version": 1}'
    if content_type:  # the resolver sees JSON, not form fields
        assert event["headers"] == {"Content-Type": "application/json"}
        assert event["multiValueHeaders"] == {"Content-Type": ["application/json"]}


@pytest.mark.parametrize("content_type", ["text/csv", "multipart/form-data", "text/plain"])
def test_a_body_of_another_type_is_still_refused(content_type):
    _, rejected = guard(_event('{"version": 1}', content_type))
    assert rejected is not None and rejected["statusCode"] == 415
    message = json.loads(rejected["body"])["message"]
    assert message == f"unsupported Content-Type {content_type!r}; send application/json"


def test_a_form_labelled_body_is_checked_as_json():
    _, rejected = guard(_event("[" * 10_000, "application/x-www-form-urlencoded"))
    assert rejected is not None and rejected["statusCode"] == 400


def test_a_route_reading_csv_keeps_a_csv_body_as_it_came():
    event, rejected = guard(
        _event("a,b\n1,2\n", "text/csv"), content_types=("application/json", "text/csv"), decode=False
    )
    assert rejected is None and event["headers"] == {"Content-Type": "text/csv"}
