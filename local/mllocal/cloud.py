"""The template's resources on moto: S3 bucket, state machines, Lambda routed to the real handlers."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import threading
import time
import uuid
import warnings
import zipfile
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import boto3
from moto import mock_aws
from moto.core.config import DefaultConfig

from . import apigw, lambdas, notifications
from .permissions import enforce_s3_permissions
from .s3atomic import atomic_conditional_writes
from .sfn_tasks import start_execution_integration
from .template import REGION, FunctionSpec, LocalStack, local_stack

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions.type_defs import DescribeExecutionOutputTypeDef

MOTO_CONFIG: DefaultConfig = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
INTERPRETER_LOGGER = "moto.stepfunctions.parser.asl.component.eval_component"


class InterpreterNoise(logging.Filter):
    """moto's Step Functions interpreter logs at ERROR, with the whole state (often kilobytes), every error a state
    machine meets by design: a path the payload does not have (``NoSuchJsonPathError``, e.g. an optional field a
    Choice tests), a task that failed and is retried or caught. What a user needs of those is in the execution's
    status and history, which the API reports; so these lines are dropped at their source, that one logger, while a
    LocalCloud runs. Setting the logger to DEBUG keeps them, for debugging the interpreter."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR or logging.getLogger(INTERPRETER_LOGGER).isEnabledFor(logging.DEBUG)


class LocalCloud:
    """``with LocalCloud() as cloud:`` — everything in the template, in process, no AWS account.

    An object a function writes emits S3's "Object Created" event, and the functions whose EventBridge rules
    match it run asynchronously, each in a thread, as on AWS; ``settle()`` waits for them. Objects written
    from outside (a test's setup) are delivered by ``object_created``.
    """

    def __init__(self, stack: LocalStack | None = None, hook: lambdas.Hook | None = None):
        self.stack = stack or local_stack()
        self.hook = hook
        self._mock = mock_aws(config=MOTO_CONFIG)
        self._routes: AbstractContextManager[dict[str, int]] | None = None
        self.invocations: dict[str, int] = {}
        self.state_machine_arns: dict[str, str] = {}
        self._deliveries: list[threading.Thread] = []
        self._answers: list[tuple[Any, str | None]] = []
        self._deliveries_lock = threading.Lock()
        # One API request at a time per function, as one Lambda execution environment handles one event at a time:
        # a handler's Powertools resolver keeps the event it is answering in module state (``app.current_event``),
        # so two threads of the local server in one handler could answer each other's requests.
        self._api_locks = {logical_id: threading.Lock() for logical_id in self.stack.functions}

    def __enter__(self) -> LocalCloud:
        import os

        os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
        for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            os.environ.setdefault(var, "testing")
        os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
        os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
        warnings.filterwarnings("ignore", message="No application metrics to publish")
        self._noise = InterpreterNoise()
        logging.getLogger(INTERPRETER_LOGGER).addFilter(self._noise)
        self._mock.start()
        self._atomic = atomic_conditional_writes()
        self._atomic.__enter__()
        self._permissions = enforce_s3_permissions()
        self._permissions.__enter__()
        self._created = notifications.objects_created(self._on_created)
        self._created.__enter__()
        self._sfn_tasks = start_execution_integration()
        self._sfn_tasks.__enter__()
        from mlcore.infra.storage import s3_client

        s3_client.cache_clear()
        lambdas.reset_containers()  # a new environment starts with cold functions
        self._routes = lambdas.route_lambdas(self.stack.functions, self.hook)
        self.invocations = self._routes.__enter__()
        self.s3 = boto3.client("s3", region_name=REGION)
        self.sfn = boto3.client("stepfunctions", region_name=REGION)
        self.s3.create_bucket(Bucket=self.stack.bucket)
        if self.stack.bucket_versioning:
            self.s3.put_bucket_versioning(Bucket=self.stack.bucket, VersioningConfiguration={"Status": "Enabled"})
        role = boto3.client("iam", region_name=REGION).create_role(
            RoleName=f"{self.stack.stack_name}-states",
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": "sts:AssumeRole",
                            "Principal": {"Service": "states.amazonaws.com"},
                        }
                    ],
                }
            ),
        )
        self._create_functions(role["Role"]["Arn"])
        for logical, sm in self.stack.state_machines.items():
            self.state_machine_arns[logical] = self.sfn.create_state_machine(
                name=sm.name, definition=sm.definition, roleArn=role["Role"]["Arn"], type=sm.type
            )["stateMachineArn"]
        return self

    def _create_functions(self, role_arn: str) -> None:
        """Register each function with moto's Lambda (configuration only: invocations are routed to the
        real handlers), so that Lambda API calls such as GetFunctionConfiguration answer as on AWS."""
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("README.txt", "invocations are routed to the handlers in functions/ by mllocal.lambdas")
        lam = boto3.client("lambda", region_name=REGION)
        for spec in self.stack.functions.values():
            lam.create_function(
                FunctionName=spec.name,
                Runtime="python3.12",
                Role=role_arn,
                Handler=spec.handler,
                Code={"ZipFile": buf.getvalue()},
                MemorySize=spec.memory_mb,
                Timeout=spec.timeout,
                Environment={"Variables": spec.environment},
            )

    def __exit__(self, *exc) -> None:
        from mlcore.infra.storage import s3_client

        with contextlib.suppress(TimeoutError):  # a delivery stuck past this is left to its daemon thread
            self.settle(timeout=120.0)
        if self._routes is not None:
            self._routes.__exit__(*exc)
        self._created.__exit__(*exc)
        self._atomic.__exit__(*exc)
        self._permissions.__exit__(*exc)
        self._sfn_tasks.__exit__(*exc)
        self._mock.stop()
        logging.getLogger(INTERPRETER_LOGGER).removeFilter(self._noise)
        s3_client.cache_clear()

    # -- workflows ---------------------------------------------------------
    def start(self, state_machine: str, payload: dict, name: str | None = None) -> str:
        return self.sfn.start_execution(
            stateMachineArn=self.state_machine_arns[state_machine],
            name=name or f"run-{uuid.uuid4().hex[:12]}",
            input=json.dumps(payload),
        )["executionArn"]

    def wait(self, execution_arn: str, timeout: float = 900.0, poll: float = 0.05) -> DescribeExecutionOutputTypeDef:
        deadline = time.monotonic() + timeout
        while True:
            desc = self.sfn.describe_execution(executionArn=execution_arn)
            if desc["status"] != "RUNNING":
                return desc
            if time.monotonic() > deadline:
                raise TimeoutError(f"execution {execution_arn} still running after {timeout}s")
            time.sleep(poll)

    def run(
        self, state_machine: str, payload: dict, name: str | None = None, timeout: float = 900.0
    ) -> DescribeExecutionOutputTypeDef:
        return self.wait(self.start(state_machine, payload, name), timeout)

    def object_created(self, key: str, body: bytes) -> list[tuple[Any, str | None]]:
        """Put an object and deliver S3's "Object Created" EventBridge event to the functions whose
        rules in the template match it (what EventBridge does on AWS). Returns their answers."""
        self.s3.put_object(Bucket=self.stack.bucket, Key=key, Body=body)
        answers = []
        for spec in self._rule_targets(key):
            self.invocations[spec.logical_id] += 1
            answers.append(lambdas.invoke(spec, self._created_event(key, len(body))))
        return answers

    def _rule_targets(self, key: str) -> list[FunctionSpec]:
        return [
            spec
            for spec in self.stack.functions.values()
            if any(key.startswith(prefix) for prefix in spec.s3_created_prefixes)
        ]

    def _created_event(self, key: str, size: int) -> dict[str, Any]:
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Object Created",
            "source": "aws.s3",
            "account": "123456789012",
            "region": REGION,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "resources": [f"arn:aws:s3:::{self.stack.bucket}"],
            "detail": {
                "version": "0",
                "bucket": {"name": self.stack.bucket},
                "object": {"key": key, "size": size},
                "reason": "PutObject",
            },
        }

    def _on_created(self, bucket: str, key: str, size: int) -> None:
        """A function wrote ``key``: invoke the rules' targets asynchronously (Lambda's ``Event`` invocation)."""
        if bucket != self.stack.bucket:
            return
        for spec in self._rule_targets(key):
            event = self._created_event(key, size)

            def deliver(spec: FunctionSpec = spec, event: dict[str, Any] = event) -> None:
                answer = lambdas.invoke(spec, event)
                with self._deliveries_lock:
                    self._answers.append(answer)

            thread = threading.Thread(target=deliver, name=f"event-{spec.logical_id}-{key}", daemon=True)
            with self._deliveries_lock:
                self.invocations[spec.logical_id] += 1
                self._deliveries.append(thread)
            thread.start()

    def settle(self, timeout: float = 900.0) -> list[tuple[Any, str | None]]:
        """Wait for the asynchronous deliveries (and those they cause) to finish: their answers since the last
        call, in order of completion. TimeoutError if some are still running after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            with self._deliveries_lock:
                running = [t for t in self._deliveries if t.is_alive()]
                self._deliveries = running
                if not running:
                    answers, self._answers = self._answers, []
                    return answers
            for thread in running:
                thread.join(max(0.0, deadline - time.monotonic()))
            if time.monotonic() > deadline and any(t.is_alive() for t in running):
                raise TimeoutError(f"{len(running)} asynchronous invocation(s) still running after {timeout}s")

    # -- functions and API ---------------------------------------------------
    def invoke(self, logical_id: str, event: Any) -> tuple[Any, str | None]:
        return lambdas.invoke(self.stack.functions[logical_id], event)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
    ) -> dict:
        """Send an HTTP request through the template's API routes: returns the proxy response."""
        found = apigw.match_route(self.stack.functions, method, path)
        if found is None:  # what API Gateway answers for a route it does not have
            return {"statusCode": 403, "body": json.dumps({"message": "Missing Authentication Token"})}
        spec, resource, params = found
        event = apigw.proxy_event(method, path, resource, params, body=body, headers=headers, query=query)
        self.invocations[spec.logical_id] += 1
        with self._api_locks[spec.logical_id]:
            payload, error = lambdas.invoke(spec, event)
        if error:
            return {"statusCode": 502, "body": json.dumps({"message": "Internal server error"}), "error": payload}
        return payload
