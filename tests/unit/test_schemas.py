"""Validation of the training workflow's input."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mlcore.steps import schemas
from mlcore.steps.schemas import Hyperparameters, TrainingRequest

BASE = {"dataset": "houses", "target": "price", "model_name": "houses-v1"}


def events(max_epochs: int, n_shards: int) -> int:
    return 40 + max_epochs * (12 + 7 * n_shards)


def test_defaults():
    request = TrainingRequest(**BASE)
    assert (request.n_shards, request.test_fraction, request.seed, request.version) == (4, 0.2, 0, None)
    assert request.hyperparameters == Hyperparameters()
    assert request.hyperparameters.optimizer == "momentum"


@pytest.mark.parametrize("n_shards", [0, 1001])
def test_shard_count_bounds(n_shards):
    with pytest.raises(ValidationError) as info:
        TrainingRequest(**BASE, n_shards=n_shards, hyperparameters={"max_epochs": 1})
    assert info.value.errors()[0]["loc"] == ("n_shards",)


def test_more_shards_than_the_inline_map_takes_run_in_a_distributed_map():
    request = TrainingRequest(**BASE, n_shards=1000, hyperparameters={"max_epochs": 2000})
    assert request.n_shards > request.inline_map_max_shards == 40
    assert request.rounds_per_execution == (25_000 - 40) // (12 + 12)  # the children's events are not ours
    with pytest.raises(ValidationError, match="async mode runs at most inline_map_max_shards=40 shards"):
        TrainingRequest(**BASE, n_shards=41, mode="async")
    with pytest.raises(ValidationError, match="inline_map_max_shards"):
        TrainingRequest(**BASE, inline_map_max_shards=41)


def test_history_event_limit_message():
    # async passes run in the parent (sync rounds on the inline Map run in Express children: see below)
    with pytest.raises(ValidationError) as info:
        TrainingRequest(**BASE, n_shards=40, rounds_per_execution=2000, mode="async")
    message = str(info.value)
    assert "rounds_per_execution=2000 with n_shards=40 needs about 584040 execution history events" in message
    assert "over Step Functions' limit of 25000; at most 85 rounds fit in one execution" in message
    assert events(2000, 40) == 584040 and events(85, 40) <= 25_000 < events(86, 40)


def test_long_runs_continue_in_new_executions():
    request = TrainingRequest(**BASE, n_shards=40, mode="async", hyperparameters={"max_epochs": 2000})
    assert request.rounds_per_execution == 85  # the most that fit; the run continues in new executions
    assert TrainingRequest(**BASE, n_shards=1, rounds_per_execution=5).rounds_per_execution == 5


@pytest.mark.parametrize(
    ("rounds", "n_shards", "ok"),
    [(300, 10, True), (300, 11, False), (1313, 1, True), (1314, 1, False), (2000, 1, False)],
)
def test_history_event_limit_boundary(rounds, n_shards, ok):
    assert (events(rounds, n_shards) <= schemas.HISTORY_EVENTS_LIMIT) is ok
    kwargs = {**BASE, "n_shards": n_shards, "rounds_per_execution": rounds, "mode": "async"}
    if ok:
        TrainingRequest(**kwargs)
    else:
        with pytest.raises(ValidationError, match="25000"):
            TrainingRequest(**kwargs)
    TrainingRequest(**{**BASE, "n_shards": n_shards, "hyperparameters": {"max_epochs": rounds}})  # never rejected


def test_sync_rounds_on_the_inline_map_count_express_calls_against_the_history_limit():
    # each call of rounds_per_call rounds is 8 events of the parent's history, whatever the shards
    request = TrainingRequest(**BASE, n_shards=40, hyperparameters={"max_epochs": 2000})
    assert request.rounds_per_call == 25
    assert request.rounds_per_execution == (25_000 - 40) // 8 * 25 == 78_000
    assert TrainingRequest(**BASE, n_shards=40, rounds_per_execution=2000).rounds_per_execution == 2000
    assert TrainingRequest(**BASE, rounds_per_call=1).rounds_per_execution == 3120
    with pytest.raises(ValidationError) as info:
        TrainingRequest(**BASE, rounds_per_call=1, rounds_per_execution=3121)
    message = str(info.value)
    assert "rounds_per_execution=3121 with n_shards=4 needs about 25008 execution history events" in message
    assert "at most 3120 rounds fit in one execution" in message


@pytest.mark.parametrize("rounds_per_call", [0, 51])
def test_rounds_per_call_bounds(rounds_per_call):
    with pytest.raises(ValidationError) as info:
        TrainingRequest(**BASE, rounds_per_call=rounds_per_call)
    assert info.value.errors()[0]["loc"] == ("rounds_per_call",)


def test_extra_fields_are_rejected():
    with pytest.raises(ValidationError) as info:
        TrainingRequest(**BASE, shards=4)
    assert info.value.errors()[0]["type"] == "extra_forbidden"
    assert info.value.errors()[0]["loc"] == ("shards",)
    with pytest.raises(ValidationError) as info:
        TrainingRequest(**BASE, hyperparameters={"lr": 0.1})
    assert info.value.errors()[0]["type"] == "extra_forbidden"
    assert info.value.errors()[0]["loc"] == ("hyperparameters", "lr")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("model_name", "../x"),
        ("model_name", ""),
        ("model_name", "a" * 65),
        ("test_fraction", 0.0),
        ("test_fraction", 0.9),
        ("seed", -1),
    ],
)
def test_request_field_bounds(field, value):
    with pytest.raises(ValidationError) as info:
        TrainingRequest(**{**BASE, field: value})
    assert info.value.errors()[0]["loc"] == (field,)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("optimizer", "rmsprop"),
        ("learning_rate", 0.0),
        ("learning_rate", 11.0),
        ("momentum", 1.0),
        ("l2", -0.1),
        ("max_epochs", 0),
        ("max_epochs", 2001),
        ("tolerance", -1e-9),
        ("model", "logistic"),
    ],
)
def test_hyperparameter_bounds(field, value):
    with pytest.raises(ValidationError) as info:
        Hyperparameters(**{field: value})
    assert info.value.errors()[0]["loc"] == (field,)


def test_missing_required_fields():
    with pytest.raises(ValidationError) as info:
        TrainingRequest(dataset="houses")
    assert sorted(e["loc"][0] for e in info.value.errors()) == ["model_name", "target"]
