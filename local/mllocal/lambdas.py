"""Route moto's docker-less Lambda invocations to the real handlers, in process.

moto's ``LambdaSimpleBackend.invoke`` only echoes its input. ``route_lambdas``
replaces it (pinned to moto 5.x, where ``invoke(function_name, qualifier,
body, headers, response_headers)`` is the whole contract) with a call into the
handler the template names, and reports a raised exception the way Lambda
does: an ``X-Amz-Function-Error: Unhandled`` header and an ``errorType`` /
``errorMessage`` payload, so Step Functions' Retry and Catch behave as on AWS.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sys
import threading
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Final, Literal
from unittest import mock

from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.core.exceptions import JsonRESTError

from . import notifications, permissions
from .template import FunctionSpec

_import_lock = threading.Lock()


TIMEOUT: Final = "timeout"  # what a hook returns to make an invocation time out after its handler ran

# ``hook(spec, event)``, run before each invocation (see ``route_lambdas``): None or a number of
# deliveries, or TIMEOUT; it may raise ``LambdaServiceError``. ``faults.FaultInjector`` is one.
type Hook = Callable[[FunctionSpec, Any], int | Literal["timeout"] | None]


class LambdaServiceError(JsonRESTError):
    """A transient fault of the Lambda service itself (HTTP 500), seen by Step Functions as
    ``Lambda.ServiceException``. A fault-injection hook raises it to fail an invocation
    before the handler runs."""

    code = 500

    def __init__(self, message: str = "injected transient Lambda service fault"):
        super().__init__("ServiceException", message)


@dataclass
class LambdaContext:
    """The parts of the Lambda context object that Powertools and handlers use."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    timeout_s: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""

    def get_remaining_time_in_millis(self) -> int:
        return self.timeout_s * 1000


def reset_containers() -> None:
    """Forget every loaded handler module: the next invocation is a cold start (new module state)."""
    with _import_lock:
        for name in [m for m in sys.modules if m.startswith("_lambda_")]:
            del sys.modules[name]


def load_handler(spec: FunctionSpec) -> Callable[[dict, Any], Any]:
    """Import ``<CodeUri>/<module>.py`` under a unique module name and return its handler."""
    module_name, func_name = spec.handler.rsplit(".", 1)
    unique = f"_lambda_{spec.logical_id}_{module_name}"
    with _import_lock:
        module: ModuleType | None = sys.modules.get(unique)
        if module is None:
            file = spec.code_uri / f"{module_name.replace('.', '/')}.py"
            loader_spec = importlib.util.spec_from_file_location(unique, file)
            if loader_spec is None or loader_spec.loader is None:
                raise ImportError(f"cannot load the handler module {file}", name=unique, path=str(file))
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[unique] = module
            loader_spec.loader.exec_module(module)
    return getattr(module, func_name)


def invoke(spec: FunctionSpec, event: Any) -> tuple[Any, str | None]:
    """Call the handler like Lambda would: returns (payload, function_error)."""
    context = LambdaContext(
        function_name=spec.name,
        memory_limit_in_mb=spec.memory_mb,
        invoked_function_arn=spec.arn,
        timeout_s=spec.timeout,
    )
    try:
        with permissions.acting_as(spec), notifications.invocation(spec.logical_id):
            return load_handler(spec)(event, context), None
    except Exception as err:
        return {
            "errorType": type(err).__name__,
            "errorMessage": str(err),
            "stackTrace": traceback.format_exception(err)[-5:],
        }, "Unhandled"


@contextlib.contextmanager
def route_lambdas(functions: dict[str, FunctionSpec], hook: Hook | None = None) -> Iterator[dict[str, int]]:
    """Patch moto so invoking any of ``functions`` (by name or ARN) runs its real handler.

    Yields a dict of invocation counts per logical id. ``hook(spec, event)``
    runs before each invocation; it may raise ``LambdaServiceError`` to inject a
    transient service fault, return a number of deliveries > 1 to run the
    handler that many times (at-least-once delivery; the last answer is returned),
    or return ``TIMEOUT`` to run it and then report Lambda's timeout error.
    """
    by_name = {s.name: s for s in functions.values()} | {s.arn: s for s in functions.values()}
    counts: dict[str, int] = {s.logical_id: 0 for s in functions.values()}
    lock = threading.Lock()

    def routed(
        self: LambdaSimpleBackend,
        function_name: str,
        qualifier: str | None,
        body: str | bytes | None,
        headers: Any,
        response_headers: dict[str, str],
    ) -> bytes:
        spec = by_name.get(function_name) or by_name.get(function_name.split(":")[-1])
        if spec is None:
            raise KeyError(f"no handler for Lambda function {function_name!r}")
        event = json.loads(body) if body else {}
        with lock:
            counts[spec.logical_id] += 1
        decision = hook(spec, event) if hook is not None else None
        for _ in range(1 if decision in (None, TIMEOUT) else int(decision)):
            payload, error = invoke(spec, event)
        if decision == TIMEOUT:  # the handler ran (its side effects stay) but its answer is lost
            payload, error = (
                {"errorType": "Sandbox.Timedout", "errorMessage": f"Task timed out after {spec.timeout:.2f} seconds"},
                "Unhandled",
            )
        if error:
            response_headers["x-amz-function-error"] = error
        return json.dumps(payload).encode()

    env = {k: v for spec in functions.values() for k, v in spec.environment.items()}
    with mock.patch.object(LambdaSimpleBackend, "invoke", routed), mock.patch.dict(os.environ, env):
        yield counts
