"""What the in-memory and the streaming preparation share: the target's encoding, the checks that refuse a
data set (one message each), the shard plan, and the shard list, manifest and result every Preprocess writes."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from mlcore.infra import layout
from mlcore.infra.errors import InvalidInput
from mlcore.infra.storage import ObjectStore
from mlcore.math import models
from mlcore.math.preprocessing import ColumnSpec, PreprocessingSpec, Preprocessor
from mlcore.steps import problem
from mlcore.steps.problem import Problem
from mlcore.steps.schemas import Block, PreprocessResult, Shard, TrainingRequest

FLOAT32_MAX = float(np.finfo(np.float32).max)
SHARD_FORMAT = {"dtype": "float32", "layout": "[X | y], target in the last column"}


def check_target(target: str, columns: Iterable[str]) -> None:
    names = list(columns)
    if target not in names:
        raise InvalidInput(f"target column {target!r} is not in the data set (columns: {', '.join(names)})")


def class_label(value: object) -> str:
    """Class label text: 1.0 reads as "1", "yes" stays "yes"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def ordered_classes(labels: Iterable[str], numeric: bool) -> list[str]:
    """Sorted class labels: by value for a numeric target (2 before 10), else as text."""
    return sorted(set(labels), key=float) if numeric else sorted(set(labels))


def encode_target(
    values: np.ndarray, kind: str, target: str, classifier: bool
) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """(mask of rows with a target, target as float, sorted class labels or None)."""
    if not classifier:
        if kind != "numeric":
            raise InvalidInput(f"target column {target!r} must be numeric for regression")
        if np.isinf(values).any():
            raise InvalidInput(f"target column {target!r} contains infinite values")
        return ~np.isnan(values), values, None
    labels = np.array(
        [None if v is None or (isinstance(v, float) and np.isnan(v)) or v == "" else class_label(v) for v in values],
        dtype=object,
    )
    keep = labels != None  # noqa: E711 - elementwise
    classes = ordered_classes(labels[keep], kind == "numeric")
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[v] if v is not None else np.nan for v in labels], dtype=np.float64)
    return keep, y, classes


def check_rows(target: str, with_target: int, kept: int) -> None:
    """Refuse a data set with no target values, or none left after the spec's ``drop_rows``."""
    if with_target == 0:
        raise InvalidInput(f"target column {target!r} has no values")
    if kept == 0:
        raise InvalidInput("no rows are left after dropping those the preprocessing spec requires values for")


def check_classes(model: str, target: str, classes: list[str] | None) -> None:
    if classes is not None:
        check_class_count(model, target, len(classes))


def check_class_count(model: str, target: str, n_classes: int) -> None:
    """Refuse a classifier whose target has too few classes (or, for logistic regression, too many)."""
    try:
        models.n_outputs(model, n_classes)
    except ValueError as err:
        raise InvalidInput(f"target column {target!r}: {err}") from None


def split_sizes(rows: int, test_fraction: float, validation_fraction: float) -> tuple[int, int, int]:
    """(training, validation, test) rows of the in-memory split of ``rows`` usable rows: ``test_fraction`` of them
    (rounded) are held out for the test, then ``validation_fraction`` of the rest (rounded) for validation."""
    test = round(rows * test_fraction)
    validation = round((rows - test) * validation_fraction)
    return rows - test - validation, validation, test


def check_split(test_fraction: float, validation_fraction: float, train: int, validation: int, test: int) -> None:
    """Refuse a split that leaves no test row, fewer than two training rows, or (when asked for) no validation row."""
    if test < 1 or train + validation < 2:
        raise InvalidInput(
            f"{train + validation + test} usable rows are too few to split with test_fraction={test_fraction}"
        )
    if validation_fraction > 0 and (validation < 1 or train < 2):
        raise InvalidInput(
            f"{train + validation} training rows are too few for validation_fraction={validation_fraction}"
        )


def plan_shards(run_id: str, train_rows: int, n_shards: int) -> list[Shard]:
    """``n_shards`` consecutive slices of the training rows, sizes differing by at most one (each knows the count:
    its worker's share of the round's inline result budget)."""
    check_shards(n_shards, train_rows)
    base, extra = divmod(train_rows, n_shards)
    return [
        Shard(index=i, key=layout.shard_key(run_id, i), rows=base + (i < extra), n_shards=n_shards)
        for i in range(n_shards)
    ]


def check_shards(n_shards: int, train_rows: int) -> None:
    """Refuse more shards than training rows: every shard needs at least one."""
    if n_shards > train_rows:
        raise InvalidInput(f"n_shards={n_shards} is more than the {train_rows} training rows")


def drop_sensitive(request: TrainingRequest, meta: dict) -> tuple[TrainingRequest, list[dict[str, str]]]:
    """Identifiers and personal data are left out by default: every column the data set's profile marks
    ``sensitive`` (``email``, ``phone``, ``identifier``), unless it is the target or the preprocessing spec names it
    (the user asked for it). Returns the request with those columns dropped in its spec, and the decisions
    (``{"column", "reason"}``) the manifest records."""
    spec = request.preprocessing or PreprocessingSpec()
    dropped = [
        {"column": str(c["name"]), "reason": str(c["sensitive"])}
        for c in meta.get("columns", [])
        if c.get("sensitive") and c["name"] != request.target and c["name"] not in spec.columns
    ]
    if not dropped:
        return request, []
    columns = {**spec.columns, **{d["column"]: ColumnSpec(drop=True) for d in dropped}}
    return request.model_copy(update={"preprocessing": spec.model_copy(update={"columns": columns})}), dropped


def setup_request(request: TrainingRequest, meta: dict) -> tuple[TrainingRequest, list[dict[str, str]], Problem]:
    """The request as the run prepares it: its model chosen when it names none, the sensitive columns dropped
    (``drop_sensitive``) and the problem's decisions (identifiers dropped, high-cardinality text hashed) added to
    its spec for the columns the spec does not name (``mlcore.steps.problem``). Returns it with the sensitive
    columns dropped and the problem, both recorded in the manifest. Refuses a target that cannot be learned."""
    request, found = problem.setup(request, meta)
    request, dropped = drop_sensitive(request, meta)
    spec = problem.with_decisions(request.preprocessing, found)
    return request.model_copy(update={"preprocessing": spec}), dropped, found


def held_out(run_id: str, split: str, rows: int) -> Block:
    """The block of ``split`` (test or validation) rows."""
    return Block(key=layout.held_out_key(run_id, split), rows=rows)


def written_keys(run_id: str, shards: list[Shard]) -> list[str]:
    """Every key a preparation of ``run_id`` may write: deleted together when it fails."""
    held = [layout.held_out_key(run_id, split) for split in ("test", "validation")]
    return [*(s.key for s in shards), *held, layout.shard_list_key(run_id), layout.manifest_key(run_id)]


def finish(
    store: ObjectStore,
    request: TrainingRequest,
    run_id: str,
    meta: dict,
    prep: Preprocessor,
    shards: list[Shard],
    test: Block | list[Block],
    validation: Block | None,
    dropped_rows: int,
    **extra: object,
) -> PreprocessResult:
    """Write the shard list (the Distributed Map's items) and the manifest, last, once every block is stored,
    and return the step's result. ``extra`` goes into the manifest as it is. ``test`` is one block, or the blocks of
    a distributed preparation's pieces (the manifest's ``test`` is then ``{"rows", "blocks"}``)."""
    test_rows = test.rows if isinstance(test, Block) else sum(b.rows for b in test)
    test_doc = (
        test.model_dump() if isinstance(test, Block) else {"rows": test_rows, "blocks": [b.model_dump() for b in test]}
    )
    shard_list = layout.shard_list_key(run_id)
    store.put_json(shard_list, [s.model_dump() for s in shards])
    manifest = {
        "run_id": run_id,
        "dataset": {k: meta[k] for k in ("dataset", "version", "sha256", "key", "rows")},
        "target": request.target,
        "dropped_rows_missing_target": dropped_rows,  # also rows the spec drops (impute "drop_rows")
        "dropped_columns": prep.dropped_columns,
        "spec": prep.spec.model_dump() if prep.spec else None,
        "classes": prep.classes,
        "feature_names": prep.feature_names,
        "schema": [{"name": c.name, "kind": c.kind} for c in prep.columns],
        "preprocessor": prep.model_dump(),
        "shards": [s.model_dump() for s in shards],
        "test": test_doc,
        "validation": validation.model_dump() if validation else None,
        "format": SHARD_FORMAT,
        **extra,
    }
    manifest_key = layout.manifest_key(run_id)
    store.put_json(manifest_key, manifest)
    return PreprocessResult(
        run_id=run_id,
        manifest_key=manifest_key,
        shards=shards,
        shards_key=shard_list,
        n_features=len(prep.feature_names),
        n_outputs=models.n_outputs(request.hyperparameters.model, len(prep.classes or ())),
        classes=prep.classes,
        validation=validation,
        train_rows=sum(s.rows for s in shards),
        test_rows=test_rows,
    )
