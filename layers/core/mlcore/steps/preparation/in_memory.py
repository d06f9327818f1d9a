"""Preprocess step: raw CSV -> cleaned, standardized, split, sharded ``.npy`` + manifest (uses pandas)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from mlcore.infra.errors import InvalidInput
from mlcore.infra.storage import S3Store
from mlcore.math import linear
from mlcore.math.preprocessing import PreprocessingSpec, Preprocessor, fit, rows_to_drop
from mlcore.steps import ingestion
from mlcore.steps.schemas import Block, PreprocessResult, Shard, TrainingRequest
from mlcore.steps.tabular import column_kinds, read_table, to_columns

FLOAT32_MAX = float(np.finfo(np.float32).max)


def processed_prefix(run_id: str) -> str:
    return f"processed/{run_id}/"


def split_indices(n_rows: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled train/test row indices, reproducible from the seed."""
    order = np.random.default_rng(seed).permutation(n_rows)
    n_test = round(n_rows * test_fraction)
    if n_test < 1 or n_rows - n_test < 2:
        raise InvalidInput(f"{n_rows} usable rows are too few to split with test_fraction={test_fraction}")
    return order[n_test:], order[:n_test]


class Prepared(NamedTuple):
    preprocessor: Preprocessor
    train: np.ndarray  # float32 [X | y]
    test: np.ndarray
    dropped: int  # rows without a target (or without a value the spec requires: impute "drop_rows")
    validation: np.ndarray | None = None  # held out of the training rows, for early stopping


def _label(value: object) -> str:
    """Class label text: 1.0 reads as "1", "yes" stays "yes"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def encode_target(
    values: np.ndarray, kind: str, target: str, classifier: bool
) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """(mask of rows with a target, target as float, sorted class labels or None)."""
    if not classifier:
        if kind != "numeric":
            raise InvalidInput(f"target column {target!r} must be numeric for regression")
        if np.isinf(values).any():
            raise InvalidInput(f"target column {target!r} contains infinite values")
        keep = ~np.isnan(values)
        return keep, values, None
    labels = np.array(
        [None if v is None or (isinstance(v, float) and np.isnan(v)) or v == "" else _label(v) for v in values],
        dtype=object,
    )
    keep = labels != None  # noqa: E711 - elementwise
    present = labels[keep]
    numeric_order = kind == "numeric"  # 2 < 10 as numbers, not as text
    classes = sorted(set(present), key=float) if numeric_order else sorted(set(present))
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[v] if v is not None else np.nan for v in labels], dtype=np.float64)
    return keep, y, classes


def build_matrices(
    columns: dict[str, np.ndarray],
    kinds: dict[str, str],
    target: str,
    test_fraction: float,
    seed: int,
    model: str = "linear_regression",
    validation_fraction: float = 0.0,
    spec: PreprocessingSpec | None = None,
) -> Prepared:
    """Fit the transform on the training rows only; return it with ``[X | y]`` float32 train and test blocks.

    For classifiers the target's labels become class indices 0..K-1 (sorted labels, kept in the
    preprocessor so predictions map back to them). ``spec`` is the declarative preprocessing (defaults
    without it); rows it says to drop are removed before the split."""
    if target not in columns:
        raise InvalidInput(f"target column {target!r} is not in the data set (columns: {', '.join(columns)})")
    classifier = model in linear.CLASSIFIERS
    keep, y_all, classes = encode_target(columns[target], kinds[target], target, classifier)
    if not keep.any():
        raise InvalidInput(f"target column {target!r} has no values")
    keep &= ~rows_to_drop(columns, kinds, spec)
    dropped = int((~keep).sum())
    if not keep.any():
        raise InvalidInput("no rows are left after dropping those the preprocessing spec requires values for")
    if classes is not None:
        try:
            linear.n_outputs(model, len(classes))
        except ValueError as err:
            raise InvalidInput(f"target column {target!r}: {err}") from None
    columns = {name: values[keep] for name, values in columns.items()}
    y_all = y_all[keep]
    train_idx, test_idx = split_indices(int(keep.sum()), test_fraction, seed)
    n_validation = round(len(train_idx) * validation_fraction)
    if validation_fraction > 0 and not 1 <= n_validation <= len(train_idx) - 2:
        raise InvalidInput(f"{len(train_idx)} training rows are too few for validation_fraction={validation_fraction}")
    validation_idx, train_idx = train_idx[:n_validation], train_idx[n_validation:]
    prep = fit({n: v[train_idx] for n, v in columns.items()}, kinds, target, spec=spec)
    prep = prep.model_copy(update={"classes": classes})

    def block(idx: np.ndarray) -> np.ndarray:
        X = prep.transform({n: columns[n][idx] for n in prep.input_names})
        out = np.hstack([X, y_all[idx][:, None]])
        too_big = np.abs(out) > FLOAT32_MAX  # shards are float32: nothing may overflow to inf
        if too_big.any():
            names = [*prep.feature_names, target]
            bad = sorted({names[j] for j in np.nonzero(too_big.any(axis=0))[0]})
            raise InvalidInput(
                f"values of {', '.join(bad)} exceed the float32 range (±{FLOAT32_MAX:.3g}) after "
                "preprocessing; rescale or clip them (e.g. log1p or clip in the spec)"
            )
        return out.astype(np.float32)

    return Prepared(prep, block(train_idx), block(test_idx), dropped, block(validation_idx) if n_validation else None)


def preprocess(
    store: S3Store, request: TrainingRequest, run_id: str, stream_threshold: int | None = None
) -> PreprocessResult:
    """In memory for data sets up to ``stream_threshold`` bytes; above it, two streaming passes
    in bounded memory (``mlcore.streaming``)."""
    from mlcore.steps.preparation import streaming

    meta = ingestion.describe(store, request.dataset, request.version)
    threshold = streaming.STREAM_THRESHOLD_BYTES if stream_threshold is None else stream_threshold
    if meta.get("bytes", 0) > threshold and meta.get("format", "csv") == "csv":
        return streaming.preprocess_streaming(store, request, run_id, meta)
    frame = read_table(store.get_bytes(meta["key"]), meta.get("format", "csv"))
    kinds = column_kinds(frame)
    prep, train, test, dropped, validation = build_matrices(
        to_columns(frame),
        kinds,
        request.target,
        request.test_fraction,
        request.seed,
        request.hyperparameters.model,
        request.validation_fraction,
        request.preprocessing,
    )
    if request.n_shards > train.shape[0]:
        raise InvalidInput(f"n_shards={request.n_shards} is more than the {train.shape[0]} training rows")
    prefix = processed_prefix(run_id)
    written: list[str] = []
    try:
        shards = []
        for index, part in enumerate(np.array_split(train, request.n_shards)):
            key = f"{prefix}shards/shard-{index:05d}.npy"
            store.put_array(key, part)
            written.append(key)
            shards.append(Shard(index=index, key=key, rows=int(part.shape[0])))
        test_key = f"{prefix}test.npy"
        store.put_array(test_key, test)
        written.append(test_key)
        validation_block = None
        if validation is not None:
            validation_block = Block(key=f"{prefix}validation.npy", rows=int(validation.shape[0]))
            store.put_array(validation_block.key, validation)
            written.append(validation_block.key)
        manifest = {
            "run_id": run_id,
            "dataset": {k: meta[k] for k in ("dataset", "version", "sha256", "key", "rows")},
            "target": request.target,
            "dropped_rows_missing_target": dropped,  # also rows the spec drops (impute "drop_rows")
            "dropped_columns": prep.dropped_columns,
            "spec": prep.spec.model_dump() if prep.spec else None,
            "classes": prep.classes,
            "feature_names": prep.feature_names,
            "schema": [{"name": c.name, "kind": c.kind} for c in prep.columns],
            "preprocessor": prep.model_dump(),
            "shards": [s.model_dump() for s in shards],
            "test": {"key": test_key, "rows": int(test.shape[0])},
            "validation": validation_block.model_dump() if validation_block else None,
            "format": {"dtype": "float32", "layout": "[X | y], target in the last column"},
        }
        manifest_key = f"{prefix}manifest.json"
        store.put_json(manifest_key, manifest)
    except Exception:
        store.delete(written)
        raise
    return PreprocessResult(
        run_id=run_id,
        manifest_key=manifest_key,
        shards=shards,
        n_features=len(prep.feature_names),
        n_outputs=linear.n_outputs(request.hyperparameters.model, len(prep.classes or ())),
        classes=prep.classes,
        validation=validation_block,
        train_rows=int(train.shape[0]),
        test_rows=int(test.shape[0]),
    )
