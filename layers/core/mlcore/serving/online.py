"""Prediction: instances -> saved preprocessing -> model, with a per-container model cache."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any, Final

import numpy as np

from mlcore.infra.errors import InvalidInput
from mlcore.infra.storage import ObjectStore
from mlcore.serving import registry
from mlcore.serving.registry import ModelArtifact

MAX_INSTANCES = 1000
MAX_BODY_BYTES = 1_048_576  # 1 MiB of request body (API Gateway allows 10 MB, Lambda 6 MB)
ALIAS_TTL_SECONDS = 30.0
DEFAULT_ALIAS: Final = "production"
NONFINITE = "no finite prediction: a value is too far outside the range of the training data"

Instance = dict[str, Any] | list[Any]


def instances_to_columns(artifact: ModelArtifact, instances: Sequence[Instance]) -> dict[str, list[Any]]:
    """Validate instances (objects keyed by feature name or lists in schema order) into columns."""
    if not instances:
        raise InvalidInput("instances must be a non-empty list")
    if len(instances) > MAX_INSTANCES:
        raise InvalidInput(f"at most {MAX_INSTANCES} instances per request, got {len(instances)}")
    columns = _valid_columns(artifact, instances)
    return columns if columns is not None else _columns_row_by_row(artifact, instances)


_NUMBER_TYPES = frozenset({float, int, type(None)})
_CATEGORY_TYPES = frozenset({str, float, int, bool, type(None)})


def _valid_columns(artifact: ModelArtifact, instances: Sequence[Instance]) -> dict[str, list[Any]] | None:
    """The columns, a column at a time, when every instance is valid: the common case, answered without a
    Python loop per value. None when any instance may not be (a missing feature, a wrong type or length, a value
    that is not finite, a mix of objects and lists...): the row-by-row pass then names the first problem."""
    names = artifact.preprocessor.input_names
    kinds = {type(inst) for inst in instances}
    try:
        if kinds == {dict}:
            pick = itemgetter(*names) if len(names) > 1 else lambda inst: (inst[names[0]],)
            rows: Any = map(pick, instances)
        elif kinds == {list} and {len(inst) for inst in instances} == {len(names)}:
            rows = instances
        else:
            return None
        values = list(zip(*rows, strict=True))
    except KeyError:
        return None
    numeric = {c.name for c in artifact.preprocessor.columns if c.kind == "numeric"}
    for n, column in zip(names, values, strict=True):
        types = set(map(type, column))
        if n not in numeric:
            if not types <= _CATEGORY_TYPES:
                return None
            continue
        if not types <= _NUMBER_TYPES:
            return None
        try:
            finite = np.isfinite(np.array([v for v in column if v is not None], dtype=np.float64)).all()
        except OverflowError:  # a JSON integer too large for a float
            return None
        if not finite:
            return None
    return {n: list(column) for n, column in zip(names, values, strict=True)}


def _columns_row_by_row(artifact: ModelArtifact, instances: Sequence[Instance]) -> dict[str, list[Any]]:
    """The columns, checking one instance at a time: ``InvalidInput`` names the first problem met."""
    names = artifact.preprocessor.input_names
    name_set = set(names)
    numeric = {c.name for c in artifact.preprocessor.columns if c.kind == "numeric"}
    rows: list[list[Any]] = []
    for i, inst in enumerate(instances):
        if isinstance(inst, list):
            if len(inst) != len(names):
                raise InvalidInput(
                    f"instances[{i}] has {len(inst)} values, expected {len(names)} in this order: {', '.join(names)}"
                )
            row = inst
        else:
            if inst.keys() != name_set:
                missing = [n for n in names if n not in inst]
                if missing:
                    raise InvalidInput(f"instances[{i}] is missing feature(s): {', '.join(missing)}")
            row = [inst[n] for n in names]  # other keys (an id, the target...) are not features: see extra_columns
        for n, v in zip(names, row, strict=True):
            t = type(v)
            if t is float:
                if n in numeric and (v != v or v in (math.inf, -math.inf)):
                    raise InvalidInput(f"instances[{i}].{n} must be finite, got {v!r}")
            elif v is None or (t is str and n not in numeric):
                continue
            else:
                _check(i, n, v, n in numeric)
        rows.append(row)
    return {n: [r[j] for r in rows] for j, n in enumerate(names)}


def extra_columns(artifact: ModelArtifact, instances: Sequence[Instance], *, strict: bool = False) -> list[str]:
    """The keys of object instances that are not features of the model (an id, the target...), sorted: prediction
    ignores them and the answer names them in ``warnings``. ``strict`` refuses them instead, naming the first
    instance that has any."""
    names = set(artifact.preprocessor.input_names)
    if set().union(*(inst for inst in instances if isinstance(inst, dict))) <= names:
        return []  # the common case, answered without a Python step per instance
    extra: set[str] = set()
    for i, inst in enumerate(instances):
        if isinstance(inst, dict) and not inst.keys() <= names:
            unknown = set(inst) - names
            if strict:
                raise InvalidInput(f"instances[{i}] has unknown feature(s): {', '.join(sorted(unknown))}")
            extra |= unknown
    return sorted(extra)


def ignored_warning(extra: Sequence[str]) -> str:
    return f"ignored column(s) that are not features of the model: {', '.join(extra)}"


def _check(i: int, n: str, v: Any, is_numeric: bool) -> None:
    """The slow path of the type checks (anything but a float, None, or a string for a categorical)."""
    if is_numeric:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise InvalidInput(f"instances[{i}].{n} must be a number or null, got {v!r}")
        if not _finite(v):
            raise InvalidInput(f"instances[{i}].{n} must be finite, got {v!r}")
    elif not isinstance(v, str | int | float):
        raise InvalidInput(f"instances[{i}].{n} must be a string or null, got {v!r}")


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

    def get(self, store: ObjectStore, name: str, alias: str = "latest") -> ModelArtifact:
        if alias not in registry.ALIASES:
            raise InvalidInput(f"alias must be one of {', '.join(registry.ALIASES)}, got {alias!r}")
        now = self.clock()
        cached = self._aliases.get((name, alias))
        if cached is None or now - cached[0] > self.ttl:
            registry.check_name(name)
            cached = (now, registry.resolve_alias(store, name, alias))
            self._aliases[(name, alias)] = cached
        version = cached[1]
        if (name, version) not in self._artifacts:
            self._artifacts[(name, version)] = registry.load_version(store, name, version)
        return self._artifacts[(name, version)]

    def get_version(self, store: ObjectStore, name: str, version: int) -> ModelArtifact:
        """A pinned version: immutable, so cached for the container's life."""
        registry.check_name(name)
        if (name, version) not in self._artifacts:
            self._artifacts[(name, version)] = registry.load_version(store, name, version)
        return self._artifacts[(name, version)]


def numeric_arrays(artifact: ModelArtifact, columns: dict[str, list[Any]]) -> dict[str, Any]:
    """Validated numeric columns as float64 arrays (null -> NaN, imputed by the transform): the vectorized path."""
    out: dict[str, Any] = dict(columns)
    for col in artifact.preprocessor.columns:
        if col.kind == "numeric":
            out[col.name] = np.array(columns[col.name], dtype=np.float64)  # None converts to NaN
    return out


def predictions(artifact: ModelArtifact, instances: Sequence[Instance]) -> tuple[dict[str, Any], list[int]]:
    """The model's answer for validated instances, and the positions of those whose prediction (or
    probabilities) is not finite: values far enough outside the training data overflow float64."""
    columns = numeric_arrays(artifact, instances_to_columns(artifact, instances))
    result: dict[str, Any] = {"model": artifact.name, "version": artifact.version, "target": artifact.target}
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported per instance below
        X = artifact.preprocessor.transform(columns)  # once, for predictions and probabilities
        if artifact.is_classifier:
            proba = artifact.net.predict_proba(artifact.theta, X)
            finite = np.isfinite(proba).all(axis=1)
            labels = artifact.classes
            result["predictions"] = [labels[i] for i in artifact.net.predict(artifact.theta, X)]
            result["classes"] = labels
            result["probabilities"] = proba.tolist()
        else:
            values = artifact.net.predict(artifact.theta, X)
            finite = np.isfinite(values)
            result["predictions"] = values.tolist()
    return result, np.flatnonzero(~finite).tolist()


def predict(artifact: ModelArtifact, instances: Sequence[Instance]) -> dict[str, Any]:
    """The model's answer for the instances; InvalidInput when any of them has no finite prediction."""
    result, nonfinite = predictions(artifact, instances)
    if nonfinite:
        listed = ", ".join(f"instances[{i}]" for i in nonfinite[:10]) + (", ..." if len(nonfinite) > 10 else "")
        raise InvalidInput(f"{listed}: {NONFINITE}")
    return result
