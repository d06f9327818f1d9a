"""Ingest: CSV -> immutable, content-addressed data set version under raw/.

Triggers: API Gateway (POST/GET /datasets/{name}) and EventBridge "Object Created"
for keys under uploads/<dataset>/.
"""

import base64

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import BadRequestError
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent

from mlcore import datasets
from mlcore.api import register_error_handlers
from mlcore.config import Settings
from mlcore.observability import logger, metrics, tracer
from mlcore.storage import S3Store

app = APIGatewayRestResolver(enable_validation=True)
register_error_handlers(app)


def _store() -> S3Store:
    return S3Store(Settings.from_env().bucket)


@app.post("/datasets/<name>")
def upload(name: str) -> Response[dict]:
    event = app.current_event
    body = event.body or ""
    data = base64.b64decode(body) if event.is_base64_encoded else body.encode()
    if len(data) > datasets.MAX_BODY_BYTES:
        raise BadRequestError(
            f"request body is {len(data)} bytes, over the {datasets.MAX_BODY_BYTES} byte limit "
            "for direct upload; upload to s3://<bucket>/uploads/<dataset>/ instead"
        )
    result = datasets.ingest(_store(), name, data, source="api")
    return Response(status_code=201 if result["created"] else 200, content_type="application/json", body=result)


@app.get("/datasets/<name>")
def describe(name: str) -> dict:
    return datasets.describe(_store(), name, app.current_event.get_query_string_value("version"))


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context) -> dict:
    if event.get("detail-type") == "Object Created":
        s3_event = EventBridgeEvent(event)
        key = s3_event.detail["object"]["key"]
        logger.info("registering upload", extra={"key": key})
        return datasets.ingest_upload(_store(), key)
    return app.resolve(event, context)
