"""Powertools objects, created once per container, and the correlation id of each kind of event.

``tracer`` is created on first use (PEP 562): the X-Ray SDK behind it costs ~0.3 s of import, so a
latency-bound function (Predict) that never touches it does not pay for it at cold start.
"""

from functools import cache

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths

logger = Logger()
metrics = Metrics(namespace="ServerlessML")

# Where each handler finds its correlation id (JMESPath into the event).
API_REQUEST = correlation_paths.API_GATEWAY_REST
API_REQUEST_OR_S3_EVENT = f"{correlation_paths.API_GATEWAY_REST} || {correlation_paths.EVENT_BRIDGE}"
TRAINING_RUN = "run_id"  # every task of the training workflow carries its run id
BATCH_JOB = "job_id"  # every step of the batch inference workflow carries its job id


@cache
def _tracer():
    from aws_lambda_powertools import Tracer

    return Tracer()


def __getattr__(name: str):
    if name == "tracer":
        return _tracer()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
