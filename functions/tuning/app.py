"""Tuning API: start a tuning job (POST /tuning-jobs), list and follow them (GET /tuning-jobs,
GET /tuning-jobs/{job_id}) and stop one (POST /tuning-jobs/{job_id}/stop). The workflow's own tasks run in
TuningSteps."""

from typing import Annotated

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Query

from mlcore.infra import aws
from mlcore.infra.errors import InvalidInput
from mlcore.infra.http import accepted, json_body, register_error_handlers, resolve
from mlcore.infra.observability import API_REQUEST, logger, metrics, tracer
from mlcore.infra.settings import Settings
from mlcore.steps import tuning
from mlcore.steps.schemas import TuningRequest

app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=json_body)  # a body is parsed once
register_error_handlers(app)


@app.post("/tuning-jobs", responses={202: {"description": "The tuning job started"}})
def start_job(request: TuningRequest) -> Response[dict]:
    settings = Settings.from_env()
    started = tuning.submit(
        settings.store(), aws.stepfunctions(), settings.tuning_state_machine_arn, request, settings.region
    )
    metrics.add_metric(name="TuningJobsStarted", unit="Count", value=1)
    return accepted(started)


@app.get("/tuning-jobs")
def list_jobs(
    limit: Annotated[int, Query(ge=1, le=100, description="jobs per page")] = 50,
    next: Annotated[str | None, Query(max_length=200, description="the previous page's `next` token")] = None,
) -> dict:
    unknown = sorted(set(app.current_event.query_string_parameters or {}) - {"limit", "next"})
    if unknown:
        raise InvalidInput(f"unknown query parameter(s): {', '.join(map(repr, unknown))}; this route takes limit, next")
    settings = Settings.from_env()
    return tuning.list_jobs(settings.store(), aws.stepfunctions(), settings.tuning_state_machine_arn, limit, next)


@app.get("/tuning-jobs/<job_id>")
def describe_job(job_id: str) -> dict:
    settings = Settings.from_env()
    return tuning.describe(settings.store(), aws.stepfunctions(), settings.tuning_state_machine_arn, job_id)


@app.post("/tuning-jobs/<job_id>/stop", responses={202: {"description": "The job is stopping"}})
def stop_job(job_id: str) -> Response[dict]:
    settings = Settings.from_env()
    sfn, store = aws.stepfunctions(), settings.store()
    arn, training = settings.tuning_state_machine_arn, settings.training_state_machine_arn
    return accepted(tuning.stop(store, sfn, arn, training, job_id))


@logger.inject_lambda_context(correlation_id_path=API_REQUEST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context) -> dict:
    return resolve(app, event, context)
