"""Predict: API Gateway REST proxy handler serving the production model version (or a pinned version/alias)."""

from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from pydantic import BaseModel, Field

from mlcore.infra import layout
from mlcore.infra.http import json_body, register_error_handlers, resolve
from mlcore.infra.observability import API_REQUEST, logger, metrics
from mlcore.infra.settings import Settings
from mlcore.serving import online

app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=json_body)  # a body is parsed once
register_error_handlers(app)
cache = online.ModelCache()


class PredictRequest(BaseModel):
    instances: list[dict[str, Any] | list[Any]] = Field(
        min_length=1,
        max_length=online.MAX_INSTANCES,
        description="objects keyed by feature name, or lists of values in schema order",
    )

    def __repr__(self) -> str:
        # Powertools formats the route's arguments into a debug message on every request, logged or not: a count,
        # not up to 1 MiB of the caller's data (building that took milliseconds per request).
        return f"PredictRequest(<{len(self.instances)} instances>)"


class PredictResponse(BaseModel):
    model: str
    version: int
    target: str
    predictions: list[float] | list[str] = Field(description="values, or class labels for classifiers")
    classes: list[str] | None = Field(None, description="class labels, in the order of each probability row")
    probabilities: list[list[float]] | None = Field(None, description="class probabilities (classifiers only)")
    warnings: list[str] | None = Field(None, description="what was ignored: columns that are not features")


@app.post("/models/<name>/predict")
def predict(
    name: Annotated[str, Path(pattern=layout.NAME.pattern)],
    body: PredictRequest,
    version: Annotated[int | None, Query(ge=1, description="serve this version instead of an alias")] = None,
    alias: Annotated[
        Literal["production", "latest"], Query(description="alias to serve when no version is given")
    ] = online.DEFAULT_ALIAS,
    strict: Annotated[bool, Query(description="refuse instances with columns that are not features")] = False,
) -> PredictResponse:
    store = Settings.from_env().store()
    artifact = cache.get_version(store, name, version) if version else cache.get(store, name, alias)
    extra = online.extra_columns(artifact, body.instances, strict=strict)
    result = online.predict(artifact, body.instances)
    if extra:
        result["warnings"] = [online.ignored_warning(extra)]
    metrics.add_metric(name="Predictions", unit="Count", value=len(body.instances))
    return PredictResponse(**result)


# No Powertools Tracer here: its X-Ray SDK would add ~0.3 s to every cold start of the latency-bound
# function; Lambda's active tracing still records each invocation's segment.
@logger.inject_lambda_context(correlation_id_path=API_REQUEST)
@metrics.log_metrics
def lambda_handler(event: dict, context) -> dict:
    return resolve(app, event, context, max_bytes=online.MAX_BODY_BYTES)
