"""Preparation in memory (data sets up to ``dispatch.STREAM_THRESHOLD_BYTES``, all parts together): the whole table
is parsed once, split, fitted on the training rows and written as ``.npy`` shards, held-out blocks and the manifest."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from mlcore.infra.errors import InvalidInput
from mlcore.infra.storage import ObjectStore
from mlcore.math import models
from mlcore.math.preprocessing import PreprocessingSpec, Preprocessor, fit, rows_to_drop
from mlcore.steps import ingestion
from mlcore.steps.preparation import shared
from mlcore.steps.schemas import PreprocessResult, TrainingRequest
from mlcore.steps.tabular import column_kinds, read_tables, to_columns


def split_indices(n_rows: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled train/test row indices, reproducible from the seed."""
    order = np.random.default_rng(seed).permutation(n_rows)
    n_test = shared.split_sizes(n_rows, test_fraction, 0.0)[2]
    shared.check_split(test_fraction, 0.0, n_rows - n_test, 0, n_test)
    return order[n_test:], order[:n_test]


class Prepared(NamedTuple):
    preprocessor: Preprocessor
    train: np.ndarray  # float32 [X | y]
    test: np.ndarray
    dropped: int  # rows without a target (or without a value the spec requires: impute "drop_rows")
    validation: np.ndarray | None = None  # held out of the training rows, for early stopping


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
    shared.check_target(target, columns)
    keep, y_all, classes = shared.encode_target(columns[target], kinds[target], target, model in models.CLASSIFIERS)
    with_target = int(keep.sum())
    keep &= ~rows_to_drop(columns, kinds, spec)
    shared.check_rows(target, with_target, int(keep.sum()))
    shared.check_classes(model, target, classes)
    columns = {name: values[keep] for name, values in columns.items()}
    y_all = y_all[keep]
    train_idx, test_idx = split_indices(int(keep.sum()), test_fraction, seed)
    n_validation = shared.split_sizes(int(keep.sum()), test_fraction, validation_fraction)[1]
    shared.check_split(test_fraction, validation_fraction, len(train_idx) - n_validation, n_validation, len(test_idx))
    validation_idx, train_idx = train_idx[:n_validation], train_idx[n_validation:]
    prep = fit({n: v[train_idx] for n, v in columns.items()}, kinds, target, spec=spec)
    prep = prep.model_copy(update={"classes": classes})

    def block(idx: np.ndarray) -> np.ndarray:
        X = prep.transform({n: columns[n][idx] for n in prep.input_names})
        out = np.hstack([X, y_all[idx][:, None]])
        too_big = np.abs(out) > shared.FLOAT32_MAX  # shards are float32: nothing may overflow to inf
        if too_big.any():
            names = [*prep.feature_names, target]
            bad = sorted({names[j] for j in np.nonzero(too_big.any(axis=0))[0]})
            raise InvalidInput(
                f"values of {', '.join(bad)} exceed the float32 range (±{shared.FLOAT32_MAX:.3g}) after "
                "preprocessing; rescale or clip them (e.g. log1p or clip in the spec)"
            )
        return out.astype(np.float32)

    dropped = int((~keep).sum())
    return Prepared(prep, block(train_idx), block(test_idx), dropped, block(validation_idx) if n_validation else None)


def preprocess_in_memory(store: ObjectStore, request: TrainingRequest, run_id: str, meta: dict) -> PreprocessResult:
    """Parse the data set version ``meta`` describes, prepare it and write its shards, blocks and manifest;
    on any failure nothing of the run's preparation is left. Identifiers and personal data the profile marks are
    dropped, and high-cardinality text hashed, unless the spec names them (``shared.setup_request``)."""
    request, dropped_sensitive, problem = shared.setup_request(request, meta)
    files = [store.get_bytes(key) for key in ingestion.data_keys(meta)]  # one, or the parts of a small version
    frame = read_tables(files, meta["format"], meta.get("delimiter", ","))
    prep, train, test, dropped, validation = build_matrices(
        to_columns(frame),
        column_kinds(frame),
        request.target,
        request.test_fraction,
        request.seed,
        request.hyperparameters.model,
        request.validation_fraction,
        request.preprocessing,
    )
    shards = shared.plan_shards(run_id, train.shape[0], request.n_shards)
    try:
        start = 0
        for shard in shards:
            store.put_array(shard.key, train[start : start + shard.rows])
            start += shard.rows
        test_block = shared.held_out(run_id, "test", test.shape[0])
        store.put_array(test_block.key, test)
        validation_block = None
        if validation is not None:
            validation_block = shared.held_out(run_id, "validation", validation.shape[0])
            store.put_array(validation_block.key, validation)
        return shared.finish(
            store,
            request,
            run_id,
            meta,
            prep,
            shards,
            test_block,
            validation_block,
            dropped,
            dropped=dropped_sensitive,
            problem=problem.to_dict(),
        )
    except Exception:
        store.delete(shared.written_keys(run_id, shards))
        raise
