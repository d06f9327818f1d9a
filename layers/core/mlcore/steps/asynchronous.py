"""Asynchronous training: no barrier per step.

The run's parameters live in one S3 object, the *head*
(``runs/<run>/async/head.npz``: ``theta``, the optimizer state, a ``version``
counter and, with ``averaging``, the running ``average`` of the parameters).
A worker reads the head, computes a (minibatch) gradient on its shard, and
applies it with a compare-and-swap: the new head is written with
``If-Match: <ETag of the head it read>``. If another worker got there first,
the write fails (nothing is applied), the worker re-reads the head and applies
its gradient to the newer parameters, as long as the gradient's staleness
(head version minus the version it was computed at) is at most
``max_staleness``; a staler gradient is recomputed at the latest parameters.
So every accepted submission is applied exactly once, and none is lost.

Minibatch SGD's last iterate keeps bouncing around the optimum by an amount that
grows with the learning rate and the gradients' noise (and staleness adds to it).
With ``averaging`` (the default) every write also folds the new parameters into
the average (``optimizers.iterate_average``: Polyak-Ruppert averaging with
polynomial decay), in the same compare-and-swap, so the average too counts every
accepted update exactly once; the average is the run's model.

Step Functions runs a Map of workers, each submitting ``steps_per_invocation``
updates per call; after each pass the aggregator records progress (loss,
staleness, conflicts), snapshots the head as ``runs/<run>/params/round-NNNNN.npz``
(``theta``: the model, i.e. the average with ``averaging``; ``iterate``: the last
parameters) and decides whether to stop. Evaluate registers that ``theta``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mlcore.infra import layout
from mlcore.infra.storage import Conflict, ObjectStore
from mlcore.math import models, optimizers
from mlcore.steps.schemas import (
    AsyncProgressTask,
    AsyncWorkerResult,
    AsyncWorkerTask,
    Hyperparameters,
    InitTask,
    RoundState,
)
from mlcore.steps.training import (
    check_finite,
    diverged,
    divergence,
    init_run,
    initial_grad_norm,
    initial_loss,
    learning_rate,
    load_shard,
    network,
    params_arrays,
    read_params,
    record_round,
    recorded_round,
    shard_cache_fields,
    should_stop,
    usable_results,
    write_once,
)

GradientFn = Callable[[np.ndarray], tuple[float, np.ndarray]]
MAX_CONFLICTS = 1000  # per submission: beyond this the call fails (and Step Functions retries it)


@dataclass(frozen=True)
class Head:
    theta: np.ndarray  # as stored (``training.params_arrays``): the parameters after ``version`` updates
    state: dict[str, np.ndarray]  # the optimizer's
    version: int
    etag: str
    average: np.ndarray | None = None  # with ``averaging``: the running average of the parameters
    layout: np.ndarray | None = None  # an MLP's layout (a linear model's is its matrix's shape)

    @property
    def shapes(self) -> models.Layout:
        return models.layout_of(self.layout if self.layout is not None else [self.theta.shape])

    @property
    def model(self) -> np.ndarray:
        """The parameters the run serves: the average with ``averaging``, else the last iterate."""
        return self.theta if self.average is None else self.average


@dataclass(frozen=True)
class Applied:
    """One accepted submission."""

    version: int  # the version it created
    staleness: int  # versions between the parameters it was computed at and those it was applied to
    recomputed: int
    conflicts: int
    loss: float
    grad_norm: float


def read_head(store: ObjectStore, key: str) -> Head:
    arrays, etag = store.get_arrays_with_etag(key)
    theta = arrays.pop("theta")
    version = int(arrays.pop("version"))
    average = arrays.pop("average", None)
    shapes = arrays.pop("layout", None)
    return Head(theta=theta, state=arrays, version=version, etag=etag, average=average, layout=shapes)


def init_async_run(store: ObjectStore, task: InitTask) -> RoundState:
    """Round 0 as in sync mode, plus the head at version 0 (a replay leaves both as they were)."""
    state = init_run(store, task)
    theta, shapes, opt_state = read_params(store, state.params_key)
    stored = params_arrays(theta, shapes, {})
    average = {"average": stored["theta"]} if task.hyperparameters.averaging else {}
    head = {**stored, "version": np.array(0, dtype=np.int64), **average, **opt_state}
    write_once(store, layout.async_head_key(task.run_id), head)
    return state


def submit(
    store: ObjectStore, key: str, gradient: GradientFn, hp: Hyperparameters, *, compare_and_swap: bool = True
) -> Applied:
    """Compute ``gradient`` at the latest parameters and apply it exactly once.

    ``gradient(theta)`` returns ``(loss, flat gradient)``. With
    ``compare_and_swap=False`` the write is unconditional (last writer wins):
    the baseline that loses concurrent updates, kept for comparison.
    """
    head = read_head(store, key)
    loss, grad = gradient(head.theta)
    computed_at, recomputed, conflicts = head.version, 0, 0
    while True:
        staleness = head.version - computed_at
        if staleness > hp.max_staleness:
            loss, grad = gradient(head.theta)
            computed_at, staleness, recomputed = head.version, 0, recomputed + 1
        check_finite(f"the loss or gradient at version {head.version}", loss, grad)
        theta, state = optimizers.step(
            hp.optimizer,
            head.theta.ravel(),
            grad,
            head.state,
            learning_rate=learning_rate(hp, head.version),
            t=head.version + 1,
            momentum=hp.momentum,
        )
        new_theta = theta.reshape(head.theta.shape)
        check_finite(f"the parameters of version {head.version + 1}", new_theta)
        arrays = {"theta": new_theta, "version": np.array(head.version + 1, dtype=np.int64), **state}
        if head.layout is not None:
            arrays["layout"] = head.layout
        if hp.averaging:  # in the same write as the step: the average counts every applied update once
            arrays["average"] = optimizers.iterate_average(
                head.average,
                new_theta,
                head.version + 1,
                burn_in=hp.averaging_burn_in,
                power=hp.averaging_power,
            )
        try:
            store.put_arrays(key, arrays, if_match=head.etag if compare_and_swap else None)
        except Conflict:
            conflicts += 1
            if conflicts > MAX_CONFLICTS:
                raise
            head = read_head(store, key)
            continue
        return Applied(
            version=head.version + 1,
            staleness=staleness,
            recomputed=recomputed,
            conflicts=conflicts,
            loss=float(loss),
            grad_norm=float(np.linalg.norm(grad)),
        )


def run_async_steps(store: ObjectStore, task: AsyncWorkerTask, shard: np.ndarray | None = None) -> AsyncWorkerResult:
    """One worker call: ``steps_per_invocation`` submissions of minibatch gradients of its shard."""
    hp = task.hyperparameters
    read = load_shard(store, task.shard.key) if shard is None else None
    data = read.array if read is not None else shard
    assert data is not None  # a shard passed in, or read
    X, y = data[:, :-1], data[:, -1]
    rng = np.random.default_rng([task.shard.index, task.round])
    key = layout.async_head_key(task.run_id)
    # a linear model's layout is its matrix's shape; an MLP's is read once from the head
    mlp_net = network(hp.model, read_head(store, key).shapes, hp) if models.is_mlp(hp.model) else None
    applied: list[Applied] = []
    for _ in range(hp.steps_per_invocation):
        rows = optimizers.minibatch(X.shape[0], hp.batch_size, rng)
        Xb, yb = X[rows], y[rows]

        def gradient(theta: np.ndarray, Xb=Xb, yb=yb) -> tuple[float, np.ndarray]:
            net = mlp_net or network(hp.model, (theta.shape,), hp)
            net.check_features(Xb.shape[1], f"shard {task.shard.key}")
            with np.errstate(over="ignore", invalid="ignore"):  # a non-finite result is checked by submit
                loss_sum, grad_sum = net.loss_grad_sums(theta.ravel(), Xb, yb)
            return net.regularized_objective(loss_sum, grad_sum, len(yb), theta.ravel(), hp.l2)

        applied.append(submit(store, key, gradient, hp))
    return AsyncWorkerResult(
        shard=task.shard.index,
        round=task.round,
        rows=int(X.shape[0]),
        submitted=len(applied),
        batch_loss_sum=sum(a.loss for a in applied),
        grad_norm=applied[-1].grad_norm,
        staleness_max=max(a.staleness for a in applied),
        staleness_sum=sum(a.staleness for a in applied),
        recomputed=sum(a.recomputed for a in applied),
        conflicts=sum(a.conflicts for a in applied),
        versions=[a.version for a in applied],
        **shard_cache_fields(read),
    )


def progress(store: ObjectStore, task: AsyncProgressTask) -> RoundState:
    """After a pass of the workers: record it, snapshot the head as round ``r + 1``, decide whether to stop.

    The snapshot's ``theta`` is the head's model (the average with ``averaging``), what Evaluate
    registers; ``iterate`` holds the last parameters.

    Idempotent per (run, round) like ``training.aggregate``. Results of another
    round (a late or duplicated delivery) are ignored and recorded.
    """
    if (replayed := recorded_round(store, task.run_id, task.round)) is not None:
        return replayed
    started = time.perf_counter()
    hp = task.hyperparameters
    returned, ignored, failed = usable_results(task.results, task.round, hp)
    results = list({r.shard: r for r in returned}.values())
    submitted = sum(r.submitted for r in results)
    if submitted == 0:
        raise ValueError(f"no updates were submitted in round {task.round}")
    loss = sum(r.batch_loss_sum for r in results) / submitted
    grad_norm = float(np.mean([r.grad_norm for r in results if r.submitted]))
    if diverged(loss, grad_norm, loss if task.round == 0 else initial_loss(store, task.run_id)):
        raise divergence(task.round, hp)
    initial = grad_norm if task.round == 0 else initial_grad_norm(store, task.run_id)
    reason = should_stop(hp, task.round, grad_norm, loss, initial)
    head = read_head(store, layout.async_head_key(task.run_id))
    next_key = layout.params_key(task.run_id, task.round + 1)
    version = np.array(head.version, dtype=np.int64)
    snapshot = {"theta": head.model, "iterate": head.theta, "version": version, **head.state}
    if head.layout is not None:
        snapshot["layout"] = head.layout
    write_once(store, next_key, snapshot)
    return record_round(
        store,
        task,
        next_key,
        reason,
        loss,
        grad_norm,
        {
            "mode": "async",
            "rows": sum(r.rows for r in results),
            "shards": len(results),
            "version": head.version,
            "updates": submitted,
            "averaged_updates": max(head.version - hp.averaging_burn_in, 0) if hp.averaging else 0,
            "staleness_max": max(r.staleness_max for r in results),
            "staleness_mean": sum(r.staleness_sum for r in results) / submitted,
            "recomputed": sum(r.recomputed for r in results),
            "conflicts": sum(r.conflicts for r in results),
            "ignored_shards": ignored,
            "failed_shards": failed,
            "seconds": time.perf_counter() - started,
        },
    )
