"""The MLP benchmark (benchmarks/mlp.py) compares like with like: its bare numpy pass computes the worker's gradient,
its async runs make the epochs it says, and the engine's L2 is scikit-learn's alpha."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import mlp as bench
from mlcore.math import mlp, models


def test_the_bare_numpy_pass_computes_the_workers_gradient():
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(50, 10)), rng.normal(size=50)
    net = models.Net("mlp_regression", models.make_layout("mlp_regression", 10, 1, list(bench.HIDDEN)))
    theta = net.init(0)
    _, grad = net.loss_grad_sums(theta, X, y)
    bare = bench.bare_pass(mlp.layers(theta, net.layout), X, y)
    # bare_pass returns the layers' (weights, biases) gradients from the output layer back
    blocks = [np.vstack([bare[2 * i], bare[2 * i + 1]]).ravel() for i in range(len(net.layout))][::-1]
    np.testing.assert_allclose(np.concatenate(blocks), grad, rtol=1e-10, atol=1e-10)


def test_an_async_plan_makes_the_epochs_it_says():
    friedman = bench.friedman()
    assert (len(friedman.y_train), friedman.X_train.shape[1]) == (16_000, 10)
    # 8 workers x 10 minibatches of 200 rows = 16,000 rows a pass
    assert bench.async_plan(friedman) == (30, 2_400)
    cancer, wine = bench.bundled()
    # 455 training rows: shards of 56 rows, smaller than a minibatch, so 8 x 10 x 56 rows a pass
    assert bench.async_plan(cancer) == (3, 240)
    assert bench.async_plan(wine, epochs=40) == (4, 320)
    hp = bench.async_hyperparameters(friedman, 2_400)
    assert (hp.optimizer, hp.learning_rate, hp.batch_size, hp.averaging_burn_in) == ("sgd", 0.02, 200, 1_200)
    assert hp.max_staleness == 3
    assert hp.hidden_layers == [64, 64]


def test_the_engines_l2_is_scikit_learns_alpha_over_the_training_rows():
    cancer = bench.bundled()[0]
    assert cancer.l2 == pytest.approx(1e-4 / 455)
    assert bench.sync_hyperparameters(cancer, 300).resolved_solver(30, 2) == "lbfgs"
