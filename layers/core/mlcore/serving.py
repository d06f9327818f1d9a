"""Prediction: instances -> saved preprocessing -> model, with a per-container model cache."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from . import registry
from .errors import InvalidInput
from .registry import ModelArtifact
from .storage import S3Store

MAX_INSTANCES = 1000
MAX_BODY_BYTES = 1_048_576  # 1 MiB of request body (API Gateway allows 10 MB, Lambda 6 MB)
ALIAS_TTL_SECONDS = 30.0
DEFAULT_ALIAS = "production"

Instance = dict[str, Any] | list[Any]


def instances_to_columns(artifact: ModelArtifact, instances: list[Instance]) -> dict[str, list[Any]]:
    """Validate instances (objects keyed by feature name or lists in schema order) into columns."""
    if not instances:
        raise InvalidInput("instances must be a non-empty list")
    if len(instances) > MAX_INSTANCES:
        raise InvalidInput(f"at most {MAX_INSTANCES} instances per request, got {len(instances)}")
    names = artifact.preprocessor.input_names
    kinds = {c.name: c.kind for c in artifact.preprocessor.columns}
    columns: dict[str, list[Any]] = {n: [] for n in names}
    for i, inst in enumerate(instances):
        if isinstance(inst, list):
            if len(inst) != len(names):
                raise InvalidInput(
                    f"instances[{i}] has {len(inst)} values, expected {len(names)} in this order: {', '.join(names)}"
                )
            inst = dict(zip(names, inst, strict=True))
        missing = [n for n in names if n not in inst]
        if missing:
            raise InvalidInput(f"instances[{i}] is missing feature(s): {', '.join(missing)}")
        extra = sorted(set(inst) - set(names))
        if extra:
            raise InvalidInput(f"instances[{i}] has unknown feature(s): {', '.join(extra)}")
        for n in names:
            v = inst[n]
            if kinds[n] == "numeric" and v is not None:
                if isinstance(v, bool) or not isinstance(v, int | float):
                    raise InvalidInput(f"instances[{i}].{n} must be a number or null, got {v!r}")
                if not _finite(v):
                    raise InvalidInput(f"instances[{i}].{n} must be finite, got {v!r}")
            elif kinds[n] == "categorical" and v is not None and not isinstance(v, str | int | float):
                raise InvalidInput(f"instances[{i}].{n} must be a string or null, got {v!r}")
            columns[n].append(v)
    return columns


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # a JSON integer too large for a float
        return False


class ModelCache:
    """Artifacts are immutable, so they are cached for the container's life; an alias is
    re-read after ``ttl`` seconds, so a newly registered version is served within that bound."""

    def __init__(self, ttl: float = ALIAS_TTL_SECONDS, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self.clock = clock
        self._aliases: dict[tuple[str, str], tuple[float, int]] = {}
        self._artifacts: dict[tuple[str, int], ModelArtifact] = {}

    def get(self, store: S3Store, name: str, alias: str = "latest") -> ModelArtifact:
        if alias not in registry.ALIASES:
            raise InvalidInput(f"alias must be one of {', '.join(registry.ALIASES)}, got {alias!r}")
        now = self.clock()
        cached = self._aliases.get((name, alias))
        if cached is None or now - cached[0] > self.ttl:
            registry.MODEL_NAME.match(name) or _bad_name(name)
            cached = (now, registry.resolve_alias(store, name, alias))
            self._aliases[(name, alias)] = cached
        version = cached[1]
        if (name, version) not in self._artifacts:
            self._artifacts[(name, version)] = registry.load_version(store, name, version)
        return self._artifacts[(name, version)]

    def get_version(self, store: S3Store, name: str, version: int) -> ModelArtifact:
        """A pinned version: immutable, so cached for the container's life."""
        registry.MODEL_NAME.match(name) or _bad_name(name)
        if (name, version) not in self._artifacts:
            self._artifacts[(name, version)] = registry.load_version(store, name, version)
        return self._artifacts[(name, version)]


def _bad_name(name: str) -> None:
    raise InvalidInput(f"invalid model name {name!r}")


def predict(artifact: ModelArtifact, instances: list[Instance]) -> dict[str, Any]:
    columns = instances_to_columns(artifact, instances)
    result: dict[str, Any] = {
        "model": artifact.name,
        "version": artifact.version,
        "target": artifact.target,
        "predictions": artifact.predict(columns),
    }
    if artifact.is_classifier:
        result["classes"] = artifact.preprocessor.classes
        result["probabilities"] = artifact.predict_proba(columns).tolist()
    return result
