"""Model registry: immutable, self-describing JSON artifacts (no pickle) and aliases.

Layout: ``models/<name>/versions/<000001>/model.json`` (written create-only,
so a version number is never reused or overwritten) and
``models/<name>/aliases/<alias>.json`` pointing at a version (a single PUT,
so readers see the old or the new version, never half of one).
"""

from __future__ import annotations

import platform
import re
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from . import __version__, models
from .errors import NotFoundError
from .preprocessing import Preprocessor
from .storage import AlreadyExists, NotFound, S3Store

FORMAT_VERSION = 1
ALIASES = ("latest",)
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class LinearWeights(BaseModel):
    """Weights of a linear model: ``coefficients`` is (n_features x k), ``intercept`` has k entries."""

    type: Literal[models.MODEL_TYPES]  # type: ignore[valid-type]
    coefficients: list[list[float]]
    intercept: list[float]


class ModelArtifact(BaseModel):
    format_version: Literal[1] = FORMAT_VERSION
    name: str
    version: int = Field(ge=1)
    created_at: str
    model: LinearWeights
    target: str
    feature_names: list[str]
    preprocessor: Preprocessor
    hyperparameters: dict[str, Any]
    metrics: dict[str, Any]
    training_curve: list[dict[str, Any]]
    lineage: dict[str, Any]
    library_versions: dict[str, str]

    @property
    def theta(self) -> np.ndarray:
        """Flat parameter vector as the math in ``models`` takes it."""
        return np.asarray([*self.model.coefficients, self.model.intercept], dtype=np.float64).ravel()

    @property
    def is_classifier(self) -> bool:
        return self.model.type in models.CLASSIFIERS

    def predict(self, instances: dict[str, list[Any]] | dict[str, np.ndarray]) -> list[Any]:
        """Predicted values (regression) or class labels (classification)."""
        out = models.predict(self.model.type, self.theta, self.preprocessor.transform(instances))
        if self.is_classifier:
            return [self.preprocessor.classes[i] for i in out]
        return out.tolist()

    def predict_proba(self, instances: dict[str, list[Any]] | dict[str, np.ndarray]) -> np.ndarray:
        return models.predict_proba(self.model.type, self.theta, self.preprocessor.transform(instances))


def version_key(name: str, version: int) -> str:
    return f"models/{name}/versions/{version:06d}/model.json"


def alias_key(name: str, alias: str) -> str:
    return f"models/{name}/aliases/{alias}.json"


def run_model_key(run_id: str) -> str:
    return f"runs/{run_id}/model.json"


def library_versions() -> dict[str, str]:
    import pydantic

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pydantic": pydantic.__version__,
        "mlcore": __version__,
    }


def register(store: S3Store, run_id: str, artifact_fields: dict[str, Any]) -> ModelArtifact:
    """Store the artifact under the next free version and move ``latest`` to it.

    Idempotent per run: registering the same run again returns the version it already got.
    """
    try:
        ref = store.get_json(run_model_key(run_id))
        return load_version(store, ref["name"], ref["version"])
    except NotFound:
        pass
    name = artifact_fields["name"]
    existing = store.list_keys(f"models/{name}/versions/")
    version = 1 + max((int(k.split("/")[3]) for k in existing), default=0)
    while True:
        artifact = ModelArtifact(
            **artifact_fields,
            version=version,
            created_at=datetime.now(UTC).isoformat(),
            library_versions=library_versions(),
        )
        try:
            store.put_json(version_key(name, version), artifact.model_dump(mode="json"), if_absent=True)
            break
        except AlreadyExists:
            version += 1  # another run registered this number first
    store.put_json(run_model_key(run_id), {"name": name, "version": version})
    set_alias(store, name, "latest", version)
    return artifact


def set_alias(store: S3Store, name: str, alias: str, version: int) -> None:
    store.put_json(
        alias_key(name, alias),
        {"name": name, "alias": alias, "version": version, "updated_at": datetime.now(UTC).isoformat()},
    )


def resolve_alias(store: S3Store, name: str, alias: str) -> int:
    try:
        return int(store.get_json(alias_key(name, alias))["version"])
    except NotFound:
        raise NotFoundError(f"model {name!r} has no {alias!r} version") from None


def load_version(store: S3Store, name: str, version: int) -> ModelArtifact:
    try:
        return ModelArtifact.model_validate(store.get_json(version_key(name, version)))
    except NotFound:
        raise NotFoundError(f"model {name!r} has no version {version}") from None
