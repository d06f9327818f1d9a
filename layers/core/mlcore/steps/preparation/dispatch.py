"""The Preprocess step: prepare a training run's data in memory, or in two streaming passes when the data set
is too large to hold as one table (``STREAM_THRESHOLD_BYTES``)."""

from __future__ import annotations

from mlcore.infra.storage import ObjectStore
from mlcore.steps import ingestion
from mlcore.steps.preparation.in_memory import preprocess_in_memory
from mlcore.steps.schemas import PreprocessResult, TrainingRequest

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
