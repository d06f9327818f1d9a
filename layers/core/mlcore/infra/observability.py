"""Powertools objects, created once per container.

``tracer`` is created on first use (PEP 562): the X-Ray SDK behind it costs ~0.3 s of import, so a
latency-bound function (Predict) that never touches it does not pay for it at cold start.
"""

from functools import cache

from aws_lambda_powertools import Logger, Metrics

logger = Logger()
metrics = Metrics(namespace="ServerlessML")


@cache
def _tracer():
    from aws_lambda_powertools import Tracer

    return Tracer()


def __getattr__(name: str):
    if name == "tracer":
        return _tracer()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
