"""Ingest: CSV / JSON Lines -> immutable, content-addressed data set version under raw/.

Triggers: API Gateway (POST /datasets for a presigned upload URL; POST/GET /datasets/{name})
and EventBridge "Object Created" for keys under uploads/<dataset>/: a file to register, or a queued
URL ingestion to fetch (asynchronous invocations: failures end in the data set's status, never raised).
"""

import base64
import json
from typing import Literal

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import BadRequestError
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mlcore.infra import layout, urlfetch
from mlcore.infra.errors import InvalidInput
from mlcore.infra.http import accepted, register_error_handlers, resolve
from mlcore.infra.observability import API_REQUEST_OR_S3_EVENT, logger, metrics, tracer
from mlcore.infra.settings import Settings
from mlcore.steps import ingestion

app = APIGatewayRestResolver(enable_validation=True)
UPLOAD_CONTENT_TYPES = ("application/json", *ingestion.CONTENT_TYPES)
register_error_handlers(app)


class UploadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=layout.NAME.pattern, description="data set name")
    format: Literal["csv", "jsonl"] = "csv"


class RegisterRequest(BaseModel):
    """Exactly one of: an object already in the data bucket, or an HTTPS URL to fetch."""

    model_config = ConfigDict(extra="forbid")
    s3_key: str | None = None
    url: str | None = None
    format: Literal["csv", "jsonl"] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> "RegisterRequest":
        if (self.s3_key is None) == (self.url is None):
            raise ValueError("exactly one of s3_key and url")
        return self


@app.post("/datasets", responses={201: {"description": "An upload URL; the upload registers the data set"}})
def start_upload(request: UploadRequest) -> Response[dict]:
    result = ingestion.start_upload(Settings.from_env().store(), request.name, request.format)
    return Response(status_code=201, content_type="application/json", body=result)


def _register_request(body: str) -> RegisterRequest:
    try:
        return RegisterRequest.model_validate(json.loads(body))
    except (ValueError, ValidationError):
        raise InvalidInput(
            'a JSON body must be {"s3_key": "<key in the data bucket>"} or {"url": "https://..."}; '
            "send a file as text/csv or application/x-ndjson"
        ) from None


@app.post(
    "/datasets/<name>",
    responses={
        200: {"description": "These bytes are already a version: nothing was written"},
        201: {"description": "A new data set version"},
        202: {"description": "URL ingestion queued: status pending, the download runs asynchronously"},
    },
)
def upload(name: str) -> Response[dict]:
    event = app.current_event
    body = event.body or ""
    content_type = (event.headers.get("Content-Type") or "text/csv").split(";")[0].strip().lower()
    if content_type == "application/json":
        request = _register_request(body)
        if request.url is not None:
            settings = Settings.from_env()
            result = ingestion.ingest_url(settings.store(), name, request.url, _url_policy(settings), request.format)
            return accepted(result)
        assert request.s3_key is not None  # RegisterRequest holds exactly one of url and s3_key
        result = ingestion.register_object(Settings.from_env().store(), name, request.s3_key)
    else:
        data = base64.b64decode(body) if event.is_base64_encoded else body.encode()
        if len(data) > ingestion.MAX_BODY_BYTES:
            raise BadRequestError(
                f"request body is {len(data)} bytes, over the {ingestion.MAX_BODY_BYTES} byte limit "
                "for direct upload; use POST /datasets for an upload URL instead"
            )
        fmt = ingestion.format_of_content_type(content_type)
        result = ingestion.ingest(Settings.from_env().store(), name, data, source="api", fmt=fmt)
    return Response(status_code=201 if result["created"] else 200, content_type="application/json", body=result)


def _url_policy(settings: Settings) -> urlfetch.UrlPolicy:
    return urlfetch.UrlPolicy.from_settings(
        settings.url_allow_networks, settings.url_allow_http, settings.url_allow_ports
    )


@app.get("/datasets/<name>")
def describe(name: str) -> dict:
    version = app.current_event.get_query_string_value("version")
    store = Settings.from_env().store()
    return ingestion.describe(store, name, version) if version else ingestion.status(store, name)


@logger.inject_lambda_context(correlation_id_path=API_REQUEST_OR_S3_EVENT)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context) -> dict:
    if event.get("detail-type") == "Object Created":
        s3_event = EventBridgeEvent(event)
        key = s3_event.detail["object"]["key"]
        logger.info("registering upload", extra={"key": key})
        settings = Settings.from_env()
        return ingestion.ingest_upload(settings.store(), key, _url_policy(settings))
    # files arrive as text/csv or JSON Lines; the handlers check size and encoding with messages of their own
    return resolve(app, event, context, content_types=UPLOAD_CONTENT_TYPES, decode=False)
