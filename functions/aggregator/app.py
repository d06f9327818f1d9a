"""Aggregator: initializes a run's parameters, then per round averages gradients and steps."""

from typing import Annotated

from aws_lambda_powertools.utilities.parser import event_parser
from pydantic import Field, RootModel

from mlcore.infra.observability import logger, tracer
from mlcore.infra.settings import Settings
from mlcore.infra.storage import S3Store
from mlcore.steps import asynchronous, training
from mlcore.steps.schemas import AggregateTask, AsyncProgressTask, InitTask


class AggregatorEvent(
    RootModel[Annotated[InitTask | AggregateTask | AsyncProgressTask, Field(union_mode="left_to_right")]]
):
    pass


@logger.inject_lambda_context(correlation_id_path="run_id")
@tracer.capture_lambda_handler
@event_parser(model=AggregatorEvent)
def lambda_handler(event: AggregatorEvent, context) -> dict:
    store = S3Store(Settings.from_env().bucket)
    task = event.root
    if isinstance(task, InitTask):
        init = asynchronous.init_async_run if task.mode == "async" else training.init_run
        return init(store, task).model_dump()
    if isinstance(task, AsyncProgressTask):
        state = asynchronous.progress(store, task)
    else:
        state = training.aggregate(store, task)
    logger.info(
        "round aggregated",
        extra={"round": task.round, "loss": state.loss, "grad_norm": state.grad_norm, "done": state.done},
    )
    return state.model_dump()
