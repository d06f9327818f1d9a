"""First-order optimizers as pure functions of (params, gradient, state).

A step never mutates its inputs: it returns the new parameters and the new
optimizer state, so a training round is a pure function of what is stored.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np

Optimizer = Literal["sgd", "momentum", "adam"]
LrSchedule = Literal["constant", "step", "inverse_time", "exponential"]
OPTIMIZERS: tuple[str, ...] = get_args(Optimizer)
LR_SCHEDULES: tuple[str, ...] = get_args(LrSchedule)


def scheduled_rate(schedule: str, base: float, t: int, *, decay_rate: float = 0.5, decay_steps: int = 100) -> float:
    """Learning rate of update number ``t`` (0-based) under ``schedule``.

    - ``constant``: ``base``
    - ``step``: ``base * decay_rate ** floor(t / decay_steps)``
    - ``exponential``: ``base * decay_rate ** (t / decay_steps)``
    - ``inverse_time``: ``base / (1 + decay_rate * t / decay_steps)``
    """
    if t < 0 or decay_steps < 1:
        raise ValueError(f"need t >= 0 and decay_steps >= 1, got t={t}, decay_steps={decay_steps}")
    if schedule == "constant":
        return base
    if schedule == "step":
        return base * decay_rate ** (t // decay_steps)
    if schedule == "exponential":
        return base * decay_rate ** (t / decay_steps)
    if schedule == "inverse_time":
        return base / (1.0 + decay_rate * t / decay_steps)
    raise ValueError(f"unknown learning-rate schedule {schedule!r}; expected one of {LR_SCHEDULES}")


def init_state(name: str, n_params: int) -> dict[str, np.ndarray]:
    if name == "sgd":
        return {}
    if name == "momentum":
        return {"velocity": np.zeros(n_params)}
    if name == "adam":
        return {"m": np.zeros(n_params), "v": np.zeros(n_params)}
    raise ValueError(f"unknown optimizer {name!r}; expected one of {OPTIMIZERS}")


def step(
    name: str,
    theta: np.ndarray,
    grad: np.ndarray,
    state: dict[str, np.ndarray],
    *,
    learning_rate: float,
    t: int,
    momentum: float = 0.9,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Apply update number ``t`` (1-based) and return ``(theta, state)``."""
    if name == "sgd":
        return theta - learning_rate * grad, {}
    if name == "momentum":
        velocity = momentum * state["velocity"] + grad
        return theta - learning_rate * velocity, {"velocity": velocity}
    if name == "adam":
        m = beta1 * state["m"] + (1.0 - beta1) * grad
        v = beta2 * state["v"] + (1.0 - beta2) * grad * grad
        m_hat = m / (1.0 - beta1**t)
        v_hat = v / (1.0 - beta2**t)
        return theta - learning_rate * m_hat / (np.sqrt(v_hat) + eps), {"m": m, "v": v}
    raise ValueError(f"unknown optimizer {name!r}; expected one of {OPTIMIZERS}")


def minibatch(rows: int, batch_size: int, rng: np.random.Generator) -> np.ndarray | slice:
    """The rows of one minibatch, sorted, drawn without replacement (all rows when ``batch_size`` is 0 or
    not below ``rows``)."""
    if batch_size <= 0 or batch_size >= rows:
        return slice(None)
    return np.sort(rng.choice(rows, size=batch_size, replace=False))


def iterate_average(
    average: np.ndarray | None, theta: np.ndarray, update: int, *, burn_in: int = 0, power: float = 0.0
) -> np.ndarray:
    """The running average of the iterates once ``theta`` (the parameters after update number
    ``update``, 1-based) is folded in: Polyak-Ruppert averaging with polynomial decay.

    The ``n = update - burn_in``-th iterate after the burn-in enters with weight
    ``(power + 1) / (n + power)``, so the average of ``n`` iterates weighs iterate ``j`` in proportion
    to ``Γ(j + power) / Γ(j) ≈ j^power``: ``power = 0`` is the plain mean of the iterates after the
    burn-in; a positive power lets the early iterates fade without knowing the run's length.
    Until the burn-in ends (``n <= 1``), or with no average yet (``None``), the average is the iterate itself.
    """
    if update < 1 or burn_in < 0 or power < 0:
        raise ValueError(f"need update >= 1, burn_in >= 0, power >= 0; got {update}, {burn_in}, {power}")
    n = update - burn_in
    if n <= 1 or average is None:
        return np.array(theta, dtype=np.float64, copy=True)
    return average + (power + 1.0) / (n + power) * (theta - average)
