"""Evaluate/Register: test metrics of the trained parameters, then a new registered model version."""

from aws_lambda_powertools.utilities.parser import event_parser

from mlcore.infra.observability import logger, tracer
from mlcore.infra.settings import Settings
from mlcore.infra.storage import S3Store
from mlcore.steps import evaluation
from mlcore.steps.schemas import EvaluateTask


@logger.inject_lambda_context(correlation_id_path="run_id")
@tracer.capture_lambda_handler
@event_parser(model=EvaluateTask)
def lambda_handler(event: EvaluateTask, context) -> dict:
    registered = evaluation.evaluate_and_register(S3Store(Settings.from_env().bucket), event)
    logger.info("model registered", extra={"model": registered.model_name, "version": registered.version})
    return registered.model_dump()
