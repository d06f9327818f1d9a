"""The Preprocess step: prepare a training run's data in memory, or in two streaming passes when the data set
is too large to hold as one table (``STREAM_THRESHOLD_BYTES``), or by many functions, a piece each, above
``distributed.DISTRIBUTED_THRESHOLD_BYTES`` (the workflow then runs the steps ``handle`` answers)."""

from __future__ import annotations

from mlcore.infra.storage import ObjectStore
from mlcore.steps import ingestion, problem
from mlcore.steps.preparation import distributed
from mlcore.steps.preparation.in_memory import preprocess_in_memory
from mlcore.steps.schemas import PreparationTask, PreprocessResult, PreprocessTask, TrainingRequest

STREAM_THRESHOLD_BYTES = 64 * 1024 * 1024


def preprocess(
    store: ObjectStore, request: TrainingRequest, run_id: str, stream_threshold: int = STREAM_THRESHOLD_BYTES
) -> PreprocessResult:
    """Clean, transform, standardize, split and shard the requested data set version for run ``run_id``."""
    meta = ingestion.describe(store, request.dataset, request.version)
    if meta["bytes"] > stream_threshold and meta["format"] == "csv":
        from mlcore.steps.preparation.streaming import preprocess_streaming  # pandas chunked reader

        return preprocess_streaming(store, request, run_id, meta)
    return preprocess_in_memory(store, request, run_id, meta)


def handle(store: ObjectStore, task: PreprocessTask | PreparationTask) -> dict:
    """The Preprocess function's answer: the workflow's state ``{run_id, request, data}`` once the data is prepared,
    or ``{run_id, request, plan}`` when a large data set is to be prepared by the distributed steps
    (``distributed.step`` answers those)."""
    if isinstance(task, PreparationTask):
        return distributed.step(store, task)
    meta = ingestion.describe(store, task.request.dataset, task.request.version)
    request, _ = problem.setup(task.request, meta)  # a request naming no model: the steps after train the inferred one
    state: dict = {"run_id": task.run_id, "request": request.model_dump()}
    if distributed.wanted(meta):
        return {**state, "plan": distributed.plan(store, request, task.run_id, meta)}
    return {**state, "data": preprocess(store, request, task.run_id).model_dump()}
