"""Early stopping on the validation loss (aggregator against moto S3): the loss is recorded per round,
the run stops once it has not improved for ``patience`` rounds, and the best parameters are kept."""

from __future__ import annotations

import numpy as np

from mlcore.infra import layout
from mlcore.infra.storage import S3Store
from mlcore.steps import training
from mlcore.steps.schemas import AggregateTask, Block, Hyperparameters, InitTask, Shard, WorkerTask


def _run(cloud, patience, rounds=8):
    store = S3Store(cloud.stack.bucket)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 1))
    store.put_array("processed/r/shard.npy", np.hstack([x, 2 * x]).astype(np.float32))  # training: y = 2x
    # validation: y = x, so on the way from theta = 0 to 2 the validation loss falls, then rises again
    v = rng.normal(size=(32, 1))
    store.put_array("processed/r/validation.npy", np.hstack([v, 1 * v]).astype(np.float32))
    hp = Hyperparameters(
        optimizer="sgd", learning_rate=0.3, tolerance=0.0, max_epochs=rounds, patience=patience, solver="sgd"
    )
    state = training.init_run(store, InitTask(action="init", run_id="run-es", n_features=1, hyperparameters=hp))
    shard = Shard(index=0, key="processed/r/shard.npy", rows=64)
    validation = Block(key="processed/r/validation.npy", rows=32)
    while not state.done:
        task = WorkerTask(run_id="run-es", round=state.round, params_key=state.params_key, shard=shard)
        result = training.compute_gradient(store, task)
        state = training.aggregate(
            store,
            AggregateTask(
                run_id="run-es",
                round=state.round,
                params_key=state.params_key,
                hyperparameters=hp,
                results=[result],
                validation=validation,
            ),
        )
    return store, state, training.training_curve(store, "run-es")


def _best_round(curve) -> int:
    return int(np.argmin([r["validation_loss"] for r in curve]))


def test_stops_when_the_validation_loss_has_not_improved_for_patience_rounds(cloud):
    _, state, curve = _run(cloud, patience=2)
    best = _best_round(curve)
    assert state.reason == "early_stopping"
    assert len(curve) == best + 2 + 1  # two rounds without improvement after the best one
    assert all(r["best_validation"]["round"] == min(r["round"], best) for r in curve)
    assert all(r["finished_at"] > 0 and r["seconds"] >= 0 for r in curve)  # wall time per round


def test_early_stopping_keeps_the_best_parameters(cloud):
    store, state, curve = _run(cloud, patience=2)
    assert state.params_key == layout.params_key("run-es", _best_round(curve))
    theta = store.get_arrays(state.params_key)["theta"]
    assert abs(theta[0, 0] - 1.0) < abs(theta[0, 0] - 2.0)  # nearer the validation optimum than training's


def test_without_patience_the_validation_loss_is_only_recorded(cloud):
    _, state, curve = _run(cloud, patience=None, rounds=6)
    assert state.reason == "max_epochs" and len(curve) == 6
    assert all(r["validation_loss"] is not None for r in curve)
