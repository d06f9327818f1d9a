"""Preprocess step of the training workflow: clean, transform, standardize, split and shard.

Returns the workflow's state from here on: the run id, the validated request
(defaults filled in) and the preprocessing result.
"""

from aws_lambda_powertools.utilities.parser import event_parser
from pydantic import TypeAdapter

from mlcore.infra.observability import TRAINING_RUN, logger, tracer
from mlcore.infra.settings import Settings
from mlcore.steps.preparation import dispatch
from mlcore.steps.schemas import PreparationTask, PreprocessEvent, PreprocessTask


@logger.inject_lambda_context(correlation_id_path=TRAINING_RUN)
@tracer.capture_lambda_handler
@event_parser(model=TypeAdapter(PreprocessEvent))
def lambda_handler(event: PreprocessTask | PreparationTask, context) -> dict:
    out = dispatch.handle(Settings.from_env().store(), event)
    if "data" in out:
        logger.info(
            "preprocessed", extra={"shards": len(out["data"]["shards"]), "train_rows": out["data"]["train_rows"]}
        )
    else:
        logger.info("preparation step", extra={"action": event.action})
    return out
