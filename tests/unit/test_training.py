"""Stopping rule and gradient averaging of the training loop (fake store, no AWS)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlcore import linear, training
from mlcore.schemas import Hyperparameters, WorkerResult

from .fakes import FakeStore

HP = Hyperparameters(tolerance=1e-6, max_epochs=10)


@pytest.mark.parametrize(
    ("round_", "grad_norm", "loss", "previous", "reason"),
    [
        (0, 1.0, math.nan, None, "diverged"),
        (0, 0.0, math.inf, None, "diverged"),  # divergence wins over a small gradient
        (9, 1.0, -math.inf, 1.0, "diverged"),  # ... and over the epoch limit
        (0, 1e-6, 5.0, None, "converged"),  # gradient norm at the tolerance
        (0, 9e-7, 5.0, 4.0, "converged"),
        (3, 1e-3, 1.0 - 1e-7, 1.0, "converged"),  # loss plateau and grad_norm <= sqrt(tolerance)
        (3, 1e-3, 1000.0 - 1e-4, 1000.0, "converged"),  # plateau is relative to the previous loss
        (9, 1e-7, 5.0, None, "converged"),  # convergence wins over the epoch limit
        (9, 1.0, 5.0, 6.0, "max_epochs"),  # round 9 is the 10th round
        (8, 1.0, 5.0, 6.0, None),
        (0, 1.1e-6, 5.0, None, None),
        (3, 2e-3, 1.0 - 1e-7, 1.0, None),  # plateau but the gradient is still too large
        (3, 1e-4, 1.0 - 1e-5, 1.0, None),  # gradient smallish but the loss still moves
        (3, 1e-4, 1000.0 - 1e-2, 1000.0, None),
        (3, 1e-4, 1.0, None, None),  # no previous loss: no plateau test
    ],
)
def test_should_stop(round_, grad_norm, loss, previous, reason):
    assert training.should_stop(HP, round_, grad_norm, loss, previous) == reason


def test_should_stop_uses_the_configured_tolerance():
    loose = Hyperparameters(tolerance=1e-2, max_epochs=10)
    assert training.should_stop(loose, 0, 5e-3, 1.0, None) == "converged"
    assert training.should_stop(HP, 0, 5e-3, 1.0, None) is None
    assert training.should_stop(Hyperparameters(max_epochs=1), 0, 1.0, 1.0, None) == "max_epochs"


def test_average_gradients_counts_each_shard_once():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(23, 3))
    y = rng.normal(size=23)
    theta = rng.normal(size=4)
    store = FakeStore()
    results = []
    for index, (a, b) in enumerate([(0, 5), (5, 6), (6, 23)]):
        loss_sum, grad = linear.squared_error_sums(theta, X[a:b], y[a:b])
        key = training.gradient_key("run", 3, index)
        store.arrays[key] = grad
        results.append(WorkerResult(shard=index, round=3, rows=b - a, loss_sum=loss_sum, gradient_key=key))
    # a redelivered result (same shard twice) and an arbitrary order
    delivered = [results[2], results[0], results[2], results[1], results[0]]
    loss_sum, grad_sum, rows = training.average_gradients(store, delivered)
    full_loss, full_grad = linear.squared_error_sums(theta, X, y)
    assert rows == 23
    assert loss_sum == pytest.approx(full_loss, rel=1e-12)
    assert grad_sum.dtype == np.float64
    np.testing.assert_allclose(grad_sum, full_grad, rtol=1e-12)


def test_keys_are_zero_padded():
    assert training.params_key("r1", 7) == "runs/r1/params/round-00007.npz"
    assert training.round_key("r1", 12) == "runs/r1/rounds/round-00012.json"
    assert training.gradient_key("r1", 3, 2) == "scratch/r1/gradients/round-00003/shard-00002.npy"
