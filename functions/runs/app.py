"""Runs API: start a training workflow (POST /training-runs) and follow it (GET /training-runs/{run_id})."""

import os
from functools import lru_cache
from typing import Annotated

import boto3
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Query

from mlcore.infra.http import register_error_handlers, resolve
from mlcore.infra.observability import logger, metrics, tracer
from mlcore.infra.settings import Settings
from mlcore.infra.storage import S3Store
from mlcore.steps import runs
from mlcore.steps.schemas import TrainingRequest

app = APIGatewayRestResolver(enable_validation=True)
register_error_handlers(app)


@lru_cache(maxsize=1)
def _sfn():
    return boto3.client("stepfunctions")


@lru_cache(maxsize=1)
def _lambda():
    return boto3.client("lambda")


@app.post("/training-runs", responses={202: {"description": "The training run started"}})
def start_run(request: TrainingRequest) -> Response[dict]:
    settings = Settings.from_env()
    started = runs.start(S3Store(settings.bucket), _sfn(), settings.training_state_machine_arn, request)
    metrics.add_metric(name="TrainingRunsStarted", unit="Count", value=1)
    return Response(status_code=202, content_type=content_types.APPLICATION_JSON, body=started)


@app.get("/training-runs")
def list_runs() -> dict:
    return {"runs": runs.list_runs(_sfn(), Settings.from_env().training_state_machine_arn)}


@app.post("/training-runs/<run_id>/resume", responses={202: {"description": "The run continues"}})
def resume_run(run_id: str) -> Response[dict]:
    settings = Settings.from_env()
    resumed = runs.resume(S3Store(settings.bucket), _sfn(), settings.training_state_machine_arn, run_id)
    return Response(status_code=202, content_type=content_types.APPLICATION_JSON, body=resumed)


@app.get("/training-runs/<run_id>")
def describe_run(
    run_id: str, curve: Annotated[bool, Query(description="include every round's summary")] = False
) -> dict:
    settings = Settings.from_env()
    return runs.describe(S3Store(settings.bucket), _sfn(), settings.training_state_machine_arn, run_id, curve)


@app.get("/training-runs/<run_id>/cost")
def run_cost(
    run_id: str,
    region: Annotated[str | None, Query(description="price table region (default: this stack's)")] = None,
    rows: Annotated[int | None, Query(ge=1, description="what-if: training rows")] = None,
    shards: Annotated[int | None, Query(ge=1, le=10_000, description="what-if: shards")] = None,
    rounds: Annotated[int | None, Query(ge=1, le=100_000, description="what-if: rounds")] = None,
) -> dict:
    settings = Settings.from_env()
    return runs.run_cost(
        _sfn(),
        _lambda(),
        settings.training_state_machine_arn,
        run_id,
        region or os.environ.get("AWS_REGION", "us-east-1"),
        rows,
        shards,
        rounds,
    )


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context) -> dict:
    return resolve(app, event, context)
