"""The AWS service clients the handlers use besides S3, one per container, and execution ARNs.

boto3 is imported on first use, so a function that never calls Step Functions or Lambda (Predict) never loads it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from botocore.exceptions import ClientError

from mlcore.infra.errors import NotFoundError


@cache
def stepfunctions() -> Any:
    import boto3

    return boto3.client("stepfunctions")


@cache
def lambda_service() -> Any:
    import boto3

    return boto3.client("lambda")


def execution_arn(state_machine_arn: str, name: str) -> str:
    """The ARN of the execution ``name`` of a state machine (the ARNs differ in the resource type only)."""
    return state_machine_arn.replace(":stateMachine:", ":execution:", 1) + f":{name}"


@contextmanager
def missing_execution_is(message: str) -> Iterator[None]:
    """Step Functions' ``ExecutionDoesNotExist`` inside the block becomes ``NotFoundError(message)`` (a 404)."""
    try:
        yield
    except ClientError as err:
        if err.response["Error"]["Code"] == "ExecutionDoesNotExist":
            raise NotFoundError(message) from None
        raise
