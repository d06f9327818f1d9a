"""GradientWorker: loss and gradient sums of one shard at the round's parameters (sync mode), or a
series of compare-and-swap updates from minibatches of its shard (async mode)."""

from typing import Annotated

from aws_lambda_powertools.utilities.parser import event_parser
from pydantic import Field, RootModel

from mlcore.infra.observability import logger, tracer
from mlcore.infra.settings import Settings
from mlcore.infra.storage import S3Store
from mlcore.steps import asynchronous, training
from mlcore.steps.schemas import AsyncWorkerTask, WorkerTask


class WorkerEvent(RootModel[Annotated[WorkerTask | AsyncWorkerTask, Field(union_mode="left_to_right")]]):
    pass


@logger.inject_lambda_context(correlation_id_path="run_id")
@tracer.capture_lambda_handler
@event_parser(model=WorkerEvent)
def lambda_handler(event: WorkerEvent, context) -> dict:
    store = S3Store(Settings.from_env().bucket)
    task = event.root
    if isinstance(task, AsyncWorkerTask):
        return asynchronous.run_async_steps(store, task).model_dump()
    return training.compute_gradient(store, task).model_dump()
