"""HTTP to the API: configuration (flags, environment, local key), retries with backoff, errors as ApiError.

Retried: a 429 (the request was refused, so repeating it is safe), a connection that never opened, and for
idempotent methods (GET, HEAD, PUT, DELETE) a 5xx or a read timeout. A POST that reached the server is never
repeated: starting a run twice costs money. Waits honour ``Retry-After``, else back off exponentially with jitter.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

LOCAL_URL = "http://127.0.0.1:3000"
LOCAL_API_KEY = "local-api-key"  # what mllocal.server (`make local`) expects unless started with --api-key
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
ENV_URL, ENV_API_KEY, ENV_STACK, ENV_REGION = "SML_URL", "SML_API_KEY", "SML_STACK", "AWS_REGION"
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 60.0  # seconds: a longer Retry-After is capped


class SmlError(Exception):
    """Anything the client reports as one line to the user."""


class ApiError(SmlError):
    """An error answer of the API, or no answer. ``status`` is the HTTP status (None when there was no answer),
    ``message`` the API's own message."""

    def __init__(self, message: str, status: int | None = None, *, method: str = "", path: str = "") -> None:
        self.message, self.status, self.method, self.path = message, status, method, path
        super().__init__(f"HTTP {status}: {message}" if status is not None else message)


class RunFailed(SmlError):
    """A training run or batch job that ended in another status than SUCCEEDED; ``doc`` is its last document."""

    def __init__(self, message: str, doc: dict[str, Any]) -> None:
        self.doc = doc
        super().__init__(message)


def is_local(url: str) -> bool:
    return (urlsplit(url).hostname or "") in LOCAL_HOSTS


@dataclass(frozen=True)
class Config:
    """Where the client talks to, and how the key was found (named in a 403's message)."""

    url: str
    api_key: str | None
    key_source: str

    @classmethod
    def resolve(
        cls,
        url: str | None = None,
        api_key: str | None = None,
        stack: str | None = None,
        region: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Config:
        """Flags first, then SML_URL / SML_API_KEY / SML_STACK; a stack's URL and key from its outputs; the local
        server's key for a local URL given no key; else the local server on port 3000."""
        env = os.environ if environ is None else environ
        if api_key:
            key, source = api_key, "the key passed (--api-key / api_key=)"
        elif env.get(ENV_API_KEY):
            key, source = env[ENV_API_KEY], f"the key in {ENV_API_KEY}"
        else:
            key, source = None, ""
        if not url and not stack:  # neither flag: SML_URL, else SML_STACK
            url = env.get(ENV_URL) or None
            stack = None if url else env.get(ENV_STACK) or None
        if stack:
            stack_url, stack_key = read_stack(stack, region or env.get(ENV_REGION))
            url = stack_url
            if key is None and stack_key is not None:
                key, source = stack_key, f"stack {stack}'s key"
        url = url or LOCAL_URL
        if key is None and is_local(url):
            key, source = LOCAL_API_KEY, "the local server's default key"
        return cls(url=url.rstrip("/"), api_key=key, key_source=source)


def read_stack(stack_name: str, region: str | None = None) -> tuple[str, str | None]:
    """URL and API key of a deployed stack, read from its CloudFormation outputs (needs the `aws` extra)."""
    try:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        raise SmlError(
            f"reading stack {stack_name!r} needs boto3: pip install 'sml-client[aws]', or pass --url and --api-key"
        ) from None
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
        raise SmlError(f"cannot read stack {stack_name!r}: {err}") from None
    if "ApiUrl" not in outputs:
        raise SmlError(f"stack {stack_name!r} has no ApiUrl output")
    return outputs["ApiUrl"], key


def error_message(status: int, body: bytes) -> str:
    """The API's message in an error answer (request validation errors name their fields)."""
    try:
        doc = json.loads(body)
    except ValueError:
        return body[:200].decode(errors="replace")
    if isinstance(doc, dict) and "message" in doc:
        return str(doc["message"])
    if isinstance(doc, dict) and isinstance(doc.get("detail"), list):
        details = [d for d in doc["detail"] if isinstance(d, dict)]
        fields = ["/".join(str(p) for p in d.get("loc", [])) + f" ({d.get('type')})" for d in details]
        return f"invalid request: {', '.join(fields)}"
    return json.dumps(doc)[:200]


def forbidden_message(message: str, config: Config) -> str:
    """A 403 names the key that is missing or refused and how to pass one (never the key itself)."""
    how = f"pass the API's key with --api-key KEY or {ENV_API_KEY}, or --stack NAME / {ENV_STACK} for a deployed stack"
    if config.api_key is None:
        return f"{message}: no API key was sent; {how}"
    return f"{message}: {config.key_source} (x-api-key ending {config.api_key[-4:]!r}) was refused; {how}"


class _Retryable(Exception):
    def __init__(self, response: httpx.Response) -> None:
        self.response = response


def _retryable(method: str) -> Callable[[BaseException], bool]:
    def check(err: BaseException) -> bool:
        if isinstance(err, _Retryable):
            return err.response.status_code == 429 or method in IDEMPOTENT
        if isinstance(err, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
            return True  # nothing reached the server
        return isinstance(err, httpx.TimeoutException | httpx.RemoteProtocolError) and method in IDEMPOTENT

    return check


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return min(float(response.headers.get("Retry-After", "")), MAX_RETRY_AFTER)
    except ValueError:
        return None


class Transport:
    """JSON in and out over one httpx connection pool, with the retry policy above."""

    def __init__(
        self,
        config: Config,
        *,
        timeout: float = 60.0,
        retries: int = 4,
        backoff: float = 0.5,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.config = config
        self.retries, self.backoff = retries, backoff
        self.sleep = sleep
        headers = {"x-api-key": config.api_key} if config.api_key else {}
        self.http = httpx.Client(timeout=timeout, headers=headers, transport=transport)
        self.upload_http = httpx.Client(timeout=max(timeout, 600.0), transport=transport)
        self.timeout = timeout

    def close(self) -> None:
        self.http.close()
        self.upload_http.close()

    def _wait(self, state: RetryCallState) -> float:
        err = state.outcome.exception() if state.outcome else None
        if isinstance(err, _Retryable) and (after := _retry_after(err.response)) is not None:
            return after
        return wait_random_exponential(multiplier=self.backoff, max=20.0)(state)

    def _attempts(self, method: str) -> Iterator[Any]:
        kwargs: dict[str, Any] = {"sleep": self.sleep} if self.sleep is not None else {}
        return iter(
            Retrying(
                retry=retry_if_exception(_retryable(method)),
                stop=stop_after_attempt(self.retries + 1),
                wait=self._wait,
                reraise=True,
                **kwargs,
            )
        )

    def send(
        self,
        method: str,
        url: str,
        *,
        content: bytes | Iterator[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        describe: str = "",
    ) -> httpx.Response:
        """One request with retries; the final answer, whatever its status (ApiError when there is none)."""
        try:
            for attempt in self._attempts(method):
                with attempt:
                    response = self.http.request(method, url, content=content, headers=headers, params=params)
                    if response.status_code in RETRY_STATUSES:
                        raise _Retryable(response)
        except _Retryable as err:
            response = err.response
        except httpx.TimeoutException:
            waited = f"no answer from {self.config.url} within {self.timeout:.0f}s"
            raise ApiError(f"{describe or method}: {waited}") from None
        except httpx.HTTPError as err:
            raise ApiError(f"cannot reach {self.config.url}: {err}") from None
        return response

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        """The JSON answer of ``method path``; ApiError with the API's message and status for an error answer."""
        content = None
        if body is not None:
            content = body if isinstance(body, bytes) else json.dumps(body).encode()
        params = {k: v for k, v in (query or {}).items() if v is not None}
        response = self.send(
            method,
            self.config.url + path,
            content=content,
            headers={"Content-Type": content_type},
            params=params or None,
            describe=f"{method} {path}",
        )
        if response.status_code >= 400:
            message = error_message(response.status_code, response.content)
            if response.status_code == 403:
                message = forbidden_message(message, self.config)
            raise ApiError(message, response.status_code, method=method, path=path)
        return response.json() if response.content else None

    def get_presigned(self, url: str) -> bytes:
        """GET a presigned URL (without the API key: the URL's signature is the authority); retried as any GET."""
        return self._presigned("GET", url, "download").content

    def put_presigned(self, url: str, data: bytes, progress: Callable[[int], None] | None = None) -> None:
        """PUT ``data`` to a presigned URL (without the API key: the URL's signature is the authority), reporting
        bytes sent; retried as any PUT, from the first byte."""

        def chunks() -> Iterator[bytes]:
            for start in range(0, len(data), 1 << 20):
                part = data[start : start + (1 << 20)]
                if progress:
                    progress(len(part))
                yield part

        self._presigned("PUT", url, "upload", content=chunks, headers={"Content-Length": str(len(data))})

    def _presigned(self, method: str, url: str, what: str, content=None, headers=None) -> httpx.Response:
        """One presigned request, retried by the method's policy; ``content`` makes the body anew per attempt."""
        try:
            for attempt in self._attempts(method):
                with attempt:
                    body = content() if content is not None else None
                    response = self.upload_http.request(method, url, content=body, headers=headers)
                    if response.status_code in RETRY_STATUSES:
                        raise _Retryable(response)
        except _Retryable as err:
            response = err.response
        except httpx.HTTPError as err:
            raise ApiError(f"{what} failed: {err}") from None
        if response.status_code >= 400:
            body = response.content[:200].decode(errors="replace")
            raise ApiError(f"{what} failed: {body}", response.status_code, method=method)
        return response
