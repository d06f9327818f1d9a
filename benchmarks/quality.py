"""Training quality: synchronous distributed gradient descent (the workers' and the aggregator's math,
4 shards) against scikit-learn's exact solvers and its SGD estimators for the same number of epochs."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.linear_model import LogisticRegression, Ridge, SGDClassifier, SGDRegressor
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from mlcore import models, optimizers

from .harness import Figure

L2 = 1e-3
CASES = [  # data set, model, k, learning rate
    ("diabetes", load_diabetes, "linear_regression", 1, 0.3),
    ("breast cancer", load_breast_cancer, "logistic_regression", 1, 1.0),
    ("wine", load_wine, "softmax_regression", 3, 1.0),
]


def objective(model: str, theta: np.ndarray, X: np.ndarray, y: np.ndarray, k: int) -> float:
    loss_sum, grad_sum = models.loss_grad_sums(model, theta, X, y)
    return models.regularized_objective(loss_sum, grad_sum, len(y), theta, L2, k)[0]


def distributed_gd(model: str, X: np.ndarray, y: np.ndarray, k: int, lr: float, epochs: int, shards: int = 4):
    """What the training workflow computes: per-shard sums, row-weighted average, one step per round."""
    parts = np.array_split(np.arange(len(y)), shards)
    theta = np.zeros((X.shape[1] + 1) * k)
    state = optimizers.init_state("momentum", theta.size)
    for t in range(1, epochs + 1):
        sums = [models.loss_grad_sums(model, theta, X[p].astype(np.float32), y[p].astype(np.float32)) for p in parts]
        _, grad = models.regularized_objective(sum(s[0] for s in sums), sum(s[1] for s in sums), len(y), theta, L2, k)
        theta, state = optimizers.step("momentum", theta, grad, state, learning_rate=lr, t=t)
    return theta


def _theta(coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    coef = np.atleast_2d(coef)
    return np.vstack([coef.T, np.atleast_1d(intercept)[None, :]]).ravel()


def collect(quick: bool) -> list[Figure]:
    epochs = 100 if quick else 500
    figures = []
    for name, loader, model, k, lr in CASES:
        X, y = loader(return_X_y=True)
        X_train, X_test, y_train, y_test = train_test_split(X, y.astype(float), test_size=0.2, random_state=0)
        scaler = StandardScaler().fit(X_train)
        X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
        n = len(y_train)
        theta = distributed_gd(model, X_train, y_train, k, lr, epochs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if model == "linear_regression":
                exact = Ridge(alpha=L2 * n).fit(X_train, y_train)
                sgd = SGDRegressor(alpha=L2, max_iter=epochs, tol=None, random_state=0).fit(X_train, y_train)
            else:
                exact = LogisticRegression(C=1.0 / (L2 * n), tol=1e-12, max_iter=10_000).fit(X_train, y_train)
                sgd = SGDClassifier(loss="log_loss", alpha=L2, max_iter=epochs, tol=None, random_state=0).fit(
                    X_train, y_train
                )
        opt = objective(model, _theta(exact.coef_, exact.intercept_), X_train, y_train, k)
        ours = objective(model, theta, X_train, y_train, k)
        label = f"{name} ({model}, {epochs} epochs)"
        figures.append(
            Figure(
                "quality",
                f"{label}: objective / exact optimum",
                ours / opt,
                "ratio",
                f"sklearn {type(sgd).__name__}, same epochs",
                objective(model, _theta(sgd.coef_, sgd.intercept_), X_train, y_train, k) / opt
                if model != "softmax_regression"
                else None,
                note="SGDClassifier is one-vs-rest on wine: no comparable objective"
                if model == "softmax_regression"
                else "",
            )
        )
        if model == "linear_regression":
            ours_metric = 1 - np.sum((X_test @ theta[:-1] + theta[-1] - y_test) ** 2) / np.sum(
                (y_test - y_test.mean()) ** 2
            )
            figures.append(
                Figure(
                    "quality",
                    f"{name}: test R²",
                    float(ours_metric),
                    "R²",
                    "sklearn Ridge (exact)",
                    float(exact.score(X_test, y_test)),
                    better="higher",
                )
            )
        else:
            acc = float(np.mean(models.predict(model, theta, X_test) == y_test))
            figures.append(
                Figure(
                    "quality",
                    f"{name}: test accuracy",
                    acc,
                    "accuracy",
                    "sklearn LogisticRegression (exact)",
                    float(exact.score(X_test, y_test)),
                    better="higher",
                )
            )
    return figures
