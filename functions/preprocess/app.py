"""Preprocess step of the training workflow: clean, transform, standardize, split and shard.

Returns the workflow's state from here on: the run id, the validated request
(defaults filled in) and the preprocessing result.
"""

from aws_lambda_powertools.utilities.parser import event_parser

from mlcore.infra.observability import TRAINING_RUN, logger, tracer
from mlcore.infra.settings import Settings
from mlcore.steps.preparation import dispatch
from mlcore.steps.schemas import PreprocessTask


@logger.inject_lambda_context(correlation_id_path=TRAINING_RUN)
@tracer.capture_lambda_handler
@event_parser(model=PreprocessTask)
def lambda_handler(event: PreprocessTask, context) -> dict:
    result = dispatch.preprocess(Settings.from_env().store(), event.request, event.run_id)
    logger.info("preprocessed", extra={"shards": len(result.shards), "train_rows": result.train_rows})
    return {"run_id": event.run_id, "request": event.request.model_dump(), "data": result.model_dump()}
