"""Model registry: immutable, self-describing JSON artifacts (no pickle) and aliases.

Layout: ``models/<name>/versions/<000001>/model.json`` (written create-only,
so a version number is never reused or overwritten) and
``models/<name>/aliases/<alias>.json`` pointing at a version (a single PUT,
so readers see the old or the new version, never half of one).

Aliases: ``latest`` follows every registration; ``production`` (what Predict serves) moves to a
new version only when its test metric beats the current production one (R² for regression,
higher is better; log loss for classification, lower is better) or when forced. A version that
does not beat the trivial baseline (``metrics.baseline``, see ``steps.evaluation``) carries a
warning and becomes production only when forced.

Registration is idempotent and completes on retry: the run's claim (``runs/<run>/model.json``,
the version it takes) is written before the version file, and every retry moves the aliases. The alias
document carries its own history, so a rollback is one PUT back to the previous production
version; versions are never deleted.
"""

from __future__ import annotations

import contextlib
import functools
import platform
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final, Literal

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from mlcore import __version__
from mlcore.infra import layout
from mlcore.infra.errors import ConflictError, CorruptData, InvalidInput, NotFoundError
from mlcore.infra.storage import AlreadyExists, Conflict, NotFound, ObjectStore
from mlcore.math import linear, mlp, models
from mlcore.math.preprocessing import Preprocessor
from mlcore.steps.schemas import RegisteredModel

FORMAT_VERSION: Final = 1
ALIASES = ("latest", "production")
PRODUCTION = "production"
# Test metric that decides promotion: (name, higher_is_better) per kind of model.
PROMOTION_METRIC = {"regression": ("r2", True), "classification": ("log_loss", False)}
HISTORY_LIMIT = 100
ALIAS_ATTEMPTS = 5


class CorruptModel(CorruptData):
    """A stored model version cannot be used: the server's data is broken, not the request (HTTP 500)."""


class LinearWeights(BaseModel):
    """Weights of a linear model: ``coefficients`` is (n_features x k), ``intercept`` has k entries."""

    type: linear.ModelType
    coefficients: list[list[float]]
    intercept: list[float]


class Layer(BaseModel):
    """One layer of a network: ``weights`` (fan_in x fan_out) and ``biases`` (fan_out)."""

    weights: list[list[float]]
    biases: list[float]


class NetworkWeights(BaseModel):
    """Weights of a multilayer perceptron: its hidden layers' ``activation``, its ``layout`` (per layer
    ``[fan_in + 1, fan_out]``) and its ``layers``, input first."""

    type: Literal["mlp_regression", "mlp_classifier"]
    activation: mlp.Activation
    layout: list[tuple[int, int]]
    layers: list[Layer]


class ModelArtifact(BaseModel):
    format_version: Literal[1] = FORMAT_VERSION
    name: str
    version: int = Field(ge=1)
    created_at: str
    model: LinearWeights | NetworkWeights = Field(discriminator="type")
    target: str
    feature_names: list[str]
    preprocessor: Preprocessor
    hyperparameters: dict[str, Any]
    metrics: dict[str, Any]
    training_curve: list[dict[str, Any]]
    lineage: dict[str, Any]
    library_versions: dict[str, str]
    warnings: list[str] = Field(default_factory=list, description="e.g. the model does not beat the baseline")

    @property
    def worse_than_baseline(self) -> bool:
        """Whether the test metrics do not beat the trivial baseline (never promoted unless forced)."""
        baseline = self.metrics.get("baseline")
        return isinstance(baseline, dict) and baseline.get("beaten") is False

    @functools.cached_property
    def theta(self) -> np.ndarray:
        """Flat parameter vector as the math in ``models`` takes it (the artifact is immutable: computed once)."""
        if isinstance(self.model, NetworkWeights):
            blocks = [
                np.asarray([*layer.weights, layer.biases], dtype=np.float64).ravel() for layer in self.model.layers
            ]
            return np.concatenate(blocks)
        return np.asarray([*self.model.coefficients, self.model.intercept], dtype=np.float64).ravel()

    @functools.cached_property
    def net(self) -> models.Net:
        """The model family, layout and activation the parameters are read with."""
        if isinstance(self.model, NetworkWeights):
            return models.Net(self.model.type, models.layout_of(self.model.layout), self.model.activation)
        shape = (len(self.model.coefficients) + 1, len(self.model.intercept))
        return models.Net(self.model.type, (shape,))

    @property
    def is_classifier(self) -> bool:
        return self.model.type in models.CLASSIFIERS

    @property
    def classes(self) -> list[str]:
        """A classifier's labels, in the order of its probability columns."""
        if self.preprocessor.classes is None:
            raise ValueError(f"model {self.name!r} version {self.version} is a regression model: it has no classes")
        return self.preprocessor.classes

    def predict(self, instances: dict[str, list[Any]] | dict[str, np.ndarray]) -> list[Any]:
        """Predicted values (regression) or class labels (classification)."""
        out = self.net.predict(self.theta, self.preprocessor.transform(instances))
        if self.is_classifier:
            return [self.classes[i] for i in out]
        return out.tolist()

    def predict_proba(self, instances: dict[str, list[Any]] | dict[str, np.ndarray]) -> np.ndarray:
        return self.net.predict_proba(self.theta, self.preprocessor.transform(instances))


def library_versions() -> dict[str, str]:
    import pydantic

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pydantic": pydantic.__version__,
        "mlcore": __version__,
    }


def register(store: ObjectStore, run_id: str, artifact_fields: dict[str, Any]) -> ModelArtifact:
    """Store the artifact under the next free version, move ``latest`` to it and promote it if it is better.

    Idempotent and complete on retry: the run first claims a version number (``run_model_key``), then
    writes that version create-only; a retry after a crash at any write finds the claim, writes the
    version if it is missing and moves the aliases again, so a run gets exactly one version.
    """
    name = artifact_fields["name"]
    artifact_fields = {**artifact_fields, "lineage": {**artifact_fields.get("lineage", {}), "run_id": run_id}}
    claim = _claim(store, run_id)
    version = int(claim["version"]) if claim is not None else 1 + max(list_versions(store, name), default=0)
    while True:
        if claim is None or int(claim["version"]) != version:
            claim = {"name": name, "version": version}
            store.put_json(layout.run_model_key(run_id), claim)
        artifact = ModelArtifact(
            **artifact_fields,
            version=version,
            created_at=datetime.now(UTC).isoformat(),
            library_versions=library_versions(),
        )
        try:
            store.put_json(layout.version_key(name, version), artifact.model_dump(mode="json"), if_absent=True)
            break
        except AlreadyExists:
            existing = load_version(store, name, version)
            if existing.lineage.get("run_id") == run_id:  # written by this run before a crash
                artifact = existing
                break
            version = 1 + max(version, *list_versions(store, name))  # another run registered this number first
    _advance_latest(store, name, version, reason=f"registered by {run_id}")
    if not artifact.worse_than_baseline:
        with contextlib.suppress(ConflictError):  # not better than production: registered, production stays
            promote(store, name, version)
    return artifact


def _claim(store: ObjectStore, run_id: str) -> dict[str, Any] | None:
    try:
        return store.get_json(layout.run_model_key(run_id))
    except NotFound:
        return None


def registered(artifact: ModelArtifact, rounds: int) -> RegisteredModel:
    """What the training workflow's last task returns for the version it registered."""
    return RegisteredModel(
        model_name=artifact.name,
        version=artifact.version,
        artifact_key=layout.version_key(artifact.name, artifact.version),
        metrics={k: float(v) for k, v in artifact.metrics["test"].items() if isinstance(v, int | float)},
        rounds=rounds,
        warnings=artifact.warnings,
    )


def get_alias(store: ObjectStore, name: str, alias: str) -> dict[str, Any] | None:
    try:
        return store.get_json(layout.alias_key(name, alias))
    except NotFound:
        return None


def _update_alias(
    store: ObjectStore, name: str, alias: str, decide: Callable[[dict[str, Any] | None], dict[str, Any]]
) -> dict[str, Any]:
    """Read the alias, let ``decide`` build the next document from it (or keep it: return the same object),
    and write it only if nobody changed the alias in between (S3 If-Match / If-None-Match); else again."""
    for _ in range(ALIAS_ATTEMPTS):
        try:
            current, etag = store.get_json_tagged(layout.alias_key(name, alias))
        except NotFound:
            current, etag = None, None
        doc = decide(current)
        if doc is current:
            return doc
        try:
            if etag is None:
                store.put_json(layout.alias_key(name, alias), doc, if_absent=True)
            else:
                store.put_json(layout.alias_key(name, alias), doc, if_match=etag)
            return doc
        except (AlreadyExists, Conflict):
            continue  # a concurrent promotion, rollback or registration: decide again on what it wrote
    raise ConflictError(f"the {alias!r} alias of model {name!r} kept changing; try again")


def _next(current: dict[str, Any] | None, name: str, alias: str, version: int, reason: str) -> dict[str, Any]:
    """The alias moved to ``version``; the version it pointed at goes on its history."""
    history = list(current.get("history", [])) if current else []
    if current:
        history.append({k: current[k] for k in ("version", "updated_at", "reason") if k in current})
    return _doc(name, alias, version, reason, history)


def _doc(name: str, alias: str, version: int, reason: str, history: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": name,
        "alias": alias,
        "version": version,
        "updated_at": datetime.now(UTC).isoformat(),
        "reason": reason,
        "history": history[-HISTORY_LIMIT:],
    }


def _advance_latest(store: ObjectStore, name: str, version: int, reason: str) -> dict[str, Any]:
    """``latest`` only moves forward, even when registrations finish out of order."""

    def decide(current: dict[str, Any] | None) -> dict[str, Any]:
        if current is not None and int(current["version"]) >= version:
            return current
        return _next(current, name, "latest", version, reason)

    return _update_alias(store, name, "latest", decide)


def promotion_metric(artifact: ModelArtifact) -> tuple[str, bool, float | None]:
    """(metric name, higher is better, this version's test value or None)."""
    name, higher = PROMOTION_METRIC["classification" if artifact.is_classifier else "regression"]
    value = artifact.metrics.get("test", {}).get(name)
    return name, higher, None if value is None else float(value)


def promote(store: ObjectStore, name: str, version: int, *, force: bool = False) -> dict[str, Any]:
    """Make ``version`` the production version if it beats the current one (or ``force``).

    Raises ConflictError when it does not beat production, naming both values, or does not beat the trivial
    baseline. The comparison is made against the production version actually replaced: a concurrent promotion
    makes it compare again.
    """
    candidate = load_version(store, name, version)
    metric, higher, value = promotion_metric(candidate)

    def decide(current: dict[str, Any] | None) -> dict[str, Any]:
        if current is not None and int(current["version"]) == version:
            return current
        if candidate.worse_than_baseline and not force:
            raise ConflictError(
                f"version {version} does not beat the trivial baseline ({baseline_text(candidate)}); "
                "use force to promote anyway"
            )
        if current is None:
            return _next(current, name, PRODUCTION, version, "first version")
        if int(current["version"]) == version:
            return current
        if force:
            return _next(current, name, PRODUCTION, version, "forced")
        _, _, incumbent = promotion_metric(load_version(store, name, int(current["version"])))
        beats = value is not None and (incumbent is None or (value > incumbent if higher else value < incumbent))
        if not beats:
            raise ConflictError(
                f"version {version} (test {metric} {value}) does not beat production version {current['version']} "
                f"(test {metric} {incumbent}); use force to promote anyway"
            )
        return _next(current, name, PRODUCTION, version, f"test {metric} {value} beats {incumbent}")

    return _update_alias(store, name, PRODUCTION, decide)


def baseline_text(artifact: ModelArtifact) -> str:
    """The baseline comparison in words, e.g. ``test r2 -0.2 <= 0 of always predicting the mean``."""
    b = artifact.metrics["baseline"]
    return f"test {b['metric']} {b['model']:.4g} <= {b['value']:.4g} of {b['rule']}"


def rollback(store: ObjectStore, name: str) -> dict[str, Any]:
    """Point ``production`` back at the version it pointed at before (one conditional PUT); repeatable."""

    def decide(current: dict[str, Any] | None) -> dict[str, Any]:
        if current is None:
            raise NotFoundError(f"model {name!r} has no {PRODUCTION!r} version")
        history = list(current.get("history", []))
        if not history:
            raise ConflictError(f"model {name!r} has no earlier production version to roll back to")
        previous = history.pop()
        reason = f"rollback from version {current['version']}"
        return _doc(name, PRODUCTION, int(previous["version"]), reason, history)

    return _update_alias(store, name, PRODUCTION, decide)


def list_versions(store: ObjectStore, name: str) -> list[int]:
    return sorted({layout.version_of_key(k) for k in store.list_keys(layout.versions_prefix(name))})


def list_models(store: ObjectStore) -> list[dict[str, Any]]:
    """Every registered model with the versions its aliases point at."""
    aliases = (layout.model_of_alias_key(k, "latest") for k in store.list_keys(layout.MODELS))
    names = sorted({name for name in aliases if name is not None})
    out = []
    for name in names:
        entry: dict[str, Any] = {"name": name}
        for alias in ALIASES:
            doc = get_alias(store, name, alias)
            entry[alias] = int(doc["version"]) if doc else None
        out.append(entry)
    return out


def describe_model(store: ObjectStore, name: str) -> dict[str, Any]:
    check_name(name)
    versions = list_versions(store, name)
    if not versions:
        raise NotFoundError(f"model {name!r} is not registered")
    return {
        "name": name,
        "versions": versions,
        "aliases": {a: doc for a in ALIASES if (doc := get_alias(store, name, a)) is not None},
    }


def check_name(name: str) -> str:
    if not layout.NAME.match(name):
        raise InvalidInput(f"invalid model name {name!r}: use {layout.NAME_RULE}")
    return name


def resolve_alias(store: ObjectStore, name: str, alias: str) -> int:
    try:
        return int(store.get_json(layout.alias_key(name, alias))["version"])
    except NotFound:
        raise NotFoundError(f"model {name!r} has no {alias!r} version") from None


def load_version(store: ObjectStore, name: str, version: int) -> ModelArtifact:
    """A stored version, checked: it must parse, match its path, and have weights of the shape its
    preprocessing produces; else CorruptModel naming the model, the version and what is wrong."""
    key = layout.version_key(name, version)
    try:
        body = store.get_bytes(key)
    except NotFound:
        raise NotFoundError(f"model {name!r} has no version {version}") from None
    where = f"model {name!r} version {version} ({key})"
    try:
        artifact = ModelArtifact.model_validate_json(body)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "the document"
        raise CorruptModel(f"{where} is corrupt: {field}: {first['msg']}") from None
    _check_artifact(artifact, name, version, where)
    return artifact


def _check_artifact(artifact: ModelArtifact, name: str, version: int, where: str) -> None:
    if artifact.name != name:
        raise CorruptModel(f"{where} is corrupt: name is {artifact.name!r}, its path says {name!r}")
    if artifact.version != version:
        raise CorruptModel(f"{where} is corrupt: version is {artifact.version}, its path says {version}")
    n_features = len(artifact.preprocessor.feature_names)
    try:
        expected_k = models.n_outputs(artifact.model.type, len(artifact.preprocessor.classes or []))
    except ValueError as err:
        raise CorruptModel(f"{where} is corrupt: preprocessor.classes: {err}") from None
    if isinstance(artifact.model, NetworkWeights):
        _check_network(artifact.model, n_features, expected_k, where)
        return
    k = len(artifact.model.intercept)
    rows = artifact.model.coefficients
    if k != expected_k or len(rows) != n_features or any(len(r) != k for r in rows):
        shape = f"{len(rows)} x {sorted({len(r) for r in rows})}, intercept {k}"
        raise CorruptModel(
            f"{where} is corrupt: model.coefficients must be {n_features} x {expected_k} "
            f"with an intercept of {expected_k}, got {shape}"
        )


def _check_network(weights: NetworkWeights, n_features: int, n_outputs: int, where: str) -> None:
    """CorruptModel naming the field unless the layout runs from the preprocessing's features to the model's
    outputs through connected layers, and every layer's weights and biases have the layout's shape."""
    shapes = weights.layout
    if not shapes or shapes[0][0] != n_features + 1 or shapes[-1][1] != n_outputs:
        raise CorruptModel(
            f"{where} is corrupt: model.layout must run from {n_features} features + 1 to {n_outputs} outputs, "
            f"got {[list(s) for s in shapes]}"
        )
    try:
        mlp.check_layout(np.zeros(mlp.n_params(tuple(shapes))), tuple(shapes))
    except ValueError as err:
        raise CorruptModel(f"{where} is corrupt: model.layout: {err}") from None
    if len(weights.layers) != len(shapes):
        raise CorruptModel(
            f"{where} is corrupt: model.layers has {len(weights.layers)} layers, its layout {len(shapes)}"
        )
    for i, (layer, (rows, cols)) in enumerate(zip(weights.layers, shapes, strict=True)):
        got = f"{len(layer.weights)} x {sorted({len(r) for r in layer.weights})}"
        if len(layer.weights) != rows - 1 or any(len(r) != cols for r in layer.weights):
            raise CorruptModel(f"{where} is corrupt: model.layers.{i}.weights must be {rows - 1} x {cols}, got {got}")
        if len(layer.biases) != cols:
            raise CorruptModel(
                f"{where} is corrupt: model.layers.{i}.biases must have {cols} values, got {len(layer.biases)}"
            )
