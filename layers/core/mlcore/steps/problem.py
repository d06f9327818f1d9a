"""Automatic problem setup: the task a target calls for and what to do with columns that would not help, judged
from a data set version's stored profile alone (``mlcore.steps.tabular``), so a run or a tuning job can be set up,
and refused, before anything starts.

- The task: a text or boolean target is a classification (binary with two classes, else multiclass), and so is a
  numeric one of whole numbers with at most ``MAX_INTEGER_CLASSES`` distinct values; any other numeric target is a
  regression. A target with no value or a single one cannot be learned and is refused.
- Identifier-like columns are dropped: text whose values are nearly all distinct (the profile marks it
  ``identifier``, also email addresses and phone numbers: personal data), and whole numbers that are nearly all
  distinct AND fill at least half the range between their smallest and largest value (a row number or a running
  key).
  Distinct numbers alone are not enough: a continuous measurement is unique per row too, and so is an income in
  whole units; neither is an identifier. A column's name is never evidence.
- A text column with more categories than the one-hot limit is hashed (``HASH_BUCKETS`` buckets).

The preprocessing spec wins: a column it names is left as it says, and the spec's ``max_categories`` is the
one-hot limit used.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from mlcore.infra.errors import InvalidInput, echo
from mlcore.math import models
from mlcore.math.preprocessing import ColumnSpec, PreprocessingSpec
from mlcore.steps.schemas import Hyperparameters, TrainingRequest

Task = Literal["regression", "binary", "multiclass"]
MAX_INTEGER_CLASSES = 10  # a numeric target of whole numbers with at most this many distinct values is a class label
IDENTIFIER_SHARE = 0.95  # distinct values / rows with a value from which a column is nearly unique
IDENTIFIER_MIN_ROWS = 20  # fewer rows with a value never make a column an identifier
IDENTIFIER_FILL = 0.5  # whole numbers: distinct values / (max - min + 1) from which they are a running key
HASH_BUCKETS = 64  # buckets of a hashed high-cardinality text column
LINEAR_MODEL: dict[str, str] = {
    "regression": "linear_regression",
    "binary": "logistic_regression",
    "multiclass": "softmax_regression",
}
MLP_MODEL: dict[str, str] = {"regression": "mlp_regression", "binary": "mlp_classifier", "multiclass": "mlp_classifier"}
# an async run's optimizer and learning rate when the request sets none: plain SGD at 0.05 stays stable with gradients
# up to max_staleness (8) versions old on every bundled and benchmark data set (tests/unit/test_default_convergence.py)
ASYNC_DEFAULTS: dict[str, Any] = {"optimizer": "sgd", "learning_rate": 0.05}
PERSONAL = {"email": "email addresses", "phone": "phone numbers"}


@dataclass(frozen=True)
class Problem:
    """What a target calls for: the task (and its class count), the models and metric that fit it, and the
    decisions taken about other columns, each ``{"column", "action": "drop" | "hash", "reason"}``."""

    task: Task
    n_classes: int | None
    linear_model: str
    mlp_model: str
    metric: str
    decisions: list[dict] = field(default_factory=list)
    reason: str = ""  # why the task is what it is

    @classmethod
    def of(cls, task: Task, n_classes: int | None, reason: str, decisions: list[dict] | None = None) -> Problem:
        """The problem of ``task``: its linear model, network and metric."""
        metric = "r2" if task == "regression" else "accuracy"
        return cls(task, n_classes, LINEAR_MODEL[task], MLP_MODEL[task], metric, decisions or [], reason)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _count(value: object) -> int | None:
    """A profile's exact count, or None where it is absent or capped (``">= 10000"``)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _observed(column: dict, rows: int) -> int:
    return rows - int(column.get("missing") or 0)


def _task(target: str, column: dict, rows: int) -> tuple[Task, int | None, str]:
    """The task the target column's profile calls for, its class count and why; refuses one it cannot learn."""
    observed = _observed(column, rows)
    kind = column.get("kind")
    if observed <= 0 or kind == "empty" or (kind == "numeric" and column.get("min") is None):
        raise InvalidInput(f"target column {target!r} has no values")
    if kind != "numeric":
        distinct = _count(column.get("distinct"))
        if distinct is None and column.get("distinct") is None:  # a profile without the count: not judged
            return "multiclass", None, "the target holds text"
        if distinct is None:
            raise InvalidInput(
                f"target column {target!r} has {column.get('distinct')} distinct text values: too many classes to "
                "learn; choose another target"
            )
        if distinct < 2:
            raise InvalidInput(f"target column {target!r} has a single class: there is nothing to learn")
        task: Task = "binary" if distinct == 2 else "multiclass"
        return task, distinct, f"the target holds text: {distinct} classes"
    if column["min"] == column["max"]:
        raise InvalidInput(
            f"target column {target!r} has a single value ({column['min']:g}): there is nothing to learn"
        )
    distinct = _count(column.get("distinct")) if column.get("integer") else None
    if distinct is not None and distinct <= MAX_INTEGER_CLASSES:
        task = "binary" if distinct == 2 else "multiclass"
        return task, distinct, f"the target holds {distinct} distinct whole numbers (at most {MAX_INTEGER_CLASSES})"
    if column.get("integer"):
        many = distinct if distinct is not None else column.get("distinct")
        return "regression", None, f"the target holds {many} distinct whole numbers (more than {MAX_INTEGER_CLASSES})"
    return "regression", None, "the target is numeric, not a few whole numbers"


def _decision(name: str, column: dict, rows: int, spec: PreprocessingSpec) -> dict | None:
    """Drop or hash a feature column the spec does not name, or None to leave it as the defaults treat it."""
    sensitive = column.get("sensitive")
    observed = _observed(column, rows)
    distinct = _count(column.get("distinct"))
    if sensitive in PERSONAL:
        reason = f"personal data: most values look like {PERSONAL[sensitive]}"
        return {"column": name, "action": "drop", "reason": reason}
    if sensitive == "identifier":
        many = f"{distinct}" if distinct is not None else str(column.get("distinct"))
        return {
            "column": name,
            "action": "drop",
            "reason": f"identifier: {many} distinct text values in {observed} rows with a value",
        }
    if column.get("kind") == "numeric":
        if not column.get("integer") or distinct is None or observed < IDENTIFIER_MIN_ROWS:
            return None
        span = float(column["max"]) - float(column["min"]) + 1
        if distinct >= IDENTIFIER_SHARE * observed and distinct >= IDENTIFIER_FILL * span:
            return {
                "column": name,
                "action": "drop",
                "reason": f"identifier: {distinct} distinct whole numbers in {observed} rows with a value, "
                f"filling {distinct / span:.0%} of the range {column['min']:g} to {column['max']:g} (a row number "
                "or key)",
            }
        return None
    if column.get("kind") == "categorical":
        capped = isinstance(column.get("distinct"), str)  # more than tabular.DISTINCT_CAP: ">= 10000"
        if capped or (distinct is not None and distinct > spec.max_categories):
            shown = column["distinct"] if capped else distinct
            return {
                "column": name,
                "action": "hash",
                "reason": f"{shown} distinct text values, more than the one-hot limit of {spec.max_categories}: "
                f"hashed into {HASH_BUCKETS} buckets",
            }
    return None


def infer_problem(meta: dict, target: str, spec: PreprocessingSpec | None = None, model: str | None = None) -> Problem:
    """The problem the data set version ``meta`` (its stored metadata: ``rows`` and the profile's ``columns``) and
    its ``target`` pose. ``spec``: columns it names are left as it says. ``model``: a model the user chose sets the
    task family (a regressor: regression; a classifier: binary or multiclass by the class count). Refuses
    (InvalidInput, naming the target) a target that is not a column, has no value, or a single one."""
    columns = [c for c in meta.get("columns") or [] if isinstance(c, dict) and "name" in c]
    profile = {str(c["name"]): c for c in columns}
    if target not in profile:
        raise InvalidInput(f"target column {echo(target)} is not in the data set (columns: {', '.join(profile)})")
    rows = int(meta.get("rows") or 0)
    spec = spec or PreprocessingSpec()
    task, n_classes, reason = _task(target, profile[target], rows)
    if model is not None:
        task, n_classes, reason = _chosen(model, task, n_classes, reason)
    decisions = [
        d
        for name, column in profile.items()
        if name != target and name not in spec.columns
        for d in [_decision(name, column, rows, spec)]
        if d is not None
    ]
    return Problem.of(task, n_classes, reason, decisions)


def _chosen(model: str, task: Task, n_classes: int | None, reason: str) -> tuple[Task, int | None, str]:
    """The task of a model the user named, where it differs from the inferred one."""
    if model not in models.CLASSIFIERS:
        return "regression", None, f"model {model} is a regression" if task != "regression" else reason
    if task != "regression":
        return task, n_classes, reason
    chosen: Task = "binary" if model == "logistic_regression" else "multiclass"
    return chosen, None, f"model {model} is a classifier"


def _unprofiled(model: str) -> Problem:
    """The problem of a data set version without a stored profile: the model's family, no decision."""
    task, n_classes, _ = _chosen(model, "regression", None, "")
    return Problem.of(task, n_classes, f"the data set has no stored profile: the task of model {model}")


def with_decisions(spec: PreprocessingSpec | None, problem: Problem) -> PreprocessingSpec | None:
    """``spec`` with the problem's decisions added for the columns it does not name (drop, or hash); ``spec`` as it
    is when there is none to add."""
    added = {}
    for d in problem.decisions:
        if spec is not None and d["column"] in spec.columns:
            continue
        if d["action"] == "drop":
            added[d["column"]] = ColumnSpec(drop=True)
        else:
            added[d["column"]] = ColumnSpec(encoding="hash", hash_buckets=HASH_BUCKETS)
    if not added:
        return spec
    spec = spec or PreprocessingSpec()
    return spec.model_copy(update={"columns": {**spec.columns, **added}})


def setup(request: TrainingRequest, meta: dict) -> tuple[TrainingRequest, Problem]:
    """The request as the run trains it, and the problem. A request naming no model trains the inferred task's
    linear model (its MLP when it sets ``hidden_layers`` or ``activation``); an async request that sets no
    ``optimizer`` or ``learning_rate`` takes ``ASYNC_DEFAULTS`` (the sync defaults, momentum at 0.1, diverge under the
    staleness of concurrent workers). Refuses (InvalidInput) a target that cannot be learned, and hyperparameters
    that do not fit the inferred model (e.g. solver 'exact' for a classification)."""
    hp = request.hyperparameters
    chosen = hp.model if "model" in hp.model_fields_set else None
    if isinstance(meta.get("columns"), list) and meta.get("rows") is not None:
        problem = infer_problem(meta, request.target, request.preprocessing, chosen)
    else:  # a version stored without a profile (or its row count): nothing is judged (Preprocess checks the data)
        problem = _unprofiled(hp.model)
    updates: dict[str, Any] = {}
    if chosen is None:
        network = bool({"hidden_layers", "activation"} & hp.model_fields_set)
        updates["model"] = problem.mlp_model if network else problem.linear_model
    if request.mode == "async":
        updates |= {k: v for k, v in ASYNC_DEFAULTS.items() if k not in hp.model_fields_set}
    if not updates:
        return request, problem
    try:
        hp = Hyperparameters.model_validate({**hp.model_dump(exclude_unset=True), **updates})
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        inferred = f" (model {updates['model']} was inferred: {problem.reason}; name the model to choose another)"
        raise InvalidInput(
            f"hyperparameters{'.' + where if where else ''}: {message}{inferred if 'model' in updates else ''}"
        ) from None
    return request.model_copy(update={"hyperparameters": hp}), problem
