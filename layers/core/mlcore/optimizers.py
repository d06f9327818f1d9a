"""First-order optimizers as pure functions of (params, gradient, state).

A step never mutates its inputs: it returns the new parameters and the new
optimizer state, so a training round is a pure function of what is stored.
"""

from __future__ import annotations

import numpy as np

OPTIMIZERS = ("sgd", "momentum", "adam")


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
