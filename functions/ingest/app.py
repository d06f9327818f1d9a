"""Ingest: CSV / JSON Lines -> immutable, content-addressed data set version under raw/.

Triggers: API Gateway (POST /datasets for a presigned upload URL; POST/GET /datasets/{name}; POST
/datasets/{name}/uploads and .../uploads/{upload_id}/complete for a presigned multipart upload) and EventBridge
"Object Created" for keys under uploads/<dataset>/: a file to register, a queued URL ingestion to fetch, or a
queued prefix ingestion to scan (asynchronous invocations: failures end in the data set's status, never raised).
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
from mlcore.infra.http import accepted, json_body, register_error_handlers, resolve
from mlcore.infra.observability import API_REQUEST_OR_S3_EVENT, logger, metrics, tracer
from mlcore.infra.settings import Settings
from mlcore.steps import ingestion

app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=json_body)  # a body is parsed once
UPLOAD_CONTENT_TYPES = ("application/json", *ingestion.CONTENT_TYPES)
register_error_handlers(app)


class UploadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=layout.NAME.pattern, description="data set name")
    format: Literal["csv", "jsonl"] = "csv"


class RegisterRequest(BaseModel):
    """Exactly one of: an object already in the data bucket, the CSV files under a prefix of landing/ (one version
    of many files), or an HTTPS URL to fetch."""

    model_config = ConfigDict(extra="forbid")
    s3_key: str | None = None
    s3_prefix: str | None = None
    url: str | None = None
    format: Literal["csv", "jsonl"] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> "RegisterRequest":
        if sum(v is not None for v in (self.s3_key, self.s3_prefix, self.url)) != 1:
            raise ValueError("exactly one of s3_key, s3_prefix and url")
        return self


class MultipartRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bytes: int = Field(ge=1, le=ingestion.MAX_PART_BYTES, description="the size of the file to upload")
    format: Literal["csv", "jsonl"] = "csv"


class UploadedPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    part_number: int = Field(ge=1, le=10_000)
    etag: str = Field(min_length=1, max_length=200, description="the ETag header the part's PUT answered")


class CompleteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    multipart_upload_id: str = Field(min_length=1, max_length=1024)
    parts: list[UploadedPart] = Field(min_length=1, max_length=10_000)


@app.post("/datasets", responses={201: {"description": "An upload URL; the upload registers the data set"}})
def start_upload(request: UploadRequest) -> Response[dict]:
    result = ingestion.start_upload(Settings.from_env().store(), request.name, request.format)
    return Response(status_code=201, content_type="application/json", body=result)


def _register_request(body: str) -> RegisterRequest:
    try:
        return RegisterRequest.model_validate(json.loads(body))
    except (ValueError, ValidationError):
        raise InvalidInput(
            'a JSON body must be {"s3_key": "<key in the data bucket>"}, {"s3_prefix": "landing/<prefix>/"} or '
            '{"url": "https://..."}; send a file as text/csv or application/x-ndjson'
        ) from None


@app.post(
    "/datasets/<name>",
    responses={
        200: {"description": "These bytes are already a version: nothing was written"},
        201: {"description": "A new data set version"},
        202: {"description": "URL or prefix ingestion queued: status pending, it runs asynchronously"},
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
        if request.s3_prefix is not None:
            return accepted(ingestion.register_prefix(Settings.from_env().store(), name, request.s3_prefix))
        assert request.s3_key is not None  # RegisterRequest holds exactly one of url, s3_prefix and s3_key
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


@app.post(
    "/datasets/<name>/uploads",
    responses={201: {"description": "A multipart upload: a presigned URL per part, then complete it"}},
)
def start_multipart_upload(name: str, request: MultipartRequest) -> Response[dict]:
    result = ingestion.start_multipart_upload(Settings.from_env().store(), name, request.bytes, request.format)
    return Response(status_code=201, content_type="application/json", body=result)


@app.post(
    "/datasets/<name>/uploads/<upload_id>/complete",
    responses={202: {"description": "The upload is complete: its registration runs asynchronously"}},
)
def complete_multipart_upload(name: str, upload_id: str, request: CompleteRequest) -> Response[dict]:
    parts = [(part.part_number, part.etag) for part in request.parts]
    store = Settings.from_env().store()
    return accepted(ingestion.complete_multipart_upload(store, name, upload_id, request.multipart_upload_id, parts))


def _url_policy(settings: Settings) -> urlfetch.UrlPolicy:
    return urlfetch.UrlPolicy.from_settings(
        settings.url_allow_networks, settings.url_allow_http, settings.url_allow_ports
    )


@app.get("/datasets")
def list_datasets() -> dict:
    return {"datasets": ingestion.list_datasets(Settings.from_env().store())}


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
        remaining = lambda: context.get_remaining_time_in_millis() / 1000  # noqa: E731  (seconds this invocation has left)
        return ingestion.ingest_upload(settings.store(), key, _url_policy(settings), remaining)
    # files arrive as text/csv or JSON Lines; the handlers check size and encoding with messages of their own
    return resolve(app, event, context, content_types=UPLOAD_CONTENT_TYPES, decode=False)
