"""Hyperparameter search: the search space, seeded trial sampling and asynchronous successive halving (ASHA).

Pure functions (python and numpy only): the tuning job's orchestration (``mlcore.steps.tuning``) records which
(trial, rung) jobs it handed out and the validation loss each one ended with, and asks ``next_job`` what to run next.

ASHA (Li et al., "A System for Massively Parallel Hyperparameter Tuning", MLSys 2020): every trial starts at rung 0
with the smallest epoch budget; a trial whose validation loss at rung k is in the top 1/eta of the results at rung
k so far is promoted to rung k+1 (``eta`` times the epochs); a slot that finds nothing to promote starts a new trial.
No rung waits for all its trials, so ``max_parallel_trials`` slots stay busy.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np

TASKS = ("regression", "binary", "multiclass")
# the model families of each task: the linear one, then the neural network (mlcore.math.models)
TASK_MODELS: dict[str, tuple[str, ...]] = {
    "regression": ("linear_regression", "mlp_regression"),
    "binary": ("logistic_regression", "mlp_classifier"),
    "multiclass": ("softmax_regression", "mlp_classifier"),
}
MLP_FAMILIES = ("mlp_regression", "mlp_classifier")
SPACE_KEYS = (
    "model",
    "optimizer",
    "learning_rate",
    "l2",
    "batch_size",
    "mode",
    "hidden_layers",
    "solver",
    "activation",
)
RANGE_KEYS = ("learning_rate", "l2")
# l2's range with low 0: this share of the trials gets l2 = 0, the rest a log-uniform draw over L2_DECADES decades
# below high
ZERO_L2_SHARE = 0.25
L2_DECADES = 4
# solvers a trial in sync mode may use: 'auto' resolves to exact (linear regression), newton (linear classifiers)
# or lbfgs (networks, and linear models beyond the exact and newton size limits); 'sgd' runs the optimizer's rounds
SYNC_SOLVERS = ("auto", "sgd", "exact", "newton", "lbfgs")
# sync trials stop after this many rounds without a better validation loss and keep their best parameters (a tuning
# job always holds out a validation split): measured on diabetes, a network trained by L-BFGS to 135 rounds falls from
# validation R² 0.41 (round 14) to -1.04 without it
PATIENCE = 10
# an async network trial with the default optimizers or learning-rate range has these instead (a request's other
# search_space.optimizer or learning_rate is used as given):
# Adam, whose step the learning rate bounds, at 0.01-0.1, and stale gradients recomputed past 3 versions (every
# async network trial). Measured on the bundled data sets (targets in their own units, housing's sd 95, insurance's
# 2,776), 15 epochs on 2 shards: plain SGD or momentum at 0.02 diverge within 5 updates and SGD has no rate that is
# stable on both (insurance diverges even at 1e-4); Adam at 0.01-0.1 never diverged, its ReLU networks reaching test
# R² 0.84-0.91 (housing) and 0.91-0.95 (insurance) at 0.03-0.1
ASYNC_NETWORK_OPTIMIZERS = ["adam"]
ASYNC_NETWORK_LEARNING_RATE = {"low": 0.01, "high": 0.1}
ASYNC_NETWORK_MAX_STALENESS = 3

# async trials join the default search space only from this many training rows (the training split, validation
# included): below it a sync round over the whole split takes about a millisecond (a worker's gradient over 1,000,000
# x 28 rows takes 27 ms, docs/benchmarks.md) and has no straggler to hide, so an asynchronous trial only adds noise
# (stale gradients, a learning rate to guess) and cost to a search that exact, Newton and L-BFGS trials settle
ASYNC_DEFAULT_MIN_ROWS = 20_000

Job = tuple[int, int]


def default_modes(training_rows: int) -> list[str]:
    """The default search space's ``mode`` for a training split of ``training_rows`` rows: sync and async from
    ``ASYNC_DEFAULT_MIN_ROWS`` rows, sync only below."""
    return ["sync", "async"] if training_rows >= ASYNC_DEFAULT_MIN_ROWS else ["sync"]


def rungs(min_epochs: int, max_epochs: int, eta: int) -> list[int]:
    """The epoch budgets of successive halving's rungs: geometric with ratio ``eta`` down from ``max_epochs`` (the
    last rung), as many as keep the first at ``min_epochs`` or more: ``rungs(3, 81, 3) == [3, 9, 27, 81]``,
    ``rungs(5, 50, 3) == [5, 16, 50]``, ``rungs(9, 9, 3) == [9]``."""
    if min_epochs < 1 or max_epochs < min_epochs:
        raise ValueError(f"need 1 <= min_epochs <= max_epochs, got min_epochs={min_epochs}, max_epochs={max_epochs}")
    if eta < 2:
        raise ValueError(f"the reduction factor eta must be at least 2, got {eta}")
    n = 1
    while min_epochs * eta**n <= max_epochs:
        n += 1
    return [max_epochs // eta ** (n - 1 - k) for k in range(n)]


def rung_caps(n_trials: int, n_rungs: int, eta: int) -> list[int]:
    """The most (trial, rung) jobs ``next_job`` hands out at each rung: ``ceil(n_trials / eta**k)``, so rung 0 runs
    every trial and the last rung at least one. The tuning cost estimate is built on these counts."""
    return [math.ceil(n_trials / eta**k) for k in range(n_rungs)]


def default_space(task: str) -> dict[str, Any]:
    """The search space of a tuning request that gives none, for ``task`` (regression, binary or multiclass).

    - model: the task's linear family and its neural network;
    - mode and solver: sync trials use solver ``auto`` (exact least squares for linear regression, Newton for the
      linear classifiers, L-BFGS for networks: they converge in a few rounds and need no learning rate); async trials
      run SGD with an ``optimizer``, a log-uniform ``learning_rate`` and a ``batch_size`` (async networks: instead
      of the default optimizers and range, ``ASYNC_NETWORK_OPTIMIZERS`` and ``ASYNC_NETWORK_LEARNING_RATE``);
    - l2: log-uniform up to 0.1 (the penalty on the mean loss: scikit-learn's alpha / rows), a quarter of the
      trials without;
    - hidden_layers and activation: networks only."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    return {
        "model": list(TASK_MODELS[task]),
        "mode": ["sync", "async"],
        "solver": ["auto"],
        "optimizer": ["sgd", "momentum", "adam"],
        "learning_rate": {"low": 1e-3, "high": 0.3},
        "l2": {"low": 0.0, "high": 0.1},
        "batch_size": [0, 32, 128],
        "hidden_layers": [[16], [64], [32, 32], [64, 64]],
        "activation": ["relu", "tanh"],
    }


def resolve_space(space: Mapping[str, Any] | None, task: str) -> dict[str, Any]:
    """``space``'s keys over ``default_space(task)`` (a key the request leaves out keeps its default); refuses
    (ValueError naming the key) an unknown key, an empty list, a bad range, or a model of another task."""
    resolved = default_space(task)
    for key, value in (space or {}).items():
        if value is None:
            continue
        if key not in SPACE_KEYS:
            raise ValueError(f"search_space.{key} is not a search-space key; expected one of {', '.join(SPACE_KEYS)}")
        if key in RANGE_KEYS:
            if not isinstance(value, Mapping) or set(value) != {"low", "high"}:
                raise ValueError(f"search_space.{key} must be a range {{'low': number, 'high': number}}, got {value!r}")
            low, high = float(value["low"]), float(value["high"])
            least = "0 <" if key == "learning_rate" else "0 <="
            if not (0 <= low < high) or (key == "learning_rate" and low <= 0):
                raise ValueError(f"search_space.{key} must have {least} low < high, got low={low}, high={high}")
            resolved[key] = {"low": low, "high": high}
            continue
        if not isinstance(value, list | tuple):
            raise ValueError(f"search_space.{key} must be a list of values, got {value!r}")
        if not value:
            raise ValueError(f"search_space.{key} is empty; list at least one value")
        resolved[key] = [list(v) if isinstance(v, list | tuple) else v for v in value]
    unknown = [s for s in resolved["solver"] if s not in SYNC_SOLVERS]
    if unknown:
        expected = ", ".join(SYNC_SOLVERS)
        raise ValueError(f"search_space.solver {unknown[0]!r} is not a solver; expected one of {expected}")
    foreign = [m for m in resolved["model"] if m not in TASK_MODELS[task]]
    if foreign:
        raise ValueError(
            f"search_space.model {foreign[0]!r} does not fit a {task} target; expected {' or '.join(TASK_MODELS[task])}"
        )
    if not _combos(resolved):
        raise ValueError(
            "search_space: no valid trial: solver(s) "
            f"{resolved['solver']} do not fit model(s) {resolved['model']} in mode(s) {resolved['mode']}"
        )
    return resolved


def _solver_fits(model: str, solver: str) -> bool:
    if solver == "exact":
        return model == "linear_regression"
    if solver == "newton":
        return model not in MLP_FAMILIES
    return True


def _combos(space: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """The valid (model, mode, solver) combinations: sync trials take the space's solvers that fit the model; async
    trials run SGD."""
    out: list[tuple[str, str, str]] = []
    for model in space["model"]:
        for mode in dict.fromkeys(space["mode"]):
            if mode == "async":
                out.append((model, "async", "sgd"))
                continue
            out.extend((model, "sync", s) for s in dict.fromkeys(space["solver"]) if _solver_fits(model, s))
    return out


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def _choice(rng: np.random.Generator, values: list[Any]) -> Any:
    return values[int(rng.integers(len(values)))]


def _l2(rng: np.random.Generator, low: float, high: float) -> float:
    if low > 0:
        return _log_uniform(rng, low, high)
    if rng.random() < ZERO_L2_SHARE:
        return 0.0
    return _log_uniform(rng, high * 10.0**-L2_DECADES, high)


def sample_trials(space: Mapping[str, Any], n: int, seed: int, task: str) -> list[dict[str, Any]]:
    """``n`` trials drawn from ``space`` (over ``default_space(task)``), the same for the same seed
    (``numpy.random.default_rng(seed)``): each ``{"mode": "sync" | "async", "hyperparameters": {...}}`` with a valid
    hyperparameters dict (``mlcore.steps.schemas.Hyperparameters``).

    The (model, mode, solver) combinations are stratified (each used ``n / combinations`` times, rounded, in a shuffled
    order) so that a small search still tries every family; the rest is drawn per trial. A trial gets only the keys
    that matter to it: learning_rate, optimizer and batch_size with solver sgd (batch_size in async mode), hidden_layers
    and activation for a network, ``max_staleness`` for an async network, and ``patience`` (early stopping on the
    validation loss) in sync mode."""
    if n < 0:
        raise ValueError(f"the number of trials must be at least 0, got {n}")
    resolved = resolve_space(space, task)
    default = default_space(task)
    network_space: dict[
        str, Any
    ] = {  # the default optimizer or learning rate range (given or not) has the networks' own
        "optimizer": ASYNC_NETWORK_OPTIMIZERS
        if resolved["optimizer"] == default["optimizer"]
        else resolved["optimizer"],
        "learning_rate": (
            ASYNC_NETWORK_LEARNING_RATE
            if resolved["learning_rate"] == default["learning_rate"]
            else resolved["learning_rate"]
        ),
    }
    rng = np.random.default_rng(seed)
    combos = _combos(resolved)
    order = [combos[i % len(combos)] for i in range(n)]
    order = [order[i] for i in rng.permutation(n)]
    trials = []
    for model, mode, solver in order:
        hp: dict[str, Any] = {"model": model, "solver": solver, "l2": _l2(rng, **resolved["l2"])}
        if mode == "sync":
            hp["patience"] = PATIENCE
        if solver == "sgd":
            drawn = network_space if mode == "async" and model in MLP_FAMILIES else resolved
            hp["optimizer"] = str(_choice(rng, drawn["optimizer"]))
            hp["learning_rate"] = _log_uniform(rng, **drawn["learning_rate"])
            if mode == "async":
                hp["batch_size"] = int(_choice(rng, resolved["batch_size"]))
                if model in MLP_FAMILIES:
                    hp["max_staleness"] = ASYNC_NETWORK_MAX_STALENESS
        if model in MLP_FAMILIES:
            hp["hidden_layers"] = [int(u) for u in _choice(rng, resolved["hidden_layers"])]
            hp["activation"] = str(_choice(rng, resolved["activation"]))
        trials.append({"mode": mode, "hyperparameters": hp})
    return trials


def _ranked(results: Iterable[tuple[int, float]]) -> list[tuple[int, float]]:
    """(trial, loss) best first: lower loss, then lower trial index; NaN counts as a failure (inf)."""
    clean = [(t, math.inf if math.isnan(loss) else float(loss)) for t, loss in results]
    return sorted(clean, key=lambda item: (item[1], item[0]))


def next_job(
    n_trials: int,
    n_rungs: int,
    eta: int,
    started: Iterable[Job],
    losses: Mapping[Job, float],
    settled: Collection[Job] = (),
) -> Job | Literal["wait", "done"]:
    """The (trial, rung) to run next under ASHA, from every job ever handed out (``started``) and the validation
    loss of each finished one (``losses``; ``math.inf`` for a failed or diverged trial). Pure: the same state gives
    the same answer, so a result delivered twice changes nothing, and a (trial, rung) is handed out at most once.

    1. Promote: from the highest rung down to rung 0, the best trial of the top ``floor(m / eta)`` of the ``m``
       results at that rung that has a finite loss and is not yet at the next rung, while the next rung has run fewer
       than ``rung_caps`` jobs (so the cost estimate bounds the job);
    2. else start the lowest-numbered trial not started yet, at rung 0;
    3. else ``"wait"`` while a job is running;
    4. else finish: while no trial has a finite loss at the last rung, promote the best unpromoted trial with a finite
       loss at the highest rung possible (within the caps), so that a search of fewer than ``eta`` trials, or one
       whose finalist failed, still trains a trial to the last rung;
    5. else ``"done"``.
    Ties are broken by trial index (the lower first).

    ``settled``: finished jobs whose trial stopped on its own (converged, solved, early-stopped), so its result at
    the next rung is the same and promoting it costs nothing: such a promotion is exempt from the rung caps and does
    not count against them (the cost estimate still bounds the job)."""
    if n_trials < 0 or n_rungs < 1 or eta < 2:
        raise ValueError(f"need n_trials >= 0, n_rungs >= 1 and eta >= 2, got {n_trials}, {n_rungs}, {eta}")
    handed = set(started) | set(losses)
    for trial, rung in handed:
        if not (0 <= trial < n_trials and 0 <= rung < n_rungs):
            raise ValueError(f"job (trial {trial}, rung {rung}) is outside {n_trials} trials and {n_rungs} rungs")
    caps = rung_caps(n_trials, n_rungs, eta)
    free = {(trial, rung + 1) for trial, rung in settled}
    at_rung = [0] * n_rungs
    for trial, rung in handed:
        at_rung[rung] += (trial, rung) not in free
    results: list[list[tuple[int, float]]] = [[] for _ in range(n_rungs)]
    for (trial, rung), loss in losses.items():
        results[rung].append((trial, loss))
    ranked = [_ranked(r) for r in results]

    def candidates(rung: int, top: int) -> list[int]:
        full = at_rung[rung + 1] >= caps[rung + 1]
        return [
            t
            for t, loss in ranked[rung][:top]
            if math.isfinite(loss) and (t, rung + 1) not in handed and (not full or (t, rung + 1) in free)
        ]

    for rung in range(n_rungs - 2, -1, -1):
        promote = candidates(rung, len(ranked[rung]) // eta)
        if promote:
            return promote[0], rung + 1
    unstarted = next((t for t in range(n_trials) if (t, 0) not in handed), None)
    if unstarted is not None:
        return unstarted, 0
    if any(job not in losses for job in handed):
        return "wait"
    if not any(math.isfinite(loss) for _, loss in ranked[-1]):
        for rung in range(n_rungs - 2, -1, -1):
            promote = candidates(rung, len(ranked[rung]))
            if promote:
                return promote[0], rung + 1
    return "done"


def leaderboard_order(entries: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Leaderboard entries (each with ``trial``, ``rung`` and ``validation_loss``, None while unknown) best first:
    those with a finite loss before the others, then the highest rung, the lower loss, the lower trial index."""

    def key(entry: Mapping[str, Any]) -> tuple[bool, int, float, int]:
        loss = entry.get("validation_loss")
        value = float(loss) if loss is not None and math.isfinite(float(loss)) else math.inf
        return (value == math.inf, -int(entry.get("rung") or 0), value, int(entry["trial"]))

    return [dict(e) for e in sorted(entries, key=key)]


def complexity(hyperparameters: Mapping[str, Any]) -> int:
    """How complex a trial's model is, for ``select``: 0 for a linear family, else its hidden units in all."""
    model = str(hyperparameters.get("model") or "")
    if not model.startswith("mlp_"):
        return 0
    return sum(int(units) for units in hyperparameters.get("hidden_layers") or [64])


def one_standard_error(candidates: Sequence[tuple[float, float, int]]) -> int:
    """The one-standard-error rule over ``(loss, standard error, complexity)`` candidates: of those whose loss is
    within one standard error of the lowest (the first of equal lowest losses), the least complex, then the lower
    loss, then the earlier. Non-finite losses are never chosen unless no loss is finite (then the first)."""
    finite = [i for i, (loss, _, _) in enumerate(candidates) if math.isfinite(loss)]
    if not finite:
        return 0
    leader = min(finite, key=lambda i: (candidates[i][0], i))
    bound = candidates[leader][0] + candidates[leader][1]
    near = [i for i in finite if candidates[i][0] <= bound]
    return min(near, key=lambda i: (candidates[i][2], candidates[i][0], i))


def select(entries: Sequence[Mapping[str, Any]]) -> tuple[int, str]:
    """The trial to register from leaderboard entries ordered best first (``leaderboard_order``), by the
    one-standard-error rule (``one_standard_error``): of the trials at the leader's rung whose validation loss is
    within one standard error (``validation_loss_se``) of the leader's, the least complex (``complexity``), then
    the lower loss. A small validation split cannot tell such trials apart, and the simpler model generalizes more
    reliably. Returns the entry's index and why it was chosen."""
    leader = entries[0]
    loss, se = float(leader["validation_loss"]), float(leader.get("validation_loss_se") or 0.0)
    near = [
        i
        for i, e in enumerate(entries)
        if e.get("validation_loss") is not None and int(e.get("rung") or 0) == int(leader.get("rung") or 0)
    ]
    candidates = [
        (
            float(entries[i]["validation_loss"]),
            float(entries[i].get("validation_loss_se") or 0.0),
            complexity(entries[i]["hyperparameters"]),
        )
        for i in near
    ]
    chosen = near[one_standard_error(candidates)]
    if chosen == 0:
        return 0, f"the lowest validation loss ({loss:.6g})"
    return chosen, (
        f"the simplest trial within one standard error ({se:.3g}) of the lowest validation loss ({loss:.6g}, "
        f"trial {leader['trial']})"
    )


def select_cross_validated(finalists: Sequence[Mapping[str, Any]], folds: int) -> tuple[int, str]:
    """The finalist to register by the one-standard-error rule on the ``folds``-fold cross-validated loss
    (``cv_loss``, ``cv_loss_se``; an infinite loss, a finalist whose fold run diverged, is never chosen while
    another is finite): its index in ``finalists`` and why."""
    candidates = [(float(f["cv_loss"]), float(f["cv_loss_se"]), complexity(f["hyperparameters"])) for f in finalists]
    chosen = one_standard_error(candidates)
    finite = [i for i, c in enumerate(candidates) if math.isfinite(c[0])]
    leader = min(finite, key=lambda i: (candidates[i][0], i)) if finite else 0
    loss, se = candidates[leader][:2]
    if chosen == leader:
        return chosen, (f"the lowest {folds}-fold cross-validated loss ({loss:.6g}) of the {len(finalists)} finalists")
    return chosen, (
        f"the simplest of the {len(finalists)} finalists within one standard error ({se:.3g}) of the lowest "
        f"{folds}-fold cross-validated loss ({loss:.6g}, trial {finalists[leader]['trial']})"
    )


def fold_assignment(n_rows: int, folds: int, seed: int) -> np.ndarray:
    """Each row's cross-validation fold (0..folds-1): a seeded permutation dealt round-robin, so every row is out of
    fold exactly once and the folds' sizes differ by one at most."""
    if folds < 2 or n_rows < folds:
        raise ValueError(f"need 2 <= folds <= rows, got {folds} folds of {n_rows} rows")
    assigned = np.empty(n_rows, dtype=np.int64)
    assigned[np.random.default_rng(seed).permutation(n_rows)] = np.arange(n_rows) % folds
    return assigned


def holdout_split(n_rows: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (each sorted) of a seeded split of ``n_rows`` into training and validation rows, the validation
    share ``fraction`` (at least one row, and at least one left to train on)."""
    if n_rows < 2 or not 0 < fraction < 1:
        raise ValueError(f"need at least 2 rows and 0 < fraction < 1, got {n_rows} rows and fraction {fraction}")
    held = min(n_rows - 1, max(1, round(fraction * n_rows)))
    order = np.random.default_rng(seed).permutation(n_rows)
    return np.sort(order[held:]), np.sort(order[:held])
