"""A small HTTP client of the API: JSON in and out, errors as ApiError with the server's message."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

LOCAL_URL = "http://127.0.0.1:3000"
LOCAL_API_KEY = "local-api-key"


class ApiError(Exception):
    """An error answer of the API (or no answer): one line for the user."""


def _message(status: int, body: bytes) -> str:
    try:
        doc = json.loads(body)
    except ValueError:
        return f"HTTP {status}: {body[:200].decode(errors='replace')}"
    if isinstance(doc, dict) and "message" in doc:
        return f"HTTP {status}: {doc['message']}"
    if isinstance(doc, dict) and "detail" in doc:  # request validation: name the fields
        fields = ["/".join(str(p) for p in d.get("loc", [])) + f" ({d.get('type')})" for d in doc["detail"]]
        return f"HTTP {status}: invalid request: {', '.join(fields)}"
    return f"HTTP {status}: {json.dumps(doc)[:200]}"


@dataclass
class Client:
    url: str = LOCAL_URL
    api_key: str | None = LOCAL_API_KEY
    timeout: float = 60.0

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: dict[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        url = self.url.rstrip("/") + path
        query = {k: v for k, v in (query or {}).items() if v is not None}
        if query:
            url += "?" + urllib.parse.urlencode(query)
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Content-Type", content_type)
        if self.api_key:
            req.add_header("x-api-key", self.api_key)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                payload = resp.read()
        except urllib.error.HTTPError as err:
            raise ApiError(_message(err.code, err.read())) from None
        except urllib.error.URLError as err:
            raise ApiError(f"cannot reach {self.url}: {err.reason}") from None
        except TimeoutError:
            raise ApiError(f"{method} {path}: no answer from {self.url} within {self.timeout:.0f}s") from None
        return json.loads(payload) if payload else None

    def get(self, path: str, **query: Any) -> Any:
        return self.request("GET", path, query=query or None)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self.request("POST", path, body, **kwargs)


def put_presigned(
    url: str, data: bytes, progress: Callable[[int], None] | None = None, chunk: int = 1 << 20, timeout: float = 600.0
) -> None:
    """PUT ``data`` to a presigned S3 URL, reporting bytes sent."""

    class Body:
        def __init__(self) -> None:
            self.offset = 0

        def read(self, size: int | None = -1) -> bytes:
            size = chunk if size is None or size < 0 else min(size, chunk)
            part = data[self.offset : self.offset + size]
            self.offset += len(part)
            if progress and part:
                progress(len(part))
            return part

    req = urllib.request.Request(url, data=Body(), method="PUT")
    req.add_header("Content-Length", str(len(data)))
    try:
        with urllib.request.urlopen(req, timeout=timeout):
            pass
    except urllib.error.HTTPError as err:
        raise ApiError(f"upload failed: HTTP {err.code}: {err.read()[:200].decode(errors='replace')}") from None
    except urllib.error.URLError as err:
        raise ApiError(f"upload failed: {err.reason}") from None


def from_stack(stack_name: str, region: str | None = None) -> Client:
    """URL and API key of a deployed stack, read from its CloudFormation outputs."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        cfn = boto3.client("cloudformation", region_name=region)
        outputs = {
            o["OutputKey"]: o["OutputValue"]
            for o in cfn.describe_stacks(StackName=stack_name)["Stacks"][0].get("Outputs", [])
        }
        key = None
        if "ApiKeyId" in outputs:
            key = boto3.client("apigateway", region_name=region).get_api_key(
                apiKey=outputs["ApiKeyId"], includeValue=True
            )["value"]
    except (BotoCoreError, ClientError) as err:
        raise ApiError(f"cannot read stack {stack_name!r}: {err}") from None
    if "ApiUrl" not in outputs:
        raise ApiError(f"stack {stack_name!r} has no ApiUrl output")
    return Client(url=outputs["ApiUrl"], api_key=key)
