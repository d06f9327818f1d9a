"""Batch jobs API: start batch inference over a CSV in S3 (POST /batch-jobs) and follow it (GET /batch-jobs/{id})."""

import os
from functools import lru_cache

import boto3
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types

from mlcore.infra.http import register_error_handlers, resolve
from mlcore.infra.observability import logger, metrics, tracer
from mlcore.infra.settings import Settings
from mlcore.infra.storage import S3Store
from mlcore.serving import batch
from mlcore.serving.batch import BatchJobRequest

app = APIGatewayRestResolver(enable_validation=True)
register_error_handlers(app)


@lru_cache(maxsize=1)
def _sfn():
    return boto3.client("stepfunctions")


def _arn() -> str:
    return os.environ["BATCH_STATE_MACHINE_ARN"]


@app.post("/batch-jobs", responses={202: {"description": "The batch job started"}})
def start_job(request: BatchJobRequest) -> Response[dict]:
    started = batch.start(S3Store(Settings.from_env().bucket), _sfn(), _arn(), request)
    metrics.add_metric(name="BatchJobsStarted", unit="Count", value=1)
    return Response(status_code=202, content_type=content_types.APPLICATION_JSON, body=started)


@app.get("/batch-jobs/<job_id>")
def describe_job(job_id: str) -> dict:
    return batch.describe(S3Store(Settings.from_env().bucket), _sfn(), _arn(), job_id)


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context) -> dict:
    return resolve(app, event, context)
