"""The hardware limit: a bare numpy pass over a 1,000,000 x 28 float32 shard, and the worker's gradient."""

from __future__ import annotations

import numpy as np

from mlcore.math import linear

from .harness import Figure, best_of


def collect(quick: bool) -> list[Figure]:
    rows = 200_000 if quick else 1_000_000
    rng = np.random.default_rng(0)
    data = rng.standard_normal((rows, 29), dtype=np.float32)
    X, y = data[:, :-1], data[:, -1]
    w = rng.standard_normal(28).astype(np.float32)
    theta = np.append(w, 0.0).astype(np.float64)
    copy = best_of(lambda: data.copy())
    bare = best_of(lambda: X.T @ (X @ w - y))
    ours = best_of(lambda: linear.loss_grad_sums("linear_regression", theta, X, y))
    gb = data.nbytes / 1e9
    return [
        Figure("hardware", f"memory copy of a {rows:,} x 29 float32 block", gb / copy, "GB/s", better="higher"),
        Figure(
            "hardware",
            f"worker gradient, {rows:,} x 28 float32 (ms)",
            ours * 1000,
            "ms",
            "bare numpy X.T @ (X @ w - y)",
            bare * 1000,
        ),
    ]
