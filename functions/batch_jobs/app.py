"""Batch jobs API: start batch inference over a CSV in S3 (POST /batch-jobs) and follow it (GET /batch-jobs/{id})."""

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

from mlcore.infra import aws
from mlcore.infra.http import accepted, json_body, register_error_handlers, resolve
from mlcore.infra.observability import API_REQUEST, logger, metrics, tracer
from mlcore.infra.settings import Settings
from mlcore.serving import batch
from mlcore.serving.batch import BatchJobRequest

app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=json_body)  # a body is parsed once
register_error_handlers(app)


@app.post("/batch-jobs", responses={202: {"description": "The batch job started"}})
def start_job(request: BatchJobRequest) -> Response[dict]:
    settings = Settings.from_env()
    started = batch.start(settings.store(), aws.stepfunctions(), settings.batch_state_machine_arn, request)
    metrics.add_metric(name="BatchJobsStarted", unit="Count", value=1)
    return accepted(started)


@app.get("/batch-jobs/<job_id>")
def describe_job(job_id: str) -> dict:
    settings = Settings.from_env()
    return batch.describe(settings.store(), aws.stepfunctions(), settings.batch_state_machine_arn, job_id)


@app.get("/batch-jobs/<job_id>/output")
def job_output(job_id: str) -> dict:
    settings = Settings.from_env()
    return batch.output(settings.store(), aws.stepfunctions(), settings.batch_state_machine_arn, job_id)


@logger.inject_lambda_context(correlation_id_path=API_REQUEST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context) -> dict:
    return resolve(app, event, context)
