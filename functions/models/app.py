"""Models API: list registered models, show a version, promote a version to production, roll back."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.openapi.params import Path
from pydantic import BaseModel, Field

from mlcore.infra import layout
from mlcore.infra.http import json_body, register_error_handlers, resolve
from mlcore.infra.observability import API_REQUEST, logger, metrics, tracer
from mlcore.infra.settings import Settings
from mlcore.serving import registry

app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=json_body)  # a body is parsed once
register_error_handlers(app)

ModelName = Annotated[str, Path(pattern=layout.NAME.pattern)]


class ModelSummary(BaseModel):
    name: str
    latest: int | None
    production: int | None


class PromoteRequest(BaseModel):
    version: int = Field(ge=1, description="the version to make the production version")
    force: bool = Field(False, description="promote even if its test metric does not beat production")


class AliasDocument(BaseModel):
    name: str
    alias: str
    version: int
    updated_at: str
    reason: str = ""
    history: list[dict[str, Any]] = []


@app.get("/models")
def list_models() -> list[ModelSummary]:
    return [ModelSummary(**m) for m in registry.list_models(Settings.from_env().store())]


@app.get("/models/<name>")
def describe_model(name: ModelName) -> dict[str, Any]:
    return registry.describe_model(Settings.from_env().store(), name)


@app.get("/models/<name>/versions/<version>")
def describe_version(name: ModelName, version: Annotated[int, Path(ge=1)]) -> dict[str, Any]:
    """Metrics, hyperparameters, feature schema and preprocessing, lineage and training curve of one version."""
    return registry.load_version(Settings.from_env().store(), registry.check_name(name), version).model_dump(
        mode="json"
    )


@app.post("/models/<name>/promote")
def promote(name: ModelName, body: PromoteRequest) -> AliasDocument:
    doc = registry.promote(Settings.from_env().store(), registry.check_name(name), body.version, force=body.force)
    metrics.add_metric(name="Promotions", unit="Count", value=1)
    return AliasDocument(**doc)


@app.post("/models/<name>/rollback")
def rollback(name: ModelName) -> AliasDocument:
    doc = registry.rollback(Settings.from_env().store(), registry.check_name(name))
    metrics.add_metric(name="Rollbacks", unit="Count", value=1)
    return AliasDocument(**doc)


@logger.inject_lambda_context(correlation_id_path=API_REQUEST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context) -> dict:
    return resolve(app, event, context)
