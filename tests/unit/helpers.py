"""Plain helpers shared by the unit tests (the fakes are in fakes.py)."""

from __future__ import annotations

import numpy as np

from mlcore.math.preprocessing import CategoricalColumn, NumericColumn, Preprocessor
from mlcore.serving.registry import LinearWeights, ModelArtifact

PREP = Preprocessor(
    target="price",
    columns=[
        NumericColumn(name="sqft", fill=100.0, mean=120.0, scale=40.0),
        CategoricalColumn(name="city", fill="b", categories=["a", "b", "c"]),
    ],
)


def make_artifact(version: int = 1, intercept: float = 7.0, name: str = "houses") -> ModelArtifact:
    """A linear model over PREP (sqft numeric, city one of a/b/c) with coefficients 2, 10, 20, 30."""
    return ModelArtifact(
        name=name,
        version=version,
        created_at="2025-01-01T00:00:00+00:00",
        model=LinearWeights(
            type="linear_regression", coefficients=[[2.0], [10.0], [20.0], [30.0]], intercept=[intercept]
        ),
        target="price",
        feature_names=PREP.feature_names,
        preprocessor=PREP,
        hyperparameters={"optimizer": "momentum"},
        metrics={"r2": 0.9},
        training_curve=[{"round": 0, "loss": 1.0}],
        lineage={"dataset": "houses", "version": "v1"},
        library_versions={"numpy": np.__version__},
    )


def central_differences(f, theta: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """The gradient of f at theta by central differences, one coordinate at a time."""
    grad = np.zeros_like(theta)
    for i in range(theta.size):
        step = np.zeros_like(theta)
        step[i] = h
        grad[i] = (f(theta + step) - f(theta - step)) / (2.0 * h)
    return grad


def train_in_memory(store, hp, shards: list[np.ndarray], *, n_outputs: int = 1, seed: int = 0, validation=None):
    """The sync workflow's rounds in process, as the state machine calls the steps: one worker per ``[X | y]``
    block of ``shards``, then the aggregator, until the run is done. The final state and each round's results."""
    from mlcore.steps import training
    from mlcore.steps.schemas import AggregateTask, InitTask, Shard, WorkerTask

    n_features = shards[0].shape[1] - 1
    init = InitTask(run_id="run", n_features=n_features, n_outputs=n_outputs, hyperparameters=hp, seed=seed)
    state = training.init_run(store, init)
    rounds = []
    while not state.done:
        results = [
            training.compute_gradient(
                store,
                WorkerTask(
                    run_id="run",
                    model=hp.model,
                    round=state.round,
                    params_key=state.params_key,
                    shard=Shard(index=i, key=f"shard-{i}", rows=len(block), n_shards=len(shards)),
                    hyperparameters=hp,
                ),
                shard=block,
            )
            for i, block in enumerate(shards)
        ]
        rounds.append(results)
        task = AggregateTask(
            run_id="run",
            round=state.round,
            params_key=state.params_key,
            hyperparameters=hp,
            results=results,
            validation=validation,
        )
        state = training.aggregate(store, task)
    return state, rounds
