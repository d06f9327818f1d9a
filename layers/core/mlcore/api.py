"""Domain errors -> HTTP responses, in one place for every API function."""

import base64
import binascii
import json

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types

from .errors import ConflictError, InvalidInput, NotFoundError


def register_error_handlers(app: APIGatewayRestResolver) -> None:
    @app.exception_handler(InvalidInput)
    def _invalid(err: InvalidInput) -> Response:
        return Response(status_code=400, content_type=content_types.APPLICATION_JSON, body={"message": str(err)})

    @app.exception_handler(NotFoundError)
    def _missing(err: NotFoundError) -> Response:
        return Response(status_code=404, content_type=content_types.APPLICATION_JSON, body={"message": str(err)})

    @app.exception_handler(ConflictError)
    def _conflict(err: ConflictError) -> Response:
        return Response(status_code=409, content_type=content_types.APPLICATION_JSON, body={"message": str(err)})


def _error(status: int, message: str) -> dict:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"message": message}),
        "isBase64Encoded": False,
    }


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
