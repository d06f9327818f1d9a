"""The default search space's async network trials train on the bundled data sets without diverging: the first
rung (15 epochs) of each on 2 shards (a tuning job's defaults), the workers' steps run in process one after the
other (``mlcore.steps.asynchronous``). Before Adam and max_staleness 3 were their defaults, 2 of the 4 async
networks of a 16-trial housing job (plain SGD and momentum at 0.02) diverged at round 0."""

from __future__ import annotations

import numpy as np
import pytest

from mlcore.infra import layout
from mlcore.math import models, tuning
from mlcore.steps import asynchronous, problem, tabular
from mlcore.steps.preparation import in_memory
from mlcore.steps.schemas import AsyncWorkerTask, Hyperparameters, InitTask, Shard, TrainingRequest
from tests.helpers import ROOT

from .fakes import FakeStore

BUNDLED = {"housing": "price_k", "insurance": "charges"}
EPOCHS, SHARDS = 15, 2  # a tuning job's first rung and n_shards


def _prepared(name: str):
    data, target = (ROOT / "data" / f"{name}.csv").read_bytes(), BUNDLED[name]
    found = tabular.scan(lambda: iter([data]))
    body = {"dataset": name, "target": target, "model_name": "m", "mode": "async"}
    request, setup = problem.setup(TrainingRequest.model_validate(body), {"rows": found.rows, "columns": found.columns})
    frame = tabular.read_tables([data])
    return in_memory.build_matrices(
        tabular.to_columns(frame),
        tabular.column_kinds(frame),
        target,
        0.2,
        0,
        "mlp_regression",
        0.0,
        problem.with_decisions(request.preprocessing, setup),
    )


def _async_test_r2(prepared, sampled: dict) -> float:
    """Train the trial's rung 0 (raises TrainingDiverged as its run would); its averaged model's test R²."""
    hp = Hyperparameters.model_validate({**sampled, "max_epochs": EPOCHS})
    shards = np.array_split(prepared.train, SHARDS)
    store, run = FakeStore(), "trial"
    n_features = prepared.train.shape[1] - 1
    asynchronous.init_async_run(
        store, InitTask(action="init", run_id=run, n_features=n_features, hyperparameters=hp, mode="async")
    )
    for round_ in range(EPOCHS):
        for i, rows in enumerate(shards):
            shard = Shard(index=i, key=f"shards/{i}.npy", rows=len(rows))
            task = AsyncWorkerTask(action="async_steps", run_id=run, round=round_, shard=shard, hyperparameters=hp)
            asynchronous.run_async_steps(store, task, shard=rows)
    head = asynchronous.read_head(store, layout.async_head_key(run))
    X, y = prepared.test[:, :-1].astype(np.float64), prepared.test[:, -1].astype(np.float64)
    predicted = models.Net(hp.model, head.shapes).predict(head.model.ravel(), X)
    return 1.0 - float(np.sum((y - predicted) ** 2) / np.sum((y - y.mean()) ** 2))


@pytest.mark.parametrize("name", BUNDLED)
def test_the_default_async_network_trials_do_not_diverge(name):
    prepared = _prepared(name)
    trials = [t for t in tuning.sample_trials({}, 16, 0, "regression") if t["mode"] == "async"]
    networks = [t["hyperparameters"] for t in trials if t["hyperparameters"]["model"] == "mlp_regression"]
    assert len(networks) == 4
    assert all((hp["optimizer"], hp["max_staleness"]) == ("adam", 3) for hp in networks)
    r2 = [_async_test_r2(prepared, hp) for hp in networks]  # TrainingDiverged fails the test
    assert all(np.isfinite(r2))
    assert max(r2) > 0.9  # the search has a good network to promote
