"""The request guard every API function runs before routing: which bodies are read as JSON, which are refused."""

from __future__ import annotations

import json

import pytest
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from pydantic import BaseModel

from mlcore.infra.http import guard, json_body, register_error_handlers, resolve


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


# --- a JSON body is parsed once: resolve's guard hands its value to the resolver ------------------------------


class Body(BaseModel):
    values: list[int]


def _app(**kwargs) -> APIGatewayRestResolver:
    app = APIGatewayRestResolver(enable_validation=True, **kwargs)
    register_error_handlers(app)

    @app.post("/sum")
    def total(body: Body) -> dict:
        return {"sum": sum(body.values)}

    return app


def _post(app: APIGatewayRestResolver, body: str) -> tuple[int, dict]:
    event = {
        "httpMethod": "POST",
        "path": "/sum",
        "resource": "/sum",
        "body": body,
        "headers": {"Content-Type": "application/json"},
        "multiValueHeaders": {"Content-Type": ["application/json"]},
        "requestContext": {"stage": "test", "requestId": "r"},
        "isBase64Encoded": False,
    }
    answer = resolve(app, event, None)
    return answer["statusCode"], json.loads(answer["body"])


@pytest.fixture
def parses(monkeypatch) -> list[str]:
    """Every text handed to json.loads, by jsontext or the resolver."""
    seen: list[str] = []
    real = json.loads

    def counting(text, *args, **kwargs):
        seen.append(text)
        return real(text, *args, **kwargs)

    monkeypatch.setattr(json, "loads", counting)
    return seen


LARGE = json.dumps({"values": list(range(2000))})  # over 4,300 characters: the guard parses it whole


@pytest.mark.parametrize("body", ['{"values": [1, 2, 3]}', LARGE])
def test_a_json_body_is_parsed_once_when_the_resolver_reads_it_through_json_body(parses, body):
    expected = {"sum": sum(range(2000)) if body == LARGE else 6}
    assert _post(_app(json_body_deserializer=json_body), body) == (200, expected)
    assert parses.count(body) == 1


def test_the_parsed_body_is_not_kept_past_its_request(parses):
    _post(_app(json_body_deserializer=json_body), LARGE)
    assert json_body(LARGE) == {"values": list(range(2000))}
    assert parses.count(LARGE) == 2  # parsed again: nothing from the answered request was handed out


def test_json_body_hands_over_only_the_very_text_the_guard_parsed(parses):
    _, rejected = guard({"body": LARGE, "headers": {}})
    assert rejected is None
    copy = "".join(LARGE)  # equal text, another object
    assert json_body(copy) == {"values": list(range(2000))}
    assert parses.count(LARGE) == 2
    assert json_body(LARGE) == {"values": list(range(2000))}  # the guard's value, handed over once
    assert parses.count(LARGE) == 2
    assert json_body(LARGE) == {"values": list(range(2000))}
    assert parses.count(LARGE) == 3


BODIES = [
    ('{"values": [1, 2]}', 200, {"sum": 3}),
    ('{"values": [1, 2]', 422, None),  # syntax: the resolver's json_invalid detail
    ('{"values": ["x"]}', 422, None),
    ("[" * 65 + "]" * 65, 400, {"message": "request body refused: JSON nested more than 64 levels deep"}),
    (
        '{"values": [' + "9" * 5000 + "]}",
        400,
        {"message": "request body refused: an integer literal has 5000 digits, more than 4300"},
    ),
    (
        '{"values": [], "x": "\\ud800"}',
        400,
        {"message": "request body refused: a string holds a lone surrogate (\\ud800), which is not text"},
    ),
]


@pytest.mark.parametrize(("body", "status", "expected"), BODIES)
def test_answers_are_those_of_a_resolver_parsing_the_body_itself(body, status, expected):
    once = _post(_app(json_body_deserializer=json_body), body)
    twice = _post(_app(), body)
    assert once == twice
    assert once[0] == status
    if expected is not None:
        assert once[1] == expected
