"""Multilayer perceptrons: pure numpy forward and backward passes, no I/O.

A network's parameters are one flat float64 vector read through its *layout*: one ``(fan_in + 1, fan_out)``
matrix per layer, in order, each raveled row by row, whose last row holds the layer's biases (so a network
without hidden layers is exactly a linear model's ``(n_features + 1, k)`` matrix). Hidden layers apply the
activation (``relu`` or ``tanh``); the output layer is linear: one output for regression, one per class for
classification (softmax, two outputs for a binary target).

Objectives (mean over rows, plus ``0.5 * l2 * ||W||^2`` over every layer's weights, biases not penalized):

- ``regression``: ``0.5 * (f(x) - y)^2``
- ``classification``: ``logsumexp(z) - z_y`` with ``y`` a class index

Workers return *sums* over their rows (``loss_grad_sums``), so the aggregator weights shards exactly by row
count; L2 is added once, by the aggregator (``regularized_objective``). The matrix products run in the rows'
dtype (float32 shards stay float32); losses and gradients are summed in float64.
"""

from __future__ import annotations

import itertools
from typing import Literal, get_args

import numpy as np

Activation = Literal["relu", "tanh"]
ACTIVATIONS: tuple[str, ...] = get_args(Activation)
Task = Literal["regression", "classification"]
Layout = tuple[tuple[int, int], ...]


def make_layout(n_features: int, hidden_layers: list[int] | tuple[int, ...], n_outputs: int) -> Layout:
    """The layer shapes ``(fan_in + 1, fan_out)`` of a network from ``n_features`` inputs through the hidden sizes
    to ``n_outputs`` outputs."""
    sizes = [n_features, *hidden_layers, n_outputs]
    if any(s < 1 for s in sizes):
        raise ValueError(f"every layer needs at least one unit, got sizes {sizes}")
    return tuple((fan_in + 1, fan_out) for fan_in, fan_out in itertools.pairwise(sizes))


def n_params(layout: Layout) -> int:
    return sum(rows * cols for rows, cols in layout)


def check_layout(theta: np.ndarray, layout: Layout) -> None:
    """ValueError unless ``theta`` is a flat vector of the layout's size and consecutive layers connect."""
    if theta.ndim != 1 or theta.size != n_params(layout):
        raise ValueError(f"a network of layout {list(layout)} has {n_params(layout)} parameters, got {theta.shape}")
    for (_, fan_out), (rows, _) in itertools.pairwise(layout):
        if rows != fan_out + 1:
            raise ValueError(f"layout {list(layout)} does not connect: a layer of {fan_out} units feeds {rows - 1}")


def layers(theta: np.ndarray, layout: Layout) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(weights (fan_in, fan_out), biases (fan_out,))`` per layer: views of ``theta``."""
    out = []
    start = 0
    for rows, cols in layout:
        block = theta[start : start + rows * cols].reshape(rows, cols)
        out.append((block[:-1], block[-1]))
        start += rows * cols
    return out


def penalized(layout: Layout) -> np.ndarray:
    """A boolean mask over theta: True for weights (L2-penalized), False for biases."""
    parts = []
    for rows, cols in layout:
        mask = np.ones((rows, cols), dtype=bool)
        mask[-1] = False
        parts.append(mask.ravel())
    return np.concatenate(parts)


def init(layout: Layout, activation: str, seed: int) -> np.ndarray:
    """Seeded initial parameters: hidden layers He-normal (relu, ``N(0, 2 / fan_in)``) or Glorot-uniform (tanh,
    ``U(±sqrt(6 / (fan_in + fan_out)))``), the linear output layer Glorot-uniform; biases zero."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; expected one of {ACTIVATIONS}")
    rng = np.random.default_rng(seed)
    blocks = []
    for i, (rows, cols) in enumerate(layout):
        fan_in = rows - 1
        block = np.zeros((rows, cols))
        if i < len(layout) - 1 and activation == "relu":
            block[:-1] = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=(fan_in, cols))
        else:
            limit = np.sqrt(6.0 / (fan_in + cols))
            block[:-1] = rng.uniform(-limit, limit, size=(fan_in, cols))
        blocks.append(block.ravel())
    return np.concatenate(blocks)


def _activate(activation: str, h: np.ndarray) -> np.ndarray:
    if activation == "relu":
        return np.maximum(h, 0)
    if activation == "tanh":
        return np.tanh(h)
    raise ValueError(f"unknown activation {activation!r}; expected one of {ACTIVATIONS}")


def _activation_slope(activation: str, a: np.ndarray) -> np.ndarray:
    """The activation's derivative, from its output ``a``."""
    if activation == "relu":
        return (a > 0).astype(a.dtype)
    return 1 - a * a


def forward(theta: np.ndarray, layout: Layout, activation: str, X: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """The output scores (n, n_outputs) and every layer's input (X, then each hidden layer's activations)."""
    check_layout(theta, layout)
    if X.shape[1] + 1 != layout[0][0]:
        raise ValueError(f"the rows have {X.shape[1]} features, the network expects {layout[0][0] - 1}")
    inputs = [X]
    a = X
    params = layers(theta, layout)
    for i, (W, b) in enumerate(params):
        h = a @ W.astype(X.dtype, copy=False) + b.astype(X.dtype, copy=False)
        if i == len(params) - 1:
            return h, inputs
        a = _activate(activation, h)
        inputs.append(a)
    raise AssertionError("a layout has at least one layer")


def loss_grad_sums(
    task: str, theta: np.ndarray, layout: Layout, activation: str, X: np.ndarray, y: np.ndarray
) -> tuple[float, np.ndarray]:
    """Sum over rows of the loss, and its gradient with respect to theta (float64)."""
    Z, inputs = forward(theta, layout, activation, X)
    if task == "regression":
        residual = Z[:, 0].astype(np.float64) - y
        loss_sum = 0.5 * float(np.dot(residual, residual))
        delta = residual[:, None].astype(X.dtype)
    elif task == "classification":
        Z64 = Z.astype(np.float64)
        labels = y.astype(np.int64)
        m = Z64.max(axis=1, keepdims=True)
        log_norm = (m + np.log(np.exp(Z64 - m).sum(axis=1, keepdims=True)))[:, 0]
        rows = np.arange(len(labels))
        loss_sum = float(np.sum(log_norm - Z64[rows, labels]))
        P = np.exp(Z64 - log_norm[:, None])
        P[rows, labels] -= 1.0
        delta = P.astype(X.dtype)
    else:
        raise ValueError(f"unknown task {task!r}; expected one of {get_args(Task)}")
    params = layers(theta, layout)
    grads: list[np.ndarray] = [np.empty(0)] * len(params)
    for i in range(len(params) - 1, -1, -1):
        a = inputs[i]
        grad = np.empty(layout[i])
        grad[:-1] = a.T @ delta
        grad[-1] = delta.sum(axis=0, dtype=np.float64)
        grads[i] = grad.ravel()
        if i > 0:
            delta = (delta @ params[i][0].T.astype(X.dtype, copy=False)) * _activation_slope(activation, a)
    return loss_sum, np.concatenate(grads)


def regularized_objective(
    loss_sum: float, grad_sum: np.ndarray, rows: int, theta: np.ndarray, l2: float, layout: Layout
) -> tuple[float, np.ndarray]:
    """Mean loss and gradient plus ``0.5 * l2 * ||W||^2`` over every layer's weights (biases not penalized)."""
    if rows <= 0:
        raise ValueError("cannot average over zero rows")
    weights = penalized(layout)
    W = theta[weights]
    loss = loss_sum / rows + 0.5 * l2 * float(np.dot(W, W))
    grad = grad_sum / rows
    grad[weights] += l2 * W
    return loss, grad


def predict_proba(theta: np.ndarray, layout: Layout, activation: str, X: np.ndarray) -> np.ndarray:
    """A classifier's class probabilities (softmax of the outputs), shape (n, n_classes)."""
    Z = forward(theta, layout, activation, X)[0].astype(np.float64)
    Z = Z - Z.max(axis=1, keepdims=True)
    E = np.exp(Z)
    return E / E.sum(axis=1, keepdims=True)


def predict(task: str, theta: np.ndarray, layout: Layout, activation: str, X: np.ndarray) -> np.ndarray:
    """Regression: predicted values. Classification: predicted class indices."""
    Z = forward(theta, layout, activation, X)[0]
    if task == "regression":
        return Z[:, 0].astype(np.float64)
    if task == "classification":
        return np.argmax(Z, axis=1).astype(np.int64)
    raise ValueError(f"unknown task {task!r}; expected one of {get_args(Task)}")
