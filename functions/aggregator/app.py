"""Aggregator: initializes a run's parameters, then per round averages gradients and steps (sync) or
records the workers' progress (async)."""

from aws_lambda_powertools.utilities.parser import event_parser
from pydantic import TypeAdapter

from mlcore.infra.observability import TRAINING_RUN, logger, tracer
from mlcore.infra.settings import Settings
from mlcore.steps import asynchronous, training
from mlcore.steps.schemas import AggregateTask, AggregatorEvent, AsyncProgressTask, InitTask


@logger.inject_lambda_context(correlation_id_path=TRAINING_RUN)
@tracer.capture_lambda_handler
@event_parser(model=TypeAdapter(AggregatorEvent))
def lambda_handler(event: InitTask | AggregateTask | AsyncProgressTask, context) -> dict:
    settings = Settings.from_env()
    training.VALIDATION_CACHE.resize(settings.shard_cache_bytes)  # a share of this function's memory
    store = settings.store()
    if isinstance(event, InitTask):
        init = asynchronous.init_async_run if event.mode == "async" else training.init_run
        return init(store, event).model_dump()
    if isinstance(event, AsyncProgressTask):
        state = asynchronous.progress(store, event)
    else:
        state = training.aggregate(store, event)
    logger.info(
        "round aggregated",
        extra={"round": event.round, "loss": state.loss, "grad_norm": state.grad_norm, "done": state.done},
    )
    return state.model_dump()
