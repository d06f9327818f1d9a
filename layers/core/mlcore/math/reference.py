"""A scikit-learn reference fit on the same training rows, so every model records how close it came.

For an MLP the reference is the linear model of its kind (how much the network gains over it). The linear
objectives match ``models`` exactly: mean loss + ``0.5 * l2 * ||W||^2`` is scikit-learn's
``Ridge(alpha=l2 * n)`` (``LinearRegression`` when ``l2 == 0``) and ``LogisticRegression(C=1 / (l2 * n))``
(``C=inf`` when ``l2 == 0``). scikit-learn is imported here only, lazily: it is packaged with the
Evaluate function alone, never with Predict or the training workers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlcore.math import models
from mlcore.math.metrics import classification_metrics, regression_metrics


def estimator(model: str, l2: float, n_rows: int):
    if model in models.CLASSIFIERS:
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=1.0 / (l2 * n_rows) if l2 > 0 else np.inf, tol=1e-8, max_iter=5000)
    from sklearn.linear_model import LinearRegression, Ridge

    return Ridge(alpha=l2 * n_rows) if l2 > 0 else LinearRegression()


def reference_metrics(model: str, l2: float, train: np.ndarray, test: np.ndarray, n_classes: int = 0) -> dict[str, Any]:
    """Fit the reference on ``train`` (``[X | y]``) and score it on ``test`` with the metrics of ``metrics``."""
    X, y = train[:, :-1].astype(np.float64), train[:, -1].astype(np.float64)
    X_test, y_test = test[:, :-1].astype(np.float64), test[:, -1].astype(np.float64)
    est = estimator(model, l2, X.shape[0])
    test_metrics: dict[str, Any]
    if model in models.CLASSIFIERS:
        est.fit(X, y.astype(np.int64))
        proba = np.zeros((X_test.shape[0], max(n_classes, int(est.classes_.max()) + 1)))
        proba[:, est.classes_.astype(np.int64)] = est.predict_proba(X_test)  # classes absent from train: 0
        test_metrics = classification_metrics(y_test, proba)
    else:
        est.fit(X, y)
        test_metrics = regression_metrics(y_test, est.predict(X_test))
    return {"estimator": _describe(est), "train_rows": int(X.shape[0]), "test": test_metrics}


def _describe(est) -> str:
    import sklearn

    params = {k: v for k, v in est.get_params().items() if k in ("alpha", "C")}
    args = ", ".join(f"{k}={v!r}" for k, v in params.items())
    return f"sklearn {sklearn.__version__} {type(est).__name__}({args})"


def differences(ours: dict[str, Any], reference: dict[str, Any]) -> dict[str, float]:
    """``ours - reference`` for every scalar metric both have."""
    return {
        k: float(ours[k]) - float(v)
        for k, v in reference.items()
        if k != "rows" and isinstance(v, int | float) and isinstance(ours.get(k), int | float)
    }
