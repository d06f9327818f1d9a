"""Linear models: pure numpy loss and gradient, no I/O.

Parameters are one flat float64 vector ``theta`` of length ``n_features + 1``;
the last entry is the intercept. Workers return *sums* over their rows so the
aggregator can weight shards exactly by row count; regularization is added
once, by the aggregator, on the averaged objective.
"""

from __future__ import annotations

import numpy as np


def predict(theta: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Linear prediction ``X @ w + b``."""
    return X @ theta[:-1] + theta[-1]


def squared_error_sums(theta: np.ndarray, X: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Sum over rows of ``0.5 * (x.w + b - y)^2`` and its gradient with respect to theta.

    Computed in the shard's dtype (float32 shards stay float32 in the matmuls)
    and returned as float64.
    """
    w = theta[:-1].astype(X.dtype, copy=False)
    residual = X @ w + X.dtype.type(theta[-1]) - y
    loss_sum = 0.5 * float(np.dot(residual, residual))
    grad = np.empty(theta.shape[0], dtype=np.float64)
    grad[:-1] = X.T @ residual
    grad[-1] = residual.sum(dtype=np.float64)
    return loss_sum, grad


def regularized_objective(
    loss_sum: float, grad_sum: np.ndarray, rows: int, theta: np.ndarray, l2: float
) -> tuple[float, np.ndarray]:
    """Mean loss and gradient plus ``0.5 * l2 * ||w||^2`` (intercept not penalized)."""
    if rows <= 0:
        raise ValueError("cannot average over zero rows")
    w = theta[:-1]
    loss = loss_sum / rows + 0.5 * l2 * float(np.dot(w, w))
    grad = grad_sum / rows
    grad[:-1] += l2 * w
    return loss, grad
