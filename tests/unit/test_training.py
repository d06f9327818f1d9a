"""Stopping rule and gradient averaging of the training loop (fake store, no AWS)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlcore.infra import layout
from mlcore.math import linear
from mlcore.steps import training
from mlcore.steps.schemas import Hyperparameters, WorkerResult

from .fakes import FakeStore

HP = Hyperparameters(tolerance=1e-4, max_epochs=10)


@pytest.mark.parametrize(
    ("round_", "grad_norm", "loss", "initial", "reason"),
    [
        (0, 1.0, math.nan, 1.0, "diverged"),
        (0, 0.0, math.inf, 1.0, "diverged"),  # divergence wins over a small gradient
        (9, 1.0, -math.inf, 1.0, "diverged"),  # ... and over the epoch limit
        (3, math.nan, 1.0, 1.0, "diverged"),
        (3, 1e-4, 5.0, 1.0, "converged"),  # gradient norm at tolerance x its initial value
        (3, 0.03, 5.0, 300.0, "converged"),  # relative: the same rule whatever the target's units
        (9, 1e-7, 5.0, 1.0, "converged"),  # convergence wins over the epoch limit
        (0, 0.0, 0.0, 0.0, "converged"),  # already at the optimum
        (9, 1.0, 5.0, 6.0, "max_epochs"),  # round 9 is the 10th round
        (8, 1.0, 5.0, 6.0, None),
        (3, 1.1e-4, 5.0, 1.0, None),
        (3, 0.04, 5.0, 300.0, None),
    ],
)
def test_should_stop(round_, grad_norm, loss, initial, reason):
    assert training.should_stop(HP, round_, grad_norm, loss, initial) == reason


def test_should_stop_uses_the_configured_tolerance():
    loose = Hyperparameters(tolerance=1e-2, max_epochs=10)
    assert training.should_stop(loose, 1, 5e-3, 1.0, 1.0) == "converged"
    assert training.should_stop(HP, 1, 5e-3, 1.0, 1.0) is None
    assert training.should_stop(Hyperparameters(max_epochs=1), 0, 1.0, 1.0, 1.0) == "max_epochs"


def test_average_gradients_counts_each_shard_once():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(23, 3))
    y = rng.normal(size=23)
    theta = rng.normal(size=4)
    store = FakeStore()
    results = []
    for index, (a, b) in enumerate([(0, 5), (5, 6), (6, 23)]):
        loss_sum, grad = linear.loss_grad_sums("linear_regression", theta, X[a:b], y[a:b])
        key = layout.gradient_key("run", 3, index)
        store.arrays[key] = grad
        results.append(WorkerResult(shard=index, round=3, rows=b - a, loss_sum=loss_sum, gradient_key=key))
    # a redelivered result (same shard twice) and an arbitrary order
    delivered = [results[2], results[0], results[2], results[1], results[0]]
    loss_sum, grad_sum, rows = training.average_gradients(store, delivered)
    full_loss, full_grad = linear.loss_grad_sums("linear_regression", theta, X, y)
    assert rows == 23
    assert loss_sum == pytest.approx(full_loss, rel=1e-12)
    assert grad_sum.dtype == np.float64
    np.testing.assert_allclose(grad_sum, full_grad, rtol=1e-12)
