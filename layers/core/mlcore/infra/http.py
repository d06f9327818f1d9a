"""Domain errors -> HTTP responses, in one place for every API function."""

import base64
import binascii
import json
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from mlcore.infra import jsontext
from mlcore.infra.errors import ConflictError, CorruptData, InvalidInput, LimitExceeded, NotFoundError, Unprocessable
from mlcore.infra.observability import logger


def register_error_handlers(app: APIGatewayRestResolver) -> None:
    @app.exception_handler(InvalidInput)
    def _invalid(err: InvalidInput) -> Response:
        return Response(status_code=400, content_type=content_types.APPLICATION_JSON, body={"message": str(err)})

    @app.exception_handler(Unprocessable)  # an InvalidInput too: Powertools takes the most specific handler
    def _cannot(err: Unprocessable) -> Response:
        return Response(status_code=422, content_type=content_types.APPLICATION_JSON, body={"message": str(err)})

    @app.exception_handler(NotFoundError)
    def _missing(err: NotFoundError) -> Response:
        return Response(status_code=404, content_type=content_types.APPLICATION_JSON, body={"message": str(err)})

    @app.exception_handler(RequestValidationError)
    def _unprocessable(err: RequestValidationError) -> Response:
        # Powertools' default drops "msg", which its own OpenAPI schema (ValidationError) requires; pydantic's
        # messages name the problem ("Field required") and echo no input values, so they are kept.
        detail = [{"loc": list(e["loc"]), "msg": str(e.get("msg", "")), "type": e["type"]} for e in err.errors()]
        return Response(
            status_code=422, content_type=content_types.APPLICATION_JSON, body={"statusCode": 422, "detail": detail}
        )

    @app.exception_handler(ConflictError)
    def _conflict(err: ConflictError) -> Response:
        return Response(status_code=409, content_type=content_types.APPLICATION_JSON, body={"message": str(err)})

    @app.exception_handler(LimitExceeded)
    def _too_many(err: LimitExceeded) -> Response:
        return Response(status_code=429, content_type=content_types.APPLICATION_JSON, body={"message": str(err)})

    @app.exception_handler(CorruptData)
    def _corrupt(err: CorruptData) -> Response:
        logger.error("corrupt stored data", extra={"problem": str(err)})  # the message, never a stack trace
        return Response(status_code=500, content_type=content_types.APPLICATION_JSON, body={"message": str(err)})


def accepted(body: dict) -> Response[dict]:
    """202: the work started (a workflow execution); ``body`` says how to follow it."""
    return Response(status_code=202, content_type=content_types.APPLICATION_JSON, body=body)


def _error(status: int, message: str) -> dict:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"message": message}),
        "isBase64Encoded": False,
    }


JSON_ONLY = ("application/json",)
# What clients send with a JSON body when they do not say it is JSON: curl's `-d` defaults to this type. A route that
# reads JSON takes such a body as JSON (a form-encoded body is not JSON and fails as a syntax error); any other type
# (text/csv, multipart/form-data, ...) is still refused with 415.
UNLABELLED_JSON = ("application/x-www-form-urlencoded",)
DEFAULT_MAX_BODY = 1_048_576


def _content_type(event: dict) -> str | None:
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == "content-type" and value:
            return value.split(";")[0].strip().lower()
    return None


def guard(
    event: dict,
    *,
    max_bytes: int | None = DEFAULT_MAX_BODY,
    content_types: tuple[str, ...] = JSON_ONLY,
    decode: bool = True,
) -> tuple[dict, dict | None]:
    """Checks before routing: a body's media type is one the route reads (415 otherwise, instead of the
    resolver failing on e.g. multipart without a boundary), then ``check_body`` when ``decode``, and ``check_json``
    for a JSON body."""
    media = _content_type(event)
    json_types = (*JSON_ONLY, *UNLABELLED_JSON) if set(JSON_ONLY) & set(content_types) else JSON_ONLY
    if event.get("body") and media is not None and media not in (*content_types, *json_types):
        return event, _error(415, f"unsupported Content-Type {media!r}; send {' or '.join(content_types)}")
    if media in UNLABELLED_JSON and media not in content_types:
        event = _as_json(event)
    if not (decode or media in (None, *json_types)):
        return event, None
    # JSON is always text: decode base64 and check UTF-8 here
    event, rejected = check_body(event, max_bytes if max_bytes is not None else 10 * DEFAULT_MAX_BODY)
    if rejected is None and event.get("body") and media in (None, *json_types):
        rejected = check_json(event["body"])
    return event, rejected


# The JSON body ``guard`` parsed for the request being resolved, with that body's text: ``json_body`` hands it to
# the resolver instead of parsing it again; ``resolve`` empties it once the request is answered.
_parsed: list[tuple[str, Any]] = []


def json_body(text: str) -> Any:
    """A resolver's ``json_body_deserializer`` (``APIGatewayRestResolver(json_body_deserializer=json_body)``): the
    value ``guard`` already parsed from this very body, so a JSON body is parsed once; otherwise ``jsontext.loads``
    (within the same bounds)."""
    if _parsed and _parsed[-1][0] is text:
        return _parsed.pop()[1]
    return jsontext.loads(text)


def _as_json(event: dict) -> dict:
    """The event with its Content-Type header(s) rewritten to application/json, so the resolver reads the body
    as the JSON it is rather than as form fields."""
    headers = {
        k: ("application/json" if k.lower() == "content-type" else v) for k, v in (event.get("headers") or {}).items()
    }
    multi = {
        k: (["application/json"] if k.lower() == "content-type" else v)
        for k, v in (event.get("multiValueHeaders") or {}).items()
    }
    return {**event, "headers": headers, **({"multiValueHeaders": multi} if multi else {})}


def check_json(body: str) -> dict | None:
    """400 for a JSON body beyond ``jsontext``'s bounds (depth, integer size, lone surrogates), which the
    resolver's parser would meet as a RecursionError or a bare ValueError; plain syntax errors are left to it.
    A body within the bounds is kept for ``json_body``."""
    _parsed.clear()
    try:
        value = jsontext.loads(body)
    except jsontext.JsonRefused as err:
        return _error(400, f"request body refused: {err}")
    except json.JSONDecodeError:
        return None
    _parsed.append((body, value))
    return None


def resolve(app: APIGatewayRestResolver, event: dict, context, **checks) -> dict:
    """``guard`` the event, then route it: the one entry point of every API function."""
    try:
        event, rejected = guard(event, **checks)
        return rejected or app.resolve(event, context)
    finally:
        _parsed.clear()  # a body is not kept past its request


def check_body(event: dict, max_bytes: int) -> tuple[dict, dict | None]:
    """Before routing: ``(event, None)``, or ``(event, response)`` for an oversized (413) or undecodable
    (400) body.

    A base64-encoded body is decoded here (and the event rewritten as plain text), so the resolver
    never meets invalid base64 or UTF-8, which would otherwise surface as a 5xx.
    """
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        if len(body) * 3 // 4 > max_bytes:
            return event, _error(413, f"request body is over {max_bytes} bytes")
        try:
            body = base64.b64decode(body, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return event, _error(400, "request body is not valid base64-encoded UTF-8")
        event = {**event, "body": body, "isBase64Encoded": False}
    size = len(body.encode("utf-8", errors="surrogatepass"))
    if size > max_bytes:
        return event, _error(413, f"request body is {size} bytes, at most {max_bytes} are accepted")
    return event, None
