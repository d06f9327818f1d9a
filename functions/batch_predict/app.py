"""BatchPredict: the steps of the batch inference workflow (plan, predict one chunk, finalize)."""

from aws_lambda_powertools.utilities.parser import event_parser
from pydantic import TypeAdapter

from mlcore.infra.observability import BATCH_JOB, logger, tracer
from mlcore.infra.settings import Settings
from mlcore.serving import batch, online
from mlcore.serving.batch import BatchStepEvent, Finalize, Plan, PredictChunk

cache = online.ModelCache()


@logger.inject_lambda_context(correlation_id_path=BATCH_JOB)
@tracer.capture_lambda_handler
@event_parser(model=TypeAdapter(BatchStepEvent))
def lambda_handler(event: Plan | PredictChunk | Finalize, context) -> dict:
    store = Settings.from_env().store()
    if isinstance(event, Plan):
        return batch.plan(store, event.job_id)
    if isinstance(event, PredictChunk):
        return batch.predict_chunk(store, cache, event.job_id, event.first_row, event.start, event.end)
    return batch.finalize(store, event.job_id)
