"""The model families behind one parameter contract: the dispatch the training steps, Evaluate, Predict and batch
inference use, so every family plugs into the same engine.

Every model's parameters are one flat float64 vector with a *layout*: the shapes ``(fan_in + 1, fan_out)`` of its
layers (last row of each: the biases). A linear model (``math.linear``) is one layer, ``(n_features + 1, k)``; a
multilayer perceptron (``math.mlp``) has one per hidden layer plus its output layer. Workers return loss and
gradient *sums* over their rows; the aggregator adds L2 on the weights (never the biases) once.

Families: ``linear_regression``, ``logistic_regression``, ``softmax_regression`` (linear); ``mlp_regression`` and
``mlp_classifier`` (a network whose classifier output is a softmax over the classes, binary or multiclass).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from mlcore.math import linear, mlp
from mlcore.math.mlp import Layout

ModelType = Literal[
    "linear_regression", "logistic_regression", "softmax_regression", "mlp_regression", "mlp_classifier"
]
MODEL_TYPES: tuple[str, ...] = get_args(ModelType)
MLP_MODELS = ("mlp_regression", "mlp_classifier")
CLASSIFIERS = (*linear.CLASSIFIERS, "mlp_classifier")
DEFAULT_HIDDEN_LAYERS = (64,)
MLP_MAX_LAYERS = 8
MLP_MAX_WIDTH = 1024
# the artifact's JSON (about 20 characters a parameter) stays under 6 MB, Lambda's response payload limit
MLP_MAX_PARAMS = 250_000


def is_mlp(model: str) -> bool:
    return model in MLP_MODELS


def n_outputs(model: str, n_classes: int = 0) -> int:
    """Outputs of the model's last layer: one, or one per class for softmax and the MLP classifier."""
    if model == "mlp_classifier":
        if n_classes < 2:
            raise ValueError(f"mlp_classifier needs at least 2 classes, got {n_classes}")
        return n_classes
    if model == "mlp_regression":
        return 1
    return linear.n_outputs(model, n_classes)


def make_layout(model: str, n_features: int, n_outputs: int, hidden_layers: list[int] | None = None) -> Layout:
    """The layer shapes of a model of ``n_features`` inputs and ``n_outputs`` outputs (hidden sizes: MLP only)."""
    if not is_mlp(model):
        if model not in MODEL_TYPES:
            raise ValueError(f"unknown model {model!r}; expected one of {MODEL_TYPES}")
        return ((n_features + 1, n_outputs),)
    return mlp.make_layout(n_features, list(hidden_layers or DEFAULT_HIDDEN_LAYERS), n_outputs)


def layout_of(layout: np.ndarray | list | tuple) -> Layout:
    """A layout from its stored form (an ``(n_layers, 2)`` integer array or nested lists)."""
    shapes = np.asarray(layout, dtype=np.int64)
    if shapes.ndim != 2 or shapes.shape[1] != 2 or len(shapes) == 0 or (shapes < 1).any():
        raise ValueError(f"a layout is a non-empty list of [rows, columns] pairs, got {np.asarray(layout).tolist()}")
    return tuple((int(r), int(c)) for r, c in shapes)


def n_params(layout: Layout) -> int:
    return mlp.n_params(layout)


@dataclass(frozen=True)
class Net:
    """One model: its family, its layout and (MLP) its hidden layers' activation."""

    model: str
    layout: Layout
    activation: str = "relu"

    @property
    def n_features(self) -> int:
        return self.layout[0][0] - 1

    @property
    def n_outputs(self) -> int:
        return self.layout[-1][1]

    @property
    def n_params(self) -> int:
        return mlp.n_params(self.layout)

    @property
    def is_classifier(self) -> bool:
        return self.model in CLASSIFIERS

    @property
    def _task(self) -> str:
        return "classification" if self.model == "mlp_classifier" else "regression"

    def init(self, seed: int) -> np.ndarray:
        """Round 0's parameters: zeros for a linear model (its objective is convex), seeded He/Glorot for an MLP."""
        if is_mlp(self.model):
            return mlp.init(self.layout, self.activation, seed)
        return np.zeros(self.n_params)

    def check_features(self, n_features: int, where: str) -> None:
        if n_features != self.n_features:
            raise ValueError(f"{where} has {n_features} features, parameters expect {self.n_features}")

    def loss_grad_sums(self, theta: np.ndarray, X: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """Sum over rows of the loss and its gradient with respect to the flat theta (float64)."""
        if is_mlp(self.model):
            return mlp.loss_grad_sums(self._task, theta, self.layout, self.activation, X, y)
        return linear.loss_grad_sums(self.model, theta, X, y)

    def regularized_objective(
        self, loss_sum: float, grad_sum: np.ndarray, rows: int, theta: np.ndarray, l2: float
    ) -> tuple[float, np.ndarray]:
        """Mean loss and gradient plus ``0.5 * l2 * ||W||^2`` (biases not penalized)."""
        if is_mlp(self.model):
            return mlp.regularized_objective(loss_sum, grad_sum, rows, theta, l2, self.layout)
        return linear.regularized_objective(loss_sum, grad_sum, rows, theta, l2, self.n_outputs)

    def predict(self, theta: np.ndarray, X: np.ndarray) -> np.ndarray:
        """Regression: predicted values. Classification: predicted class indices."""
        if is_mlp(self.model):
            return mlp.predict(self._task, theta, self.layout, self.activation, X)
        return linear.predict(self.model, theta, X)

    def predict_proba(self, theta: np.ndarray, X: np.ndarray) -> np.ndarray:
        """A classifier's probabilities, shape (n, n_classes); columns follow the sorted class list."""
        if self.model == "mlp_classifier":
            return mlp.predict_proba(theta, self.layout, self.activation, X)
        return linear.predict_proba(self.model, theta, X)
