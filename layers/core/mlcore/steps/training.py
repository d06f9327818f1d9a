"""The training workflow's steps: init, per-shard gradients, aggregation. Storage through the ObjectStore port."""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from mlcore.infra import layout
from mlcore.infra.errors import InvalidInput, MLError
from mlcore.infra.storage import AlreadyExists, ArrayCache, CachedRead, NotFound, ObjectStore
from mlcore.math import linear, models, optimizers, second_order
from mlcore.math.mlp import Layout
from mlcore.steps.schemas import (
    AggregateTask,
    FailedShard,
    Hyperparameters,
    InitTask,
    RoundState,
    WorkerResult,
    WorkerTask,
    inline_result_bytes,
    pack_vector,
    packed_size,
    unpack_vector,
)


def handover(round_: int, done: bool, rounds_per_execution: int | None) -> bool:
    """Whether the execution that reached ``round_`` hands the run over to a new execution."""
    return not done and rounds_per_execution is not None and round_ % rounds_per_execution == 0


DIVERGENCE_FACTOR = 1e6  # a loss above this many times the run's round-0 loss is divergence


class TrainingDiverged(MLError, FloatingPointError):
    """The run's loss or gradient stopped being finite, or its loss exploded (see ``diverged``)."""


class RoundFailed(MLError):
    """More shards of a round failed than the run tolerates, or none returned (the run's failure reason)."""


def diverged(loss: float, grad_norm: float, initial_loss: float | None) -> bool:
    """The divergence rule: a non-finite loss or gradient, or a loss above DIVERGENCE_FACTOR x round 0's."""
    if not (np.isfinite(loss) and np.isfinite(grad_norm)):
        return True
    return initial_loss is not None and initial_loss > 0 and loss > DIVERGENCE_FACTOR * initial_loss


def divergence(round_: int, hp: Hyperparameters) -> TrainingDiverged:
    """The error a diverged run fails with (its failure reason)."""
    return TrainingDiverged(f"diverged at round {round_}; lower learning_rate (was {hp.learning_rate:g})")


def check_finite(what: str, *values: float | np.ndarray) -> None:
    """Raise TrainingDiverged (the aggregator names the round) when a worker's loss, gradient or update is not
    finite: such a result is no use, and NaN or Infinity cannot travel in a Step Functions payload."""
    if not all(np.all(np.isfinite(v)) for v in values):
        raise TrainingDiverged(f"{what} is not finite: the run diverged")


DEFAULT_CACHE_BYTES = 256 * 2**20  # until a handler sets its function's bound (Settings.shard_cache_bytes)
SHARD_CACHE = ArrayCache(DEFAULT_CACHE_BYTES)  # per warm container: the shards its workers read


def load_shard(store: ObjectStore, key: str) -> CachedRead:
    """A worker's shard, kept across invocations of a warm container and re-read only if its ETag changed."""
    return SHARD_CACHE.get_array(store, key)


def shard_cache_fields(read: CachedRead | None) -> dict[str, Any]:
    """A worker result's account of its shard read (none when the shard was passed in, not read)."""
    if read is None:
        return {}
    return {"shard_cache_hit": read.hit, "shard_bytes_downloaded": read.downloaded}


def shard_cache_summary(store: ObjectStore, task) -> dict[str, Any]:
    """The run's shard-cache reads up to and including round ``task.round``: the totals in round ``r - 1``'s
    summary plus this round's worker results (each shard counted once; failed shards read nothing counted)."""
    previous: dict[str, Any] = {}
    if task.round > 0:
        with contextlib.suppress(NotFound):
            previous = store.get_json(layout.round_key(task.run_id, task.round - 1)).get("shard_cache") or {}
    reads = {
        r.shard: r for r in task.results if r.round == task.round and getattr(r, "shard_cache_hit", None) is not None
    }
    hits = previous.get("hits", 0) + sum(r.shard_cache_hit for r in reads.values())
    misses = previous.get("misses", 0) + sum(not r.shard_cache_hit for r in reads.values())
    downloaded = previous.get("bytes_downloaded", 0) + sum(r.shard_bytes_downloaded for r in reads.values())
    rate = hits / (hits + misses) if hits + misses else None
    return {"hits": hits, "misses": misses, "hit_rate": rate, "bytes_downloaded": downloaded}


def load_params(store: ObjectStore, key: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The stored ``theta`` (a linear model's ``(n_features + 1, k)`` matrix, an MLP's flat vector) and the
    optimizer's or solver's state (without the layout)."""
    arrays = store.get_arrays(key)
    theta = arrays.pop("theta")
    arrays.pop("layout", None)
    return theta, arrays


def read_params(store: ObjectStore, key: str) -> tuple[np.ndarray, Layout, dict[str, np.ndarray]]:
    """The flat parameter vector, its layout (``models``) and the optimizer's or solver's state."""
    arrays = store.get_arrays(key)
    theta = arrays.pop("theta")
    stored = arrays.pop("layout", None)
    return theta.ravel(), models.layout_of(stored if stored is not None else [theta.shape]), arrays


def params_arrays(theta: np.ndarray, layout: Layout, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What a parameters object stores: a one-layer (linear) model its ``(n_features + 1, k)`` matrix, whose
    shape is its layout; a network its flat vector and its ``layout`` (an ``(n_layers, 2)`` integer array)."""
    if len(layout) == 1:
        return {"theta": theta.reshape(layout[0]), **state}
    return {"theta": theta.ravel(), "layout": np.asarray(layout, dtype=np.int64), **state}


def network(model: str, layout: Layout, hp: Hyperparameters | None) -> models.Net:
    """The model a task's parameters of ``layout`` describe."""
    return models.Net(model, layout, "relu" if hp is None else hp.activation)


def init_run(store: ObjectStore, task: InitTask) -> RoundState:
    """Round 0: initial parameters (zeros for a linear model, seeded He/Glorot weights for an MLP) and a fresh
    optimizer state (written once; a replay is a no-op)."""
    hp = task.hyperparameters
    net = network(hp.model, models.make_layout(hp.model, task.n_features, task.n_outputs, hp.hidden_layers), hp)
    if models.is_mlp(hp.model) and net.n_params > models.MLP_MAX_PARAMS:
        raise InvalidInput(
            f"hidden_layers {list(hp.hidden_layers or models.DEFAULT_HIDDEN_LAYERS)} make a network of "
            f"{net.n_params} parameters with {task.n_features} features after preprocessing and {task.n_outputs} "
            f"outputs, over the limit of {models.MLP_MAX_PARAMS}; use smaller hidden_layers"
        )
    shape = (task.n_features + 1, task.n_outputs)
    if hp.solver == "exact" and task.n_features > linear.EXACT_MAX_FEATURES:
        raise InvalidInput(
            f"solver 'exact' solves at most {linear.EXACT_MAX_FEATURES} features, the data has {task.n_features} "
            "after preprocessing; use solver 'lbfgs' or 'auto'"
        )
    if hp.solver == "newton" and shape[0] * shape[1] > second_order.NEWTON_MAX_PARAMS:
        raise InvalidInput(
            f"solver 'newton' fits at most {second_order.NEWTON_MAX_PARAMS} parameters, the model has "
            f"{shape[0] * shape[1]} ({task.n_features} features after preprocessing + 1, x {task.n_outputs} "
            "outputs); use solver 'lbfgs' or 'auto'"
        )
    key = layout.params_key(task.run_id, 0)
    if hp.resolved_solver(task.n_features, task.n_outputs, task.mode) in ("newton", "lbfgs"):
        state = second_order.init_state(net.n_params)
    else:
        state = optimizers.init_state(hp.optimizer, net.n_params)
    arrays = params_arrays(net.init(task.seed), net.layout, state)
    write_once(store, key, arrays)  # a replayed init leaves round 0 as it was
    if task.context is not None:
        with contextlib.suppress(AlreadyExists):
            store.put_json(layout.context_key(task.run_id), task.context, if_absent=True)
    return RoundState(run_id=task.run_id, round=0, params_key=key)


def compute_gradient(store: ObjectStore, task: WorkerTask, shard: np.ndarray | None = None) -> WorkerResult:
    """Loss and gradient sums of one shard (``[X | y]`` float32) at the round's parameters (the flat vector of
    ``models``' layout)."""
    theta, shapes, _ = read_params(store, task.params_key)
    read = load_shard(store, task.shard.key) if shard is None else None
    data = read.array if read is not None else shard
    assert data is not None  # a shard passed in, or read
    X, y = data[:, :-1], data[:, -1]
    hp = task.hyperparameters
    net = network(task.model, shapes, hp)
    net.check_features(X.shape[1], f"shard {task.shard.key}")
    loss_sum, result, what = shard_result(task.model, hp, theta, X, y, net)
    check_finite(f"the {what} of shard {task.shard.index} in round {task.round}", loss_sum, result)
    change = None
    if hp is not None and hp.worker_mode == "local_steps":  # never with exact (Hyperparameters refuses it)
        with np.errstate(over="ignore", invalid="ignore"):
            change = local_steps(hp, theta, X, y, task.shard.index, task.round, net) - theta
        check_finite(f"the local update of shard {task.shard.index} in round {task.round}", change)
    room = inline_result_bytes(task.shard.n_shards)  # the shard's share of the round's inline budget
    gradient, gradient_key, room = deliver(
        store, layout.gradient_key(task.run_id, task.round, task.shard.index), result, room
    )
    update = update_key = None
    if change is not None:
        key = layout.local_update_key(task.run_id, task.round, task.shard.index)
        update, update_key, _ = deliver(store, key, change, room)
    return WorkerResult(
        shard=task.shard.index,
        round=task.round,
        rows=int(X.shape[0]),
        loss_sum=loss_sum,
        gradient=gradient,
        gradient_key=gradient_key,
        update=update,
        update_key=update_key,
        **shard_cache_fields(read),
    )


def deliver(store: ObjectStore, key: str, values: np.ndarray, room: int) -> tuple[str | None, str | None, int]:
    """Hand over a result vector: inline (its ``pack_vector`` text) when that takes at most ``room`` bytes, else
    written to S3 under ``key``. Returns (the text or None, the key or None, the room left)."""
    size = packed_size(values.size)
    if size <= room:
        return pack_vector(values), None, room - size
    store.put_array(key, values)
    return None, key, room


def shard_result(
    model: str,
    hp: Hyperparameters | None,
    theta: np.ndarray,
    X: np.ndarray,
    y: np.ndarray,
    net: models.Net | None = None,
) -> tuple[float, np.ndarray, str]:
    """A shard's loss sum and the vector it returns for the run's solver, and what that vector is:
    sgd and lbfgs the gradient sum; exact the shard's sufficient statistics; newton the gradient sum followed by
    the upper triangle of the Hessian sum. Without ``net``, ``theta`` is a linear model's matrix."""
    net = net or network(model, (theta.shape,), hp)
    solver = "sgd" if hp is None else hp.resolved_solver(X.shape[1], net.n_outputs)
    with np.errstate(over="ignore", invalid="ignore"):  # a diverged run is reported by the caller, not as warnings
        loss_sum, grad = net.loss_grad_sums(theta.ravel(), X, y)
        if solver == "exact":
            return loss_sum, linear.sufficient_statistics(X, y), "statistics"
        if solver == "newton":
            hessian = second_order.pack_symmetric(linear.hessian_sums(model, theta.ravel(), X))
            return loss_sum, np.concatenate([grad, hessian]), "gradient or Hessian"
    return loss_sum, grad, "loss or gradient"


def local_steps(
    hp: Hyperparameters,
    theta: np.ndarray,
    X: np.ndarray,
    y: np.ndarray,
    shard: int,
    round_: int,
    net: models.Net | None = None,
) -> np.ndarray:
    """``steps_per_invocation`` plain SGD steps on minibatches of one shard (pure; seeded by shard and round).
    Without ``net``, ``theta`` is a linear model's matrix."""
    net = net or network(hp.model, (theta.shape,), hp)
    local = theta.ravel().copy()
    rng = np.random.default_rng([shard, round_])
    for _ in range(hp.steps_per_invocation):
        rows = optimizers.minibatch(X.shape[0], hp.batch_size, rng)
        Xb, yb = X[rows], y[rows]
        loss_sum, grad_sum = net.loss_grad_sums(local, Xb, yb)
        _, grad = net.regularized_objective(loss_sum, grad_sum, len(yb), local, hp.l2)
        local = local - learning_rate(hp, round_) * grad
    return local


def average_gradients(store: ObjectStore, results: list[WorkerResult]) -> tuple[float, np.ndarray, int]:
    """Row-weighted sums across shards (each shard counted once, whatever the delivery order)."""
    by_shard = {r.shard: r for r in results}
    rows = sum(r.rows for r in by_shard.values())
    loss_sum = sum(r.loss_sum for r in by_shard.values())
    unique = sorted(by_shard.values(), key=lambda r: r.shard)
    grad_sum = sum(read_vectors(store, [(r.gradient, r.gradient_key) for r in unique]))
    return loss_sum, np.asarray(grad_sum, dtype=np.float64), rows


RESULT_READERS = 8  # concurrent GETs of the results that came through S3


def read_vectors(store: ObjectStore, deliveries: list[tuple[str | None, str | None]]) -> list[np.ndarray]:
    """The result vectors of (inline text, S3 key) pairs, in order: decoded where they came inline, the others
    read from S3 concurrently (RESULT_READERS at a time)."""
    keys = [key for text, key in deliveries if text is None and key is not None]
    fetched: dict[str, np.ndarray] = {}
    if keys:
        with ThreadPoolExecutor(max_workers=min(RESULT_READERS, len(keys))) as pool:
            fetched = dict(zip(keys, pool.map(store.get_array, keys), strict=True))
    return [unpack_vector(text) if text is not None else fetched[str(key)] for text, key in deliveries]


def learning_rate(hp: Hyperparameters, update: int) -> float:
    """The scheduled learning rate of update number ``update`` (0-based)."""
    return optimizers.scheduled_rate(
        hp.lr_schedule, hp.learning_rate, update, decay_rate=hp.lr_decay_rate, decay_steps=hp.lr_decay_steps
    )


def usable_results(results: list, round_: int, hp: Hyperparameters) -> tuple[list, list[int], list[int]]:
    """The results of this round, the shards whose results belong to another round (late or duplicated
    deliveries: ignored), and the shards that failed after their retries.

    Raises TrainingDiverged when a shard failed because the run diverged; else raises when more shards failed
    than ``tolerated_failure_percentage`` allows, or none returned.
    """
    ignored = sorted({r.shard for r in results if r.round != round_})
    current = [r for r in results if r.round == round_]
    failures = {r.shard: r.error for r in current if isinstance(r, FailedShard)}
    if TrainingDiverged.__name__ in failures.values():
        raise divergence(round_, hp)
    failed = sorted(failures)
    returned = [r for r in current if not isinstance(r, FailedShard) and r.shard not in failed]
    shards = {r.shard for r in current}
    if failed and (not returned or 100.0 * len(failed) / len(shards) > hp.tolerated_failure_percentage):
        raise RoundFailed(
            f"shards {failed} of {len(shards)} failed in round {round_} "
            f"({', '.join(sorted({str(e) for e in failures.values()}))}), over the tolerated "
            f"{hp.tolerated_failure_percentage:g}%"
        )
    if not returned:
        raise RoundFailed(f"no results of round {round_} to aggregate")
    return returned, ignored, failed


def should_stop(
    hp: Hyperparameters, round_: int, grad_norm: float, loss: float, initial_grad_norm: float
) -> str | None:
    """Why to stop after this round, or None.

    Convergence is scale-free: the gradient norm has fallen to ``tolerance``
    times its value at round 0 (so the target's units do not matter).
    """
    if not (np.isfinite(loss) and np.isfinite(grad_norm)):
        return "diverged"
    if grad_norm <= hp.tolerance * initial_grad_norm:
        return "converged"
    if round_ + 1 >= hp.max_epochs:
        return "max_epochs"
    return None


def aggregate(store: ObjectStore, task: AggregateTask) -> RoundState:
    """Average the round's gradients, take one optimizer step, store round ``r + 1``.

    Idempotent per (run, round): the summary of an applied round is stored
    with a create-only write, and a replay returns that summary without
    stepping again.
    """
    if (replayed := recorded_round(store, task.run_id, task.round)) is not None:
        return replayed
    started = time.perf_counter()
    hp = task.hyperparameters
    results, ignored, failed = usable_results(task.results, task.round, hp)
    flat, shapes, opt_state = read_params(store, task.params_key)
    net = network(hp.model, shapes, hp)
    solver = hp.resolved_solver(net.n_features, net.n_outputs)
    if solver == "exact":
        theta = flat.reshape(shapes[0])
        return solve_exactly(store, task, results, theta, opt_state, started, ignored, failed)
    if solver in ("newton", "lbfgs"):
        return search_round(store, task, solver, results, net, flat, opt_state, started, ignored, failed)
    loss_sum, grad_sum, rows = average_gradients(store, results)
    loss, grad = net.regularized_objective(loss_sum, grad_sum, rows, flat, hp.l2)
    grad_norm = float(np.linalg.norm(grad))
    if diverged(loss, grad_norm, loss if task.round == 0 else initial_loss(store, task.run_id)):
        raise divergence(task.round, hp)
    initial = grad_norm if task.round == 0 else initial_grad_norm(store, task.run_id)
    if hp.worker_mode == "local_steps":  # average of the shards' local changes, weighted by rows
        unique = sorted({r.shard: r for r in results}.values(), key=lambda r: r.shard)
        missing = [r.shard for r in unique if r.update is None and not r.update_key]
        if missing:
            raise ValueError(f"results for shards {missing} carry no local update (worker_mode local_steps)")
        changes = read_vectors(store, [(r.update, r.update_key) for r in unique])
        update = sum(change * r.rows for change, r in zip(changes, unique, strict=True)) / rows
        new_theta, new_state = flat + update, opt_state
    else:
        new_theta, new_state = optimizers.step(
            hp.optimizer,
            flat,
            grad,
            opt_state,
            learning_rate=learning_rate(hp, task.round),
            t=task.round + 1,
            momentum=hp.momentum,
        )
    next_key = layout.params_key(task.run_id, task.round + 1)
    if not np.all(np.isfinite(new_theta)):  # the step itself overflowed
        raise divergence(task.round, hp)
    reason, validation_loss, best = early_stopping(
        store, task, net, flat, should_stop(hp, task.round, grad_norm, loss, initial)
    )
    write_once(store, next_key, params_arrays(new_theta, shapes, new_state))
    if reason == "early_stopping" and best is not None:  # the model is the one with the best validation loss
        next_key = layout.params_key(task.run_id, best["round"])
    return record_round(
        store,
        task,
        next_key,
        reason,
        loss,
        grad_norm,
        _summary(results, rows, ignored, failed, validation_loss, best, started),
    )


def solve_exactly(
    store: ObjectStore,
    task: AggregateTask,
    results: list[WorkerResult],
    theta: np.ndarray,
    opt_state: dict[str, np.ndarray],
    started: float,
    ignored: list[int],
    failed: list[int],
) -> RoundState:
    """The exact solver's one aggregation: sum the shards' sufficient statistics, solve the normal equations,
    store the solution as round ``r + 1``'s parameters and stop the run (reason ``solved``).

    The round's loss and gradient norm are the objective's at the solution, from the statistics."""
    hp = task.hyperparameters
    n_features = theta.shape[0] - 1
    _, stats, rows = average_gradients(store, results)
    if stats.shape != (linear.statistics_size(n_features),):
        raise ValueError(
            f"the results of round {task.round} are not sufficient statistics of {n_features} features "
            f"(solver exact): {stats.size} values instead of {linear.statistics_size(n_features)}"
        )
    solution, singular = linear.exact_solve(stats, n_features, rows, hp.l2)
    loss, grad = linear.statistics_objective(stats, n_features, rows, solution, hp.l2)
    grad_norm = float(np.linalg.norm(grad))
    if not (np.all(np.isfinite(solution)) and np.isfinite(loss) and np.isfinite(grad_norm)):
        raise TrainingDiverged(f"the exact solve of round {task.round} is not finite")
    new_theta = solution.reshape(theta.shape)
    next_key = layout.params_key(task.run_id, task.round + 1)
    validation_loss: float | None = None
    best: dict[str, Any] | None = None
    if task.validation is not None:
        validation_loss = validation_objective(store, task.validation.key, hp, new_theta)
        best = {"round": task.round + 1, "loss": validation_loss}
    write_once(store, next_key, {"theta": new_theta, **opt_state})
    return record_round(
        store,
        task,
        next_key,
        "solved",
        loss,
        grad_norm,
        {
            **_summary(results, rows, ignored, failed, validation_loss, best, started),
            "solver": {"name": "exact", "singular": singular},
        },
    )


def search_round(
    store: ObjectStore,
    task: AggregateTask,
    solver: str,
    results: list[WorkerResult],
    net: models.Net,
    theta: np.ndarray,
    state: dict[str, np.ndarray],
    started: float,
    ignored: list[int],
    failed: list[int],
) -> RoundState:
    """A Newton or L-BFGS round (``math.second_order``): the objective at the candidate the workers evaluated
    (and for Newton its Hessian) accepts it or shortens the step, and the next candidate is round ``r + 1``'s
    parameters.

    The stop rule is every solver's (``should_stop``), with convergence judged at accepted points only. The model
    a stopped run keeps is the last accepted point; after convergence, Newton's last full step from it (in
    Newton's quadratic region, where that step is always accepted)."""
    hp = task.hyperparameters
    p, k = theta.size, net.n_outputs
    loss_sum, vector, rows = average_gradients(store, results)
    expected = p + (second_order.triangle_size(p) if solver == "newton" else 0)
    if vector.shape != (expected,):
        raise ValueError(
            f"the results of round {task.round} have {vector.size} values, solver {solver} with {p} parameters "
            f"expects {expected}"
        )
    loss, grad = net.regularized_objective(loss_sum, vector[:p], rows, theta, hp.l2)
    hessian = None
    if solver == "newton":
        hessian = second_order.regularized_hessian(second_order.unpack_symmetric(vector[p:], p), rows, hp.l2, k)
    grad_norm = float(np.linalg.norm(grad))
    if task.round == 0 and not (np.isfinite(loss) and np.isfinite(grad_norm)):
        raise TrainingDiverged("the objective at the initial parameters is not finite")
    candidate, new_state, accepted = second_order.line_search_round(solver, state, theta, loss, grad, hessian)
    initial = grad_norm if task.round == 0 else initial_grad_norm(store, task.run_id)
    if accepted:
        reason = should_stop(hp, task.round, grad_norm, loss, initial)
    else:
        reason = "max_epochs" if task.round + 1 >= hp.max_epochs else None
    reason, validation_loss, best = early_stopping(store, task, net, theta, reason)
    model = candidate if reason is None or (reason == "converged" and solver == "newton") else new_state["anchor"]
    next_key = layout.params_key(task.run_id, task.round + 1)
    write_once(store, next_key, params_arrays(model, net.layout, new_state))
    if reason == "early_stopping" and best is not None:
        next_key = layout.params_key(task.run_id, best["round"])
    search = {"name": solver, "accepted": accepted, "step": float(new_state["step"][0])}
    fields = {**_summary(results, rows, ignored, failed, validation_loss, best, started), "solver": search}
    return record_round(store, task, next_key, reason, loss, grad_norm, fields)


def early_stopping(
    store: ObjectStore, task: AggregateTask, net: models.Net, theta: np.ndarray, reason: str | None
) -> tuple[str | None, float | None, dict[str, Any] | None]:
    """With a validation split: the validation loss at ``theta`` (the flat parameters of ``net`` the round's
    workers evaluated),
    the best round so far, and ``early_stopping`` as the reason once ``patience`` rounds passed without a better
    one (unless the round already stops): ``(reason, validation loss, best)``."""
    if task.validation is None:
        return reason, None, None
    hp = task.hyperparameters
    validation_loss = validation_objective(store, task.validation.key, hp, theta, net)
    best = _best_so_far(store, task.run_id, task.round, validation_loss)
    if reason is None and hp.patience is not None and task.round - best["round"] >= hp.patience:
        reason = "early_stopping"
    return reason, validation_loss, best


def _summary(
    results: list[WorkerResult],
    rows: int,
    ignored: list[int],
    failed: list[int],
    validation_loss: float | None,
    best: dict[str, Any] | None,
    started: float,
) -> dict[str, Any]:
    """What a round's record says besides its loss and gradient norm, for every solver."""
    return {
        "rows": rows,
        "shards": len({r.shard for r in results}),
        "ignored_shards": ignored,
        "failed_shards": failed,
        "validation_loss": validation_loss,
        "best_validation": best,
        "seconds": time.perf_counter() - started,
        "finished_at": time.time(),
    }


def write_once(store: ObjectStore, key: str, arrays: dict[str, np.ndarray]) -> None:
    """Write parameters create-only: a replayed or concurrent init or aggregation never overwrites them."""
    with contextlib.suppress(AlreadyExists):
        store.put_arrays(key, arrays, if_absent=True)


def recorded_round(store: ObjectStore, run_id: str, round_: int) -> RoundState | None:
    """The state a round's stored summary carries on with, or None if the round was not applied yet."""
    try:
        return RoundState.model_validate(store.get_json(layout.round_key(run_id, round_))["state"])
    except NotFound:
        return None


def record_round(
    store: ObjectStore, task, next_key: str, reason: str | None, loss: float, grad_norm: float, fields: dict
) -> RoundState:
    """Store round ``task.round``'s summary create-only and return the state the loop carries on with;
    if a concurrent or replayed aggregation stored it first, that one is returned (applied once)."""
    state = RoundState(
        run_id=task.run_id,
        round=task.round + 1,
        params_key=next_key,
        done=reason is not None,
        reason=reason,
        loss=loss,
        grad_norm=grad_norm,
        handover=handover(task.round + 1, reason is not None, task.rounds_per_execution),
    )
    summary_key = layout.round_key(task.run_id, task.round)
    summary = {"round": task.round, "loss": loss, "grad_norm": grad_norm, **fields, "state": state.model_dump()}
    summary["shard_cache"] = shard_cache_summary(store, task)
    try:
        store.put_json(summary_key, summary, if_absent=True)
    except AlreadyExists:
        return recorded_round(store, task.run_id, task.round) or state
    return state


def validation_objective(
    store: ObjectStore, key: str, hp: Hyperparameters, theta: np.ndarray, net: models.Net | None = None
) -> float:
    """Mean loss (plus the L2 term, as the training loss) of the validation block at ``theta`` (flat, of ``net``'s
    layout; without ``net``, a linear model's matrix)."""
    block = _validation_block(store, key)
    net = net or network(hp.model, (theta.shape,), hp)
    loss_sum, _ = net.loss_grad_sums(theta.ravel(), block[:, :-1], block[:, -1])
    loss, _ = net.regularized_objective(loss_sum, np.zeros(theta.size), block.shape[0], theta.ravel(), hp.l2)
    return loss


VALIDATION_CACHE = ArrayCache(DEFAULT_CACHE_BYTES)  # per warm container: the validation blocks of its runs


def _validation_block(store: ObjectStore, key: str) -> np.ndarray:
    """Validation rows, kept per warm container (the key is per run and its object written once)."""
    return VALIDATION_CACHE.get_array(store, key, write_once=True).array


def _best_so_far(store: ObjectStore, run_id: str, round_: int, validation_loss: float) -> dict:
    """The round with the lowest validation loss up to this one (carried in the rounds' records)."""
    best = {"round": round_, "loss": validation_loss}
    if round_ > 0:
        with contextlib.suppress(NotFound):
            previous = store.get_json(layout.round_key(run_id, round_ - 1)).get("best_validation")
            if previous is not None and previous["loss"] <= validation_loss:
                best = previous
    return best


def initial_grad_norm(store: ObjectStore, run_id: str) -> float:
    return float(_round_zero(store, run_id)["grad_norm"])


def initial_loss(store: ObjectStore, run_id: str) -> float:
    """Round 0's loss, the yardstick of the divergence rule."""
    return float(_round_zero(store, run_id)["loss"])


def _round_zero(store: ObjectStore, run_id: str) -> dict[str, Any]:
    try:
        return store.get_json(layout.round_key(run_id, 0))
    except NotFound:
        raise ValueError(f"run {run_id!r} has no stored round 0; rounds must be aggregated in order") from None


def training_curve(store: ObjectStore, run_id: str) -> list[dict]:
    keys = store.list_keys(layout.rounds_prefix(run_id))
    return [{k: v for k, v in store.get_json(key).items() if k != "state"} for key in keys]
