"""Evaluation metrics in numpy (the same definitions as scikit-learn, checked against it in tests)."""

from __future__ import annotations

import numpy as np


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError("y_true and y_pred must be non-empty and of the same shape")
    residual = y_true - y_pred
    ss_res = float(np.dot(residual, residual))
    centered = y_true - y_true.mean()
    ss_tot = float(np.dot(centered, centered))
    return {
        "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else (1.0 if ss_res == 0 else 0.0),  # as sklearn
        "rmse": float(np.sqrt(ss_res / y_true.size)),
        "mae": float(np.mean(np.abs(residual))),
        "rows": int(y_true.size),
    }


def holdout_losses(y_true: np.ndarray, output: np.ndarray, classifier: bool) -> tuple[np.ndarray, float]:
    """The per-row losses and the metric of held-out rows, as a tuning job ranks trials: ``output`` is a
    regression's predicted values (squared error per row; R², NaN when a prediction is not finite) or a
    classifier's (n, K) class probabilities (the log loss of the true class, clipped at 1e-15; accuracy).
    Unregularized, so that models of any family compare."""
    y = np.asarray(y_true, dtype=np.float64)
    with np.errstate(all="ignore"):
        if classifier:
            proba = np.asarray(output, dtype=np.float64)
            picked = proba[np.arange(len(y)), y.astype(np.int64)]
            return -np.log(np.clip(picked, 1e-15, 1.0)), float(np.mean(np.argmax(proba, axis=1) == y))
        predicted = np.asarray(output, dtype=np.float64)
        finite = bool(np.all(np.isfinite(predicted)))
        return (y - predicted) ** 2, regression_metrics(y, predicted)["r2"] if finite else float("nan")


def mean_and_se(losses: np.ndarray) -> tuple[float, float]:
    """The mean of per-row losses and its standard error (sample standard deviation / sqrt(rows); 0 for one row)."""
    with np.errstate(all="ignore"):
        mean = float(np.mean(losses))
        se = float(np.std(losses, ddof=1) / np.sqrt(len(losses))) if len(losses) > 1 else 0.0
    return mean, se


def classification_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float | int | list[list[int]]]:
    """Accuracy, macro F1, log loss, confusion matrix and (binary) ROC AUC, as scikit-learn defines them.

    ``y_true`` holds class indices 0..K-1 and ``proba`` the (n, K) predicted probabilities.
    """
    y_true = np.asarray(y_true).astype(np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    if y_true.size == 0 or proba.shape[0] != y_true.size:
        raise ValueError("y_true and proba must be non-empty with one row per label")
    k = proba.shape[1]
    y_pred = np.argmax(proba, axis=1)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y_true, y_pred), 1)
    tp = np.diag(confusion).astype(np.float64)
    denom = confusion.sum(axis=0) + confusion.sum(axis=1)
    f1 = np.divide(2 * tp, denom, out=np.zeros(k), where=denom > 0)
    present = (confusion.sum(axis=0) + confusion.sum(axis=1)) > 0  # sklearn averages over labels that occur
    eps = np.finfo(np.float64).eps
    p_true = np.clip(proba[np.arange(y_true.size), y_true] / proba.sum(axis=1), eps, 1 - eps)
    out: dict[str, float | int | list[list[int]]] = {
        "accuracy": float(np.mean(y_pred == y_true)),
        "f1_macro": float(f1[present].mean()),
        "log_loss": float(-np.mean(np.log(p_true))),
        "rows": int(y_true.size),
        "confusion_matrix": confusion.tolist(),
    }
    if k == 2 and 0 < y_true.sum() < y_true.size:
        out["roc_auc"] = _binary_auc(y_true, proba[:, 1])
    return out


def _binary_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Mann-Whitney U statistic with average ranks for ties (equals sklearn's roc_auc_score)."""
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(score.size, dtype=np.float64)
    sorted_scores = score[order]
    i = 0
    while i < score.size:
        j = i
        while j + 1 < score.size and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    n_pos = int(y_true.sum())
    n_neg = y_true.size - n_pos
    return float((ranks[y_true == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))
