"""Regression metrics in numpy (same definitions as scikit-learn)."""

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
