"""Build API Gateway REST (v1) proxy events for the routes declared in template.yaml."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from typing import Any

from .template import FunctionSpec


def match_route(
    functions: dict[str, FunctionSpec], method: str, path: str
) -> tuple[FunctionSpec, str, dict[str, str]] | None:
    """Find the function and resource template that serve ``method path``."""
    for spec in functions.values():
        for route_method, resource in spec.api_routes:
            if route_method not in (method.upper(), "ANY"):
                continue
            pattern = "^" + re.sub(r"\\\{([^}]+)\\\}", r"(?P<\1>[^/]+)", re.escape(resource)) + "$"
            m = re.match(pattern, path)
            if m:
                return spec, resource, m.groupdict()
    return None


def proxy_event(
    method: str,
    path: str,
    resource: str,
    path_parameters: dict[str, str],
    *,
    body: bytes | str | dict | None = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    stage: str = "dev",
) -> dict[str, Any]:
    """A REST API proxy integration event as API Gateway sends it."""
    headers = {"Content-Type": "application/json", **(headers or {})}
    is_base64 = False
    if isinstance(body, dict):
        body = json.dumps(body)
    elif isinstance(body, bytes):
        raw = body
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            body, is_base64 = base64.b64encode(raw).decode(), True
    request_id = str(uuid.uuid4())
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method.upper(),
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": path_parameters or None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method.upper(),
            "path": f"/{stage}{path}",
            "stage": stage,
            "requestId": request_id,
            "extendedRequestId": request_id,
            "accountId": "123456789012",
            "apiId": "local",
            "protocol": "HTTP/1.1",
            "requestTimeEpoch": int(time.time() * 1000),
            "identity": {"sourceIp": "127.0.0.1", "userAgent": "local"},
            "domainName": "localhost",
        },
        "body": body,
        "isBase64Encoded": is_base64,
    }
