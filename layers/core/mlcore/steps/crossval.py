"""The sync engine's rounds in one process, and the cross-validated choice of a tuning job's best trial.

``run_in_process`` is the training state machine's sync loop (``training.init_run``, then rounds of
``training.compute_gradient`` per shard and ``training.aggregate``, early stopping on a validation block) run in one
process on arrays held in memory: the same steps, without Step Functions or Lambda.

On a small data set a tuning job's validation split is a few dozen rows, too few to tell its best trials apart:
``cross_validate`` re-scores the finalists (the best sync trials) by K-fold cross-validation on the job's training and
validation rows (never its test rows), each fold trained by ``run_in_process`` in a ``MemoryStore`` (nothing is
written to the bucket), and ``mlcore.math.tuning.select_cross_validated`` picks among them.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from mlcore.infra import layout
from mlcore.infra.storage import AlreadyExists, MemoryStore, ObjectStore
from mlcore.math import models
from mlcore.math import tuning as asha
from mlcore.math.metrics import holdout_losses, mean_and_se
from mlcore.steps import training
from mlcore.steps.schemas import AggregateTask, Block, Hyperparameters, InitTask, RoundState, Shard, WorkerTask

FOLDS = 5
FINALISTS = 4  # the best sync trials of the leaderboard that cross-validation re-scores
# above this many training + validation rows the validation split has a thousand rows or more and tells trials apart,
# and the one-split rule stands. Bounded by the TuningSteps function's 900 s: 4 finalists x 5 folds of the default
# space's networks ([16], [64], [64, 64] and a linear model, 135 epochs) on 5,000 rows took 146 s on one core of the
# development machine (the networks' gradient sums are the cost, linear in rows); 20,000 rows would not fit
CV_MAX_ROWS = 5_000
# a fold run starts only while the invocation has this many seconds left beyond the longest fold run so far; else
# the cross-validation gives up (OutOfTime) and the validation split's rule chooses (a larger network than the
# default space's can take longer than the function's time limit)
RESERVE_SECONDS = 60.0


class OutOfTime(Exception):
    """The cross-validation would not finish within the invocation's time: its choice is not made."""


def run_in_process(
    store: ObjectStore,
    run_id: str,
    train_shards: list[np.ndarray],
    validation: np.ndarray | None,
    n_outputs: int,
    hp: Hyperparameters,
    seed: int,
) -> tuple[np.ndarray, int, str]:
    """A sync run of the real worker and aggregator steps on the float32 ``[X | y]`` shards ``train_shards`` held in
    memory (each worker handed its shard as a warm container holds it), against ``store``: ``(theta, rounds, stop
    reason)``, ``theta`` the flat parameters the run ends with (with ``validation`` and ``hp.patience``, those of its
    best validation round once it stops early, as a trial's run). Raises ``training.TrainingDiverged`` as a run
    does."""
    init = InitTask(
        run_id=run_id, n_features=train_shards[0].shape[1] - 1, n_outputs=n_outputs, seed=seed, hyperparameters=hp
    )
    state: RoundState = training.init_run(store, init)
    block = None
    if validation is not None:
        digest = hashlib.sha256(np.ascontiguousarray(validation).tobytes()).hexdigest()[:16]
        key = layout.in_process_validation_key(run_id, digest)
        with contextlib.suppress(AlreadyExists):  # the same rows under the same digest
            store.put_array(key, validation, if_absent=True)
        block = Block(key=key, rows=len(validation))
    n_shards = len(train_shards)
    while not state.done:
        results = [
            training.compute_gradient(
                store,
                WorkerTask(
                    run_id=run_id,
                    round=state.round,
                    params_key=state.params_key,
                    model=hp.model,
                    shard=Shard(index=i, key=layout.shard_key(run_id, i), rows=len(rows), n_shards=n_shards),
                    hyperparameters=hp,
                ),
                shard=rows,
            )
            for i, rows in enumerate(train_shards)
        ]
        task = AggregateTask(
            run_id=run_id,
            round=state.round,
            params_key=state.params_key,
            hyperparameters=hp,
            results=list(results),
            validation=block,
        )
        state = training.aggregate(store, task)
    theta = store.get_arrays(state.params_key)["theta"].ravel()
    return theta, state.round, str(state.reason)


def pooled_row_count(data: Mapping[str, Any]) -> int | None:
    """The training + validation rows of a job's prepared data (the Preprocess result), None without a
    validation split."""
    if not data.get("validation"):
        return None
    return sum(int(s["rows"]) for s in data.get("shards") or []) + int(data["validation"]["rows"])


def pooled_rows(store: ObjectStore, data: Mapping[str, Any]) -> np.ndarray:
    """The job's training shards and validation block as one float32 ``[X | y]`` array (never its test rows)."""
    parts = [store.get_array(s["key"]) for s in data["shards"]]
    parts.append(store.get_array(data["validation"]["key"]))
    return np.concatenate(parts).astype(np.float32, copy=False)


def finalists(board: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """``FINALISTS`` of the leaderboard's (best first) sync trials with a finite validation loss, in its order: the
    best of each model family, then the best others. Every family competes, so the one-standard-error rule can
    prefer the linear model even when networks fill the top of the board (breast cancer: the best logistic trial
    was 6th on the validation split). Async trials are not re-run (their updates depend on the workers' timing)."""
    found = [
        e
        for e in board
        if e["mode"] == "sync" and e["validation_loss"] is not None and math.isfinite(float(e["validation_loss"]))
    ]
    firsts: dict[str, Mapping[str, Any]] = {}
    for e in found:
        firsts.setdefault(str(e["hyperparameters"]["model"]), e)
    chosen = {int(e["trial"]) for e in firsts.values()}
    for e in found:
        if len(chosen) >= FINALISTS:
            break
        chosen.add(int(e["trial"]))
    return [e for e in found if int(e["trial"]) in chosen]


def applies(data: Mapping[str, Any], board: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the best trial is chosen by cross-validation: a validation split, at most ``CV_MAX_ROWS`` training +
    validation rows (and enough for ``FOLDS`` folds), and at least two sync finalists."""
    rows = pooled_row_count(data)
    return rows is not None and 2 * FOLDS <= rows <= CV_MAX_ROWS and len(finalists(board)) >= 2


def cross_validate(
    rows: np.ndarray,
    trials: Sequence[tuple[int, Hyperparameters]],
    *,
    n_classes: int,
    n_shards: int,
    validation_fraction: float,
    seed: int,
    run_prefix: str,
    seconds_left: Callable[[], float] | None = None,
) -> list[dict[str, Any]]:
    """Each trial's ``FOLDS``-fold cross-validated loss on ``rows`` (``[X | y]``): the same seeded folds for every
    trial; in each fold the training part is split again (seeded, ``validation_fraction``) into the rows trained on
    (``n_shards`` shards) and a validation block for early stopping, as the trial's own run; trained with the trial's
    hyperparameters (its ``max_epochs`` the budget of the rung it reached) by ``run_in_process`` in a fresh
    ``MemoryStore``; its predictions kept for the fold's rows. Per trial: ``cv_loss`` (the mean over all rows of the
    out-of-fold losses, ``mlcore.math.metrics.holdout_losses``), ``cv_loss_se`` (their standard deviation / sqrt(rows))
    and ``cv_metric`` (R² or accuracy of the out-of-fold predictions). A trial whose fold run diverges gets an
    infinite loss (None for the metric). With ``seconds_left`` (the invocation's remaining time), raises
    ``OutOfTime`` before a fold run that might not finish (``RESERVE_SECONDS``)."""
    n = len(rows)
    y = rows[:, -1].astype(np.float64)
    fold_of = asha.fold_assignment(n, FOLDS, seed)
    splits = []
    for fold in range(FOLDS):
        inside, outside = np.flatnonzero(fold_of != fold), np.flatnonzero(fold_of == fold)
        fit, stop = asha.holdout_split(len(inside), validation_fraction, seed + 1 + fold)
        splits.append((inside[fit], inside[stop], outside))
    scored = []
    longest = 0.0  # seconds of the longest fold run so far
    for trial, hp in trials:
        n_outputs = models.n_outputs(hp.model, n_classes)
        shape = models.make_layout(hp.model, rows.shape[1] - 1, n_outputs, hp.hidden_layers)
        net = training.network(hp.model, shape, hp)
        output = np.zeros((n, n_classes) if net.is_classifier else n)
        try:
            for fold, (fit, stop, outside) in enumerate(splits):
                if seconds_left is not None and seconds_left() < RESERVE_SECONDS + longest:
                    raise OutOfTime(
                        f"{seconds_left():.0f} s left of the invocation, fold runs take up to {longest:.0f} s"
                    )
                started = time.perf_counter()
                shards = np.array_split(rows[fit], max(1, min(n_shards, len(fit))))
                run_id = f"{run_prefix}-cv-trial-{trial}-fold-{fold}"
                theta, _, _ = run_in_process(MemoryStore(), run_id, shards, rows[stop], n_outputs, hp, seed)
                X = rows[outside, :-1].astype(np.float64)
                with np.errstate(all="ignore"):
                    output[outside] = net.predict_proba(theta, X) if net.is_classifier else net.predict(theta, X)
                longest = max(longest, time.perf_counter() - started)
        except training.TrainingDiverged:
            scored.append({"trial": trial, "cv_loss": math.inf, "cv_loss_se": math.inf, "cv_metric": None})
            continue
        losses, metric = holdout_losses(y, output, net.is_classifier)
        loss, se = mean_and_se(losses)
        finite = math.isfinite(loss) and math.isfinite(se)
        scored.append(
            {
                "trial": trial,
                "cv_loss": loss if finite else math.inf,
                "cv_loss_se": se if finite else math.inf,
                "cv_metric": metric if finite and math.isfinite(metric) else None,
            }
        )
    return scored
