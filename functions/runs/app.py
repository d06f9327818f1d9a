"""Runs API: start a training workflow (POST /training-runs) and follow it (GET /training-runs/{run_id})."""

from functools import lru_cache

import boto3
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types

from mlcore import runs
from mlcore.api import register_error_handlers
from mlcore.config import Settings
from mlcore.observability import logger, metrics, tracer
from mlcore.schemas import TrainingRequest
from mlcore.storage import S3Store

app = APIGatewayRestResolver(enable_validation=True)
register_error_handlers(app)


@lru_cache(maxsize=1)
def _sfn():
    return boto3.client("stepfunctions")


@app.post("/training-runs")
def start_run(request: TrainingRequest) -> Response[dict]:
    settings = Settings.from_env()
    started = runs.start(S3Store(settings.bucket), _sfn(), settings.training_state_machine_arn, request)
    metrics.add_metric(name="TrainingRunsStarted", unit="Count", value=1)
    return Response(status_code=202, content_type=content_types.APPLICATION_JSON, body=started)


@app.post("/training-runs/<run_id>/resume")
def resume_run(run_id: str) -> Response[dict]:
    settings = Settings.from_env()
    resumed = runs.resume(S3Store(settings.bucket), _sfn(), settings.training_state_machine_arn, run_id)
    return Response(status_code=202, content_type=content_types.APPLICATION_JSON, body=resumed)


@app.get("/training-runs/<run_id>")
def describe_run(run_id: str) -> dict:
    settings = Settings.from_env()
    return runs.describe(S3Store(settings.bucket), _sfn(), settings.training_state_machine_arn, run_id)


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context) -> dict:
    return app.resolve(event, context)
