"""BatchPredict: the steps of the batch inference workflow (plan, predict one chunk, finalize)."""

from typing import Annotated, Literal

from pydantic import BaseModel, Field, TypeAdapter

from mlcore.infra.observability import logger, tracer
from mlcore.infra.settings import Settings
from mlcore.infra.storage import S3Store
from mlcore.serving import batch, online

cache = online.ModelCache()


class Plan(BaseModel):
    action: Literal["plan"]
    job_id: str = Field(pattern=batch.JOB_ID.pattern)


class PredictChunk(BaseModel):
    action: Literal["predict"]
    job_id: str = Field(pattern=batch.JOB_ID.pattern)
    first_row: int = Field(ge=0)
    start: int = Field(ge=0)
    end: int = Field(ge=0)


class Finalize(BaseModel):
    action: Literal["finalize"]
    job_id: str = Field(pattern=batch.JOB_ID.pattern)


STEP = TypeAdapter(Annotated[Plan | PredictChunk | Finalize, Field(discriminator="action")])


@logger.inject_lambda_context(correlation_id_path="job_id")
@tracer.capture_lambda_handler
def lambda_handler(event: dict, context) -> dict:
    step = STEP.validate_python(event)
    store = S3Store(Settings.from_env().bucket)
    if isinstance(step, Plan):
        return batch.plan(store, step.job_id)
    if isinstance(step, PredictChunk):
        return batch.predict_chunk(store, cache, step.job_id, step.first_row, step.start, step.end)
    return batch.finalize(store, step.job_id)
