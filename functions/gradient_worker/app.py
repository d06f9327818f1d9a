"""GradientWorker: loss and gradient sums of one shard at the round's parameters (sync mode), or a
series of compare-and-swap updates from minibatches of its shard (async mode)."""

from aws_lambda_powertools.utilities.parser import event_parser
from pydantic import TypeAdapter

from mlcore.infra.observability import TRAINING_RUN, logger, tracer
from mlcore.infra.settings import Settings
from mlcore.steps import asynchronous, training
from mlcore.steps.schemas import AsyncWorkerTask, GradientWorkerEvent, WorkerTask


@logger.inject_lambda_context(correlation_id_path=TRAINING_RUN)
@tracer.capture_lambda_handler
@event_parser(model=TypeAdapter(GradientWorkerEvent))
def lambda_handler(event: WorkerTask | AsyncWorkerTask, context) -> dict:
    settings = Settings.from_env()
    training.SHARD_CACHE.resize(settings.shard_cache_bytes)  # a share of this function's memory
    store = settings.store()
    if isinstance(event, AsyncWorkerTask):
        return asynchronous.run_async_steps(store, event).model_dump()
    return training.compute_gradient(store, event).model_dump()
