"""Permutation importance: how much a fitted model's test score drops when one input column's values are shuffled
across the rows, which breaks the column's link with the target while keeping its distribution. Pure numpy; the
model is any ``score(X) -> float`` (higher is better: R², accuracy).

A column is an *original* input column: the features its preprocessing made (one per numeric column, one per
category of a one-hot column, one per bucket of a hashed column) are shuffled together, with one permutation of the
rows, as shuffling the raw column would. The cost is ``len(columns) * repeats + 1`` scorings of at most
``max_rows`` rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def column_slices(widths: Sequence[tuple[str, int]]) -> list[tuple[str, slice]]:
    """Per original column (``(name, number of features it makes)``, in the design matrix's order): its name and
    the slice of the design matrix's columns that hold its features."""
    out = []
    start = 0
    for name, width in widths:
        if width < 1:
            raise ValueError(f"column {name!r} makes {width} features; every column makes at least one")
        out.append((name, slice(start, start + width)))
        start += width
    return out


def sample_rows(n_rows: int, max_rows: int, rng: np.random.Generator) -> np.ndarray:
    """Every row index when there are at most ``max_rows``, else ``max_rows`` of them drawn without replacement
    from ``rng``, in increasing order."""
    if n_rows <= max_rows:
        return np.arange(n_rows)
    return np.sort(rng.choice(n_rows, size=max_rows, replace=False))


def permutation_importance(
    score: Callable[[np.ndarray, np.ndarray], float],
    X: np.ndarray,
    y: np.ndarray,
    columns: Sequence[tuple[str, slice]],
    *,
    repeats: int,
    max_rows: int,
    seed: int,
) -> dict[str, Any]:
    """Per column: the mean and the standard deviation (over ``repeats`` shuffles) of ``score(X, y)`` minus the
    score with that column's features permuted (the same row permutation for all of them), on at most ``max_rows``
    rows of ``X`` (``sample_rows``). One generator seeded with ``seed`` draws the rows, then for each column in
    order ``repeats`` permutations (``rng.permutation``): the same seed gives the same figures.

    Returns ``{"baseline", "rows", "repeats", "seed", "columns": [{"column", "features", "mean", "std"}]}`` in the
    columns' order."""
    if repeats < 1 or max_rows < 1:
        raise ValueError(f"repeats and max_rows must be at least 1, got {repeats} and {max_rows}")
    if X.ndim != 2 or len(X) != len(y) or len(X) == 0:
        raise ValueError(f"X must be a non-empty (rows, features) matrix with one target per row, got {X.shape}")
    rng = np.random.default_rng(seed)
    rows = sample_rows(len(X), max_rows, rng)
    X, y = X[rows], y[rows]
    baseline = float(score(X, y))
    shuffled = X.copy()
    out = []
    for name, cols in columns:
        drops = np.empty(repeats)
        for r in range(repeats):
            shuffled[:, cols] = X[rng.permutation(len(X)), cols]
            drops[r] = baseline - float(score(shuffled, y))
        shuffled[:, cols] = X[:, cols]
        width = len(range(*cols.indices(X.shape[1])))
        out.append({"column": name, "features": width, "mean": float(drops.mean()), "std": float(drops.std())})
    return {"baseline": baseline, "rows": len(X), "repeats": repeats, "seed": seed, "columns": out}
