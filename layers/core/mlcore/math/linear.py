"""Linear models: pure numpy losses, gradients and predictions, no I/O.

Parameters are one flat float64 vector ``theta`` of length ``(n_features + 1) * k``
read as a ``(n_features + 1, k)`` matrix whose last row holds the intercepts:
``k = 1`` for linear and logistic regression, ``k = n_classes`` for softmax.
Workers return *sums* over their rows so the aggregator can weight shards
exactly by row count; L2 regularization is added once, by the aggregator.

Objectives (mean over rows, plus ``0.5 * l2 * ||W||^2`` without the intercepts):

- ``linear_regression``: ``0.5 * (x.w + b - y)^2``
- ``logistic_regression``: ``log(1 + exp(z)) - y z`` with ``y`` in {0, 1}
  (scikit-learn's ``LogisticRegression(C)`` is ``l2 = 1 / (C * n_samples)``)
- ``softmax_regression``: ``logsumexp(z) - z_y`` with ``y`` a class index

The exact solver of linear regression: with ``Z = [X | 1]``, a shard's sufficient statistics are
``ZᵀZ``, ``Zᵀy`` and ``yᵀy`` (their row count travels beside them); summed over shards they are the
whole data's, and the minimum of the objective solves ``(ZᵀZ + n · l2 · P) θ = Zᵀy`` with ``P`` the
identity without its intercept entry (scikit-learn's ``Ridge(alpha=n · l2)``, ``LinearRegression`` at 0).
"""

from __future__ import annotations

import contextlib
from typing import Literal, get_args

import numpy as np

ModelType = Literal["linear_regression", "logistic_regression", "softmax_regression"]
MODEL_TYPES: tuple[str, ...] = get_args(ModelType)
CLASSIFIERS = ("logistic_regression", "softmax_regression")
EXACT_MAX_FEATURES = 2000  # the exact solver's d x d system (float64, 32 MB at 2,000) in one function
STATS_BLOCK_ROWS = 65536  # rows per float64 block when summing a shard's statistics


def n_outputs(model: str, n_classes: int = 0) -> int:
    """Columns of the weight matrix: one, or one per class for softmax."""
    if model == "softmax_regression":
        if n_classes < 2:
            raise ValueError(f"softmax_regression needs at least 2 classes, got {n_classes}")
        return n_classes
    if model == "logistic_regression" and n_classes != 2:
        raise ValueError(f"logistic_regression needs exactly 2 classes, got {n_classes}; use softmax_regression")
    if model not in MODEL_TYPES:
        raise ValueError(f"unknown model {model!r}; expected one of {MODEL_TYPES}")
    return 1


def _matrix(theta: np.ndarray, n_features: int) -> np.ndarray:
    return theta.reshape(n_features + 1, -1)


def scores(theta: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Raw decision values ``X @ W + b``, shape (n, k), in X's dtype."""
    W = _matrix(theta, X.shape[1]).astype(X.dtype, copy=False)
    return X @ W[:-1] + W[-1]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -z))


def _softmax(Z: np.ndarray) -> np.ndarray:
    Z = Z - Z.max(axis=1, keepdims=True)
    E = np.exp(Z)
    return E / E.sum(axis=1, keepdims=True)


def loss_grad_sums(model: str, theta: np.ndarray, X: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Sum over rows of the model's loss, and its gradient with respect to theta (float64).

    The matrix products run in the shard's dtype (float32 shards stay float32).
    """
    Z = scores(theta, X)
    if model == "linear_regression":
        residual = Z[:, 0] - y
        loss_sum = 0.5 * float(np.dot(residual, residual))
        delta = residual[:, None]
    elif model == "logistic_regression":
        z = Z[:, 0].astype(np.float64)
        loss_sum = float(np.sum(np.logaddexp(0.0, z) - y * z))
        delta = (_sigmoid(z) - y)[:, None].astype(X.dtype)
    elif model == "softmax_regression":
        Z64 = Z.astype(np.float64)
        labels = y.astype(np.int64)
        m = Z64.max(axis=1, keepdims=True)
        log_norm = (m + np.log(np.exp(Z64 - m).sum(axis=1, keepdims=True)))[:, 0]
        loss_sum = float(np.sum(log_norm - Z64[np.arange(len(labels)), labels]))
        P = np.exp(Z64 - log_norm[:, None])
        P[np.arange(len(labels)), labels] -= 1.0
        delta = P.astype(X.dtype)
    else:
        raise ValueError(f"unknown model {model!r}; expected one of {MODEL_TYPES}")
    grad = np.empty((X.shape[1] + 1, delta.shape[1]), dtype=np.float64)
    grad[:-1] = X.T @ delta
    grad[-1] = delta.sum(axis=0, dtype=np.float64)
    return loss_sum, grad.ravel()


def hessian_sums(model: str, theta: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Sum over rows of the loss's Hessian with respect to theta, ``p x p`` with ``p = (n_features + 1) * k``
    (float64, summed over blocks of STATS_BLOCK_ROWS rows). It does not depend on the labels.

    With ``Z = [X | 1]``: linear regression ``ZᵀZ``; logistic ``Zᵀ diag(s (1 - s)) Z`` (``s`` the sigmoid);
    softmax, for the parameters of classes ``c`` and ``c'`` (theta's index ``feature * k + class``),
    ``Zᵀ diag(p_c (δ_cc' - p_c')) Z``.
    """
    if model not in MODEL_TYPES:
        raise ValueError(f"unknown model {model!r}; expected one of {MODEL_TYPES}")
    n, m = X.shape
    d = m + 1
    k = theta.size // d
    H = np.zeros((d, k, d, k))
    for start in range(0, n, STATS_BLOCK_ROWS):
        Xb = X[start : start + STATS_BLOCK_ROWS].astype(np.float64)
        Zb = np.hstack([Xb, np.ones((len(Xb), 1))])
        if model == "linear_regression":
            H[:, 0, :, 0] += Zb.T @ Zb
            continue
        S = Zb @ _matrix(theta, m)
        if model == "logistic_regression":
            p = _sigmoid(S[:, 0])
            H[:, 0, :, 0] += (Zb * (p * (1.0 - p))[:, None]).T @ Zb
            continue
        P = _softmax(S)
        for c in range(k):
            for c2 in range(c, k):
                weights = P[:, c] * ((c == c2) - P[:, c2])
                block = (Zb * weights[:, None]).T @ Zb
                H[:, c, :, c2] += block
                if c2 != c:
                    H[:, c2, :, c] += block
    return H.reshape(d * k, d * k)


def regularized_objective(
    loss_sum: float, grad_sum: np.ndarray, rows: int, theta: np.ndarray, l2: float, k: int = 1
) -> tuple[float, np.ndarray]:
    """Mean loss and gradient plus ``0.5 * l2 * ||W||^2`` (intercepts not penalized)."""
    if rows <= 0:
        raise ValueError("cannot average over zero rows")
    W = theta.reshape(-1, k)[:-1]
    loss = loss_sum / rows + 0.5 * l2 * float(np.sum(W * W))
    grad = (grad_sum / rows).reshape(-1, k)
    grad[:-1] += l2 * W
    return loss, grad.ravel()


def predict_proba(model: str, theta: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Class probabilities, shape (n, n_classes); columns follow the sorted class list."""
    Z = scores(theta, X).astype(np.float64)
    if model == "logistic_regression":
        p = _sigmoid(Z[:, 0])
        return np.column_stack([1.0 - p, p])
    if model == "softmax_regression":
        return _softmax(Z)
    raise ValueError(f"{model} is not a classifier")


def predict(model: str, theta: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Regression: predicted values. Classification: predicted class indices."""
    if model == "linear_regression":
        return scores(theta, X)[:, 0].astype(np.float64)
    if model == "logistic_regression":
        return (scores(theta, X)[:, 0] > 0).astype(np.int64)
    if model == "softmax_regression":
        return np.argmax(scores(theta, X), axis=1).astype(np.int64)
    raise ValueError(f"unknown model {model!r}; expected one of {MODEL_TYPES}")


def statistics_size(n_features: int) -> int:
    """Length of the flat statistics vector of ``n_features`` features: ``ZᵀZ``, ``Zᵀy``, ``yᵀy``."""
    d = n_features + 1
    return d * d + d + 1


def sufficient_statistics(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A shard's ``ZᵀZ``, ``Zᵀy`` and ``yᵀy`` (``Z = [X | 1]``) as one flat float64 vector.

    Summed in float64 over blocks of STATS_BLOCK_ROWS rows, so a float32 shard is never copied whole."""
    n, k = X.shape
    d = k + 1
    gram = np.zeros((d, d))
    zty = np.zeros(d)
    yty = 0.0
    for start in range(0, n, STATS_BLOCK_ROWS):
        Xb = X[start : start + STATS_BLOCK_ROWS].astype(np.float64)
        yb = y[start : start + STATS_BLOCK_ROWS].astype(np.float64)
        gram[:k, :k] += Xb.T @ Xb
        column_sums = Xb.sum(axis=0)
        gram[:k, k] += column_sums
        gram[k, :k] += column_sums
        zty[:k] += Xb.T @ yb
        zty[k] += yb.sum()
        yty += float(yb @ yb)
    gram[k, k] = float(n)
    return np.concatenate([gram.ravel(), zty, [yty]])


def unpack_statistics(stats: np.ndarray, n_features: int) -> tuple[np.ndarray, np.ndarray, float]:
    """``(ZᵀZ, Zᵀy, yᵀy)`` of a flat statistics vector (see ``sufficient_statistics``)."""
    d = n_features + 1
    if stats.shape != (statistics_size(n_features),):
        raise ValueError(
            f"statistics of {n_features} features have {statistics_size(n_features)} values, got shape {stats.shape}"
        )
    return stats[: d * d].reshape(d, d), stats[d * d : d * d + d], float(stats[-1])


def exact_solve(stats: np.ndarray, n_features: int, rows: int, l2: float) -> tuple[np.ndarray, bool]:
    """The minimum of the linear regression objective from summed statistics: ``(theta, singular)``.

    ``np.linalg.solve`` on the symmetric system; when it is singular to working precision (its smallest
    eigenvalue below ``size * eps`` times its largest: e.g. one-hot columns, which sum to the intercept's,
    or a duplicated feature, with ``l2 = 0``), ``np.linalg.lstsq``'s minimum-norm solution (as scikit-learn's
    ``LinearRegression``), and ``singular`` is True."""
    if rows <= 0:
        raise ValueError("cannot solve over zero rows")
    gram, zty, _ = unpack_statistics(stats, n_features)
    system = gram.copy()
    penalty = rows * l2
    system[np.arange(n_features), np.arange(n_features)] += penalty
    eigenvalues = np.linalg.eigvalsh(system)
    if eigenvalues[0] > eigenvalues[-1] * len(system) * np.finfo(np.float64).eps:
        with contextlib.suppress(np.linalg.LinAlgError):
            return np.linalg.solve(system, zty), False
    return np.linalg.lstsq(system, zty, rcond=None)[0], True


def statistics_objective(
    stats: np.ndarray, n_features: int, rows: int, theta: np.ndarray, l2: float
) -> tuple[float, np.ndarray]:
    """The objective (mean loss plus ``0.5 * l2 * ||W||^2``) and its gradient at ``theta``, from the statistics."""
    gram, zty, yty = unpack_statistics(stats, n_features)
    g_theta = gram @ theta
    loss_sum = max(0.5 * (float(theta @ g_theta) - 2.0 * float(theta @ zty) + yty), 0.0)
    return regularized_objective(loss_sum, g_theta - zty, rows, theta, l2)
