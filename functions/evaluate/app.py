"""Evaluate/Register: test metrics of the trained parameters, then a new registered model version."""

from aws_lambda_powertools.utilities.parser import event_parser

from mlcore.infra.observability import TRAINING_RUN, logger, tracer
from mlcore.infra.settings import Settings
from mlcore.serving import registry
from mlcore.steps import evaluation
from mlcore.steps.schemas import EvaluateTask


@logger.inject_lambda_context(correlation_id_path=TRAINING_RUN)
@tracer.capture_lambda_handler
@event_parser(model=EvaluateTask)
def lambda_handler(event: EvaluateTask, context) -> dict:
    store = Settings.from_env().store()
    if event.request.trial:  # a tuning trial: its validation loss and metric, no model version
        return evaluation.validate(store, event)
    artifact = registry.register(store, event.run_id, evaluation.evaluate(store, event))
    logger.info("model registered", extra={"model": artifact.name, "version": artifact.version})
    return registry.registered(artifact, rounds=event.train.round).model_dump()
