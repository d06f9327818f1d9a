"""Runs API: start a training workflow (POST /training-runs) and follow it (GET /training-runs/{run_id})."""

from typing import Annotated

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Query

from mlcore.infra import aws
from mlcore.infra.errors import InvalidInput
from mlcore.infra.http import accepted, json_body, register_error_handlers, resolve
from mlcore.infra.observability import API_REQUEST, logger, metrics, tracer
from mlcore.infra.settings import Settings
from mlcore.steps import runs
from mlcore.steps.schemas import TrainingRequest

app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=json_body)  # a body is parsed once
register_error_handlers(app)


@app.post("/training-runs", responses={202: {"description": "The training run started"}})
def start_run(request: TrainingRequest) -> Response[dict]:
    settings = Settings.from_env()
    started = runs.start(
        settings.store(),
        aws.stepfunctions(),
        settings.training_state_machine_arn,
        request,
        max_running=settings.max_concurrent_training_runs,
        max_cost_usd=settings.max_run_cost_usd,
        region=settings.region,
    )
    metrics.add_metric(name="TrainingRunsStarted", unit="Count", value=1)
    return accepted(started)


@app.get("/training-runs")
def list_runs(
    limit: Annotated[int, Query(ge=1, le=100, description="runs per page")] = 50,
    next: Annotated[str | None, Query(max_length=200, description="the previous page's `next` token")] = None,
) -> dict:
    unknown = sorted(set(app.current_event.query_string_parameters or {}) - {"limit", "next"})
    if unknown:  # a misspelt parameter (`?limt=5`) would otherwise be ignored silently
        raise InvalidInput(f"unknown query parameter(s): {', '.join(map(repr, unknown))}; this route takes limit, next")
    settings = Settings.from_env()
    return runs.list_runs(aws.stepfunctions(), settings.training_state_machine_arn, limit, next, settings.store())


@app.post("/training-runs/<run_id>/stop", responses={202: {"description": "The run is stopping"}})
def stop_run(run_id: str) -> Response[dict]:
    return accepted(runs.stop(aws.stepfunctions(), Settings.from_env().training_state_machine_arn, run_id))


@app.post("/training-runs/<run_id>/resume", responses={202: {"description": "The run continues"}})
def resume_run(run_id: str) -> Response[dict]:
    settings = Settings.from_env()
    resumed = runs.resume(settings.store(), aws.stepfunctions(), settings.training_state_machine_arn, run_id)
    return accepted(resumed)


@app.get("/training-runs/<run_id>")
def describe_run(
    run_id: str, curve: Annotated[bool, Query(description="include every round's summary")] = False
) -> dict:
    settings = Settings.from_env()
    return runs.describe(settings.store(), aws.stepfunctions(), settings.training_state_machine_arn, run_id, curve)


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
        settings.store(),
        aws.stepfunctions(),
        aws.lambda_service(),
        settings.training_state_machine_arn,
        run_id,
        region or settings.region,
        rows,
        shards,
        rounds,
    )


@logger.inject_lambda_context(correlation_id_path=API_REQUEST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context) -> dict:
    return resolve(app, event, context)
