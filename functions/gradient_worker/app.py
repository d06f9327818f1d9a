"""GradientWorker: loss and gradient sums of one shard at the round's parameters."""

from aws_lambda_powertools.utilities.parser import event_parser

from mlcore import training
from mlcore.config import Settings
from mlcore.observability import logger, tracer
from mlcore.schemas import WorkerTask
from mlcore.storage import S3Store


@logger.inject_lambda_context(correlation_id_path="run_id")
@tracer.capture_lambda_handler
@event_parser(model=WorkerTask)
def lambda_handler(event: WorkerTask, context) -> dict:
    return training.compute_gradient(S3Store(Settings.from_env().bucket), event).model_dump()
