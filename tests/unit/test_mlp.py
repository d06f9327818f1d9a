"""Multilayer perceptrons (math.mlp, math.models): gradients against finite differences, seeded initialization, the
flat-vector-and-layout contract, the schema's refusals, and training through the engine's steps in memory."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from mlcore.infra import layout
from mlcore.infra.errors import InvalidInput
from mlcore.math import linear, mlp, models
from mlcore.steps import asynchronous, training
from mlcore.steps.schemas import (
    AsyncProgressTask,
    AsyncWorkerTask,
    Block,
    Hyperparameters,
    InitTask,
    Shard,
    TrainingRequest,
)
from tests.unit.fakes import FakeStore
from tests.unit.helpers import train_in_memory

CASES = [
    ("regression", 1, "relu"),
    ("regression", 1, "tanh"),
    ("classification", 2, "relu"),
    ("classification", 2, "tanh"),
    ("classification", 3, "relu"),
    ("classification", 3, "tanh"),
]


def _rows(n_outputs: int, rows: int = 40, features: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, features))
    y = rng.integers(0, n_outputs, size=rows).astype(np.float64) if n_outputs > 1 else rng.normal(size=rows)
    return X, y


@pytest.mark.parametrize(("task", "k", "activation"), CASES)
def test_every_gradient_matches_finite_differences(task, k, activation):
    X, y = _rows(k)
    shapes = mlp.make_layout(3, [5, 4], k)
    theta = mlp.init(shapes, activation, seed=1) + np.random.default_rng(2).normal(scale=0.1, size=mlp.n_params(shapes))
    l2 = 0.3

    def objective(t):
        loss_sum, grad_sum = mlp.loss_grad_sums(task, t, shapes, activation, X, y)
        return mlp.regularized_objective(loss_sum, grad_sum, len(y), t, l2, shapes)

    _, grad = objective(theta)
    eps = 1e-6
    numeric = np.array(
        [(objective(theta + eps * e)[0] - objective(theta - eps * e)[0]) / (2 * eps) for e in np.eye(theta.size)]
    )
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(("task", "k", "activation"), CASES[::2])
def test_float32_rows_give_the_float64_gradient_to_float32_precision(task, k, activation):
    X, y = _rows(k, rows=200)
    shapes = mlp.make_layout(3, [8], k)
    theta = mlp.init(shapes, activation, seed=4)
    loss64, grad64 = mlp.loss_grad_sums(task, theta, shapes, activation, X, y)
    loss32, grad32 = mlp.loss_grad_sums(task, theta, shapes, activation, X.astype(np.float32), y.astype(np.float32))
    assert grad32.dtype == np.float64
    np.testing.assert_allclose(loss32, loss64, rtol=1e-5)
    np.testing.assert_allclose(grad32, grad64, rtol=1e-4, atol=1e-4)


def test_initialization_is_seeded_he_for_relu_and_glorot_for_tanh_with_zero_biases():
    shapes = mlp.make_layout(4, [3, 2], 2)
    assert shapes == ((5, 3), (4, 2), (3, 2))
    a, b = mlp.init(shapes, "relu", seed=7), mlp.init(shapes, "relu", seed=7)
    assert a.tobytes() == b.tobytes() and a.tobytes() != mlp.init(shapes, "relu", seed=8).tobytes()
    rng = np.random.default_rng(7)
    first = rng.normal(0.0, np.sqrt(2.0 / 4), size=(4, 3))
    second = rng.normal(0.0, np.sqrt(2.0 / 3), size=(3, 2))
    last = rng.uniform(-np.sqrt(6.0 / 4), np.sqrt(6.0 / 4), size=(2, 2))
    (W1, b1), (W2, b2), (W3, b3) = mlp.layers(a, shapes)
    np.testing.assert_array_equal(W1, first)
    np.testing.assert_array_equal(W2, second)
    np.testing.assert_array_equal(W3, last)
    assert not (b1.any() or b2.any() or b3.any())
    rng = np.random.default_rng(7)
    W1_tanh = mlp.layers(mlp.init(shapes, "tanh", seed=7), shapes)[0][0]
    np.testing.assert_array_equal(W1_tanh, rng.uniform(-np.sqrt(6.0 / 7), np.sqrt(6.0 / 7), size=(4, 3)))
    with pytest.raises(ValueError, match="unknown activation 'sigmoid'"):
        mlp.init(shapes, "sigmoid", seed=0)


def test_a_linear_model_is_the_one_layer_case_bit_for_bit():
    X, y = _rows(3)
    theta = np.random.default_rng(0).normal(size=12)
    net = models.Net("softmax_regression", models.make_layout("softmax_regression", 3, 3))
    assert net.layout == ((4, 3),) and net.init(0).tobytes() == np.zeros(12).tobytes()
    ours = net.loss_grad_sums(theta, X, y)
    theirs = linear.loss_grad_sums("softmax_regression", theta, X, y)
    assert ours[0] == theirs[0] and ours[1].tobytes() == theirs[1].tobytes()
    assert net.predict_proba(theta, X).tobytes() == linear.predict_proba("softmax_regression", theta, X).tobytes()


def test_params_store_a_flat_vector_and_its_layout_and_read_back_exactly():
    store = FakeStore()
    shapes = models.make_layout("mlp_classifier", 3, 4, [6, 5])
    theta = mlp.init(shapes, "tanh", seed=3)
    store.put_arrays("net.npz", training.params_arrays(theta, shapes, {"m": np.ones(theta.size)}))
    assert store.archives["net.npz"]["layout"].tolist() == [[4, 6], [7, 5], [6, 4]]
    back, back_layout, state = training.read_params(store, "net.npz")
    assert back.tobytes() == theta.tobytes() and back_layout == shapes and list(state) == ["m"]
    linear_layout = ((4, 2),)
    store.put_arrays("linear.npz", training.params_arrays(np.arange(8.0), linear_layout, {}))
    assert set(store.archives["linear.npz"]) == {"theta"} and store.archives["linear.npz"]["theta"].shape == (4, 2)
    back, back_layout, _ = training.read_params(store, "linear.npz")
    assert back.tolist() == list(range(8)) and back_layout == linear_layout


def test_predictions_follow_the_forward_pass():
    X, _ = _rows(3)
    shapes = models.make_layout("mlp_classifier", 3, 3, [4])
    theta = mlp.init(shapes, "relu", seed=0)
    (W1, b1), (W2, b2) = mlp.layers(theta, shapes)
    Z = np.maximum(X @ W1 + b1, 0) @ W2 + b2
    net = models.Net("mlp_classifier", shapes, "relu")
    np.testing.assert_allclose(net.predict_proba(theta, X), np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True))
    assert net.predict(theta, X).tolist() == np.argmax(Z, axis=1).tolist()


# -- the request's refusals -----------------------------------------------------------------------------------


def _refusal(**hp) -> str:
    with pytest.raises(ValidationError) as err:
        Hyperparameters(**hp)
    return str(err.value)


@pytest.mark.parametrize(
    ("hp", "message"),
    [
        ({"model": "mlp_regression", "hidden_layers": []}, "hidden_layers must list 1 to 8 layer sizes, got 0"),
        ({"model": "mlp_regression", "hidden_layers": [8, 0]}, "hidden_layers sizes must be 1 to 1024 units, got 0"),
        ({"model": "mlp_classifier", "hidden_layers": [-3]}, "hidden_layers sizes must be 1 to 1024 units, got -3"),
        ({"model": "mlp_regression", "hidden_layers": [2048]}, "hidden_layers sizes must be 1 to 1024 units, got 2048"),
        ({"model": "mlp_regression", "hidden_layers": [4] * 9}, "hidden_layers must list 1 to 8 layer sizes, got 9"),
        (
            {"model": "mlp_regression", "hidden_layers": [1000, 1000]},
            "hidden_layers [1000, 1000] have 1001000 parameters between them, over the limit of 250000",
        ),
        ({"model": "mlp_regression", "activation": "sigmoid"}, "activation\n  Input should be 'relu' or 'tanh'"),
        (
            {"model": "linear_regression", "hidden_layers": [4]},
            "hidden_layers applies to mlp_regression and mlp_classifier only, not linear_regression",
        ),
        (
            {"model": "mlp_regression", "solver": "exact"},
            "solver 'exact' fits linear models only, not mlp_regression; use solver 'lbfgs', 'sgd' or 'auto'",
        ),
        (
            {"model": "mlp_classifier", "solver": "newton"},
            "solver 'newton' fits linear models only, not mlp_classifier; use solver 'lbfgs', 'sgd' or 'auto'",
        ),
        (
            {"model": "mlp_regression", "solver": "lbfgs", "worker_mode": "local_steps"},
            "solver 'lbfgs' does not combine with worker_mode 'local_steps'",
        ),
    ],
)
def test_a_network_the_engine_cannot_run_is_refused_naming_the_field(hp, message):
    assert message in _refusal(**hp)


def test_an_async_mlp_with_a_round_solver_is_refused():
    with pytest.raises(ValidationError, match="solver 'lbfgs' runs in sync mode only, not mode 'async'"):
        TrainingRequest(
            dataset="d",
            target="t",
            model_name="m",
            mode="async",
            hyperparameters={"model": "mlp_regression", "solver": "lbfgs"},
        )


def test_auto_is_lbfgs_for_an_mlp_in_sync_gradient_mode_and_sgd_otherwise():
    hp = Hyperparameters(model="mlp_classifier")
    assert hp.resolved_solver(3, 3) == "lbfgs" and hp.resolved_solver(3, 3, "async") == "sgd"
    assert Hyperparameters(model="mlp_regression", worker_mode="local_steps").resolved_solver(3) == "sgd"


def test_a_network_too_large_for_the_data_is_refused_at_init_and_nothing_is_written():
    store = FakeStore()
    hp = Hyperparameters(model="mlp_regression", hidden_layers=[200])
    with pytest.raises(InvalidInput) as err:
        training.init_run(store, InitTask(run_id="run", n_features=2000, hyperparameters=hp))
    assert str(err.value) == (
        "hidden_layers [200] make a network of 400401 parameters with 2000 features after preprocessing and 1 "
        "outputs, over the limit of 250000; use smaller hidden_layers"
    )
    assert not store.archives and not store.writes


# -- training through the engine's steps, in memory -----------------------------------------------------------


def xor_rows(rows: int, seed: int, classifier: bool):
    """Two features whose product decides the target: no linear model can fit it."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, size=(rows, 2))
    y = (X[:, 0] * X[:, 1] > 0).astype(np.float64) if classifier else 3.0 * X[:, 0] * X[:, 1]
    return np.column_stack([X, y]).astype(np.float32)


def _train_sync(hp: Hyperparameters, shards: list[np.ndarray], n_outputs: int, seed: int = 5):
    store = FakeStore()
    state, _ = train_in_memory(store, hp, shards, n_outputs=n_outputs, seed=seed)
    theta, shapes, _ = training.read_params(store, state.params_key)
    return store, state, models.Net(hp.model, shapes, hp.activation), theta


def _r2(y, predicted) -> float:
    return 1.0 - float(np.sum((y - predicted) ** 2) / np.sum((y - y.mean()) ** 2))


@pytest.mark.parametrize(
    "hp",
    [
        {"solver": "auto"},
        {"solver": "sgd", "optimizer": "adam", "learning_rate": 0.02, "max_epochs": 400},
        {"solver": "sgd", "optimizer": "momentum", "learning_rate": 0.1, "max_epochs": 400},
        {"worker_mode": "local_steps", "learning_rate": 0.1, "max_epochs": 100, "steps_per_invocation": 10},
    ],
    ids=["lbfgs", "adam", "momentum", "local_steps"],
)
def test_sync_training_fits_what_a_linear_model_cannot(hp):
    shards = [xor_rows(200, seed, classifier=False) for seed in range(3)]
    test = xor_rows(500, 9, classifier=False)
    hyper = Hyperparameters(model="mlp_regression", hidden_layers=[16, 16], activation="tanh", **hp)
    store, state, net, theta = _train_sync(hyper, shards, 1)
    assert state.reason in ("converged", "max_epochs")
    assert _r2(test[:, -1], net.predict(theta, test[:, :-1].astype(np.float64))) > 0.8
    train = np.concatenate(shards).astype(np.float64)
    ridge = np.linalg.lstsq(np.column_stack([train[:, :-1], np.ones(len(train))]), train[:, -1], rcond=None)[0]
    assert _r2(test[:, -1], test[:, :-1] @ ridge[:-1] + ridge[-1]) < 0.05
    assert store.archives[state.params_key]["layout"].tolist() == [[3, 16], [17, 16], [17, 1]]


def test_the_lbfgs_mlp_classifier_beats_the_majority_on_xor_and_replays_identically():
    shards = [xor_rows(200, seed, classifier=True) for seed in range(2)]
    test = xor_rows(500, 9, classifier=True)
    hp = Hyperparameters(model="mlp_classifier", hidden_layers=[8], l2=1e-4)
    _, state, net, theta = _train_sync(hp, shards, 2)
    accuracy = float(np.mean(net.predict(theta, test[:, :-1].astype(np.float64)) == test[:, -1]))
    assert accuracy > 0.9
    _, again, _, theta_again = _train_sync(hp, shards, 2)
    assert (again.round, theta_again.tobytes()) == (state.round, theta.tobytes())
    _, _, _, other_seed = _train_sync(hp, shards, 2, seed=6)
    assert other_seed.tobytes() != theta.tobytes()


def test_a_diverging_mlp_stops_naming_the_learning_rate():
    shards = [xor_rows(100, 0, classifier=False) * 1000]
    hp = Hyperparameters(model="mlp_regression", hidden_layers=[8], solver="sgd", optimizer="sgd", learning_rate=10)
    with pytest.raises(training.TrainingDiverged, match=r"diverged at round \d+; lower learning_rate \(was 10\)"):
        _train_sync(hp, shards, 1)


def test_async_compare_and_swap_trains_an_mlp_and_keeps_its_layout():
    hp = Hyperparameters(
        model="mlp_regression",
        hidden_layers=[16],
        activation="tanh",
        solver="sgd",
        optimizer="adam",
        learning_rate=0.01,
        batch_size=64,
        max_epochs=60,
    )
    shards = [xor_rows(300, seed, classifier=False) for seed in range(2)]
    store = FakeStore()
    state = asynchronous.init_async_run(
        store, InitTask(run_id="run", n_features=2, hyperparameters=hp, mode="async", seed=1)
    )
    while not state.done:
        results = [
            asynchronous.run_async_steps(
                store,
                AsyncWorkerTask(
                    run_id="run", round=state.round, shard=Shard(index=i, key=f"s{i}", rows=300), hyperparameters=hp
                ),
                shard=s,
            )
            for i, s in enumerate(shards)
        ]
        state = asynchronous.progress(
            store, AsyncProgressTask(run_id="run", round=state.round, hyperparameters=hp, results=results)
        )
    head = asynchronous.read_head(store, layout.async_head_key("run"))
    assert head.version == state.round * 2 * hp.steps_per_invocation  # every update applied once
    assert head.layout is not None and head.layout.tolist() == [[3, 16], [17, 1]]
    theta, shapes, _ = training.read_params(store, state.params_key)
    test = xor_rows(500, 9, classifier=False)
    predicted = models.Net(hp.model, shapes, "tanh").predict(theta, test[:, :-1].astype(np.float64))
    assert _r2(test[:, -1], predicted) > 0.6


def test_early_stopping_judges_the_network_on_the_validation_rows():
    shards = [xor_rows(200, 0, classifier=False)]
    block = xor_rows(100, 1, classifier=False)
    hp = Hyperparameters(model="mlp_regression", hidden_layers=[4], l2=0.01, patience=2, max_epochs=50)
    store = FakeStore({}, {"validation.npy": block})
    state, _ = train_in_memory(store, hp, shards, seed=2, validation=Block(key="validation.npy", rows=100))
    theta0, shapes, _ = training.read_params(store, layout.params_key("run", 0))
    net = models.Net("mlp_regression", shapes, "relu")
    loss_sum, grad_sum = net.loss_grad_sums(theta0, block[:, :-1], block[:, -1])
    expected, _ = net.regularized_objective(loss_sum, grad_sum, 100, theta0, 0.01)
    assert store.documents[layout.round_key("run", 0)]["validation_loss"] == pytest.approx(expected, rel=1e-12)
    curve = training.training_curve(store, "run")
    best = min(curve, key=lambda r: r["validation_loss"])
    assert state.reason == "early_stopping" and state.params_key == layout.params_key("run", best["round"])
