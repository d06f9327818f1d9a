"""Export API: a registered model version as one ONNX graph, its saved preprocessing included, downloaded by a
presigned URL. The graph is built (with ``onnx``, which only this function installs) on the first request and
stored next to the version; later requests reuse it."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.openapi.params import Path

from mlcore.infra import layout
from mlcore.infra.http import json_body, register_error_handlers, resolve
from mlcore.infra.observability import API_REQUEST, logger, metrics, tracer
from mlcore.infra.settings import Settings
from mlcore.serving import onnx_export

app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=json_body)  # a body is parsed once
register_error_handlers(app)

ModelName = Annotated[str, Path(pattern=layout.NAME.pattern)]


@app.get(
    "/models/<name>/versions/<version>/onnx",
    responses={422: {"description": "The version uses a transform ONNX cannot express (the message names it)"}},
)
def export_onnx(name: ModelName, version: Annotated[int, Path(ge=1)]) -> dict[str, Any]:
    """A presigned GET URL of the version's ONNX graph (``download_url``, an hour), its key, size, opset, inputs
    and outputs (and a classifier's classes)."""
    answer = onnx_export.export(Settings.from_env().store(), name, version)
    if answer["built"]:
        metrics.add_metric(name="OnnxExportsBuilt", unit="Count", value=1)
    return answer


@logger.inject_lambda_context(correlation_id_path=API_REQUEST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context) -> dict:
    return resolve(app, event, context)
