"""Learning-rate schedules (pure) and their validation."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from mlcore.math import optimizers
from mlcore.steps import training
from mlcore.steps.schemas import Hyperparameters


@pytest.mark.parametrize(
    ("schedule", "t", "expected"),
    [
        ("constant", 0, 0.4),
        ("constant", 1000, 0.4),
        ("step", 0, 0.4),
        ("step", 9, 0.4),
        ("step", 10, 0.2),
        ("step", 25, 0.1),
        ("exponential", 0, 0.4),
        ("exponential", 5, 0.4 * math.sqrt(0.5)),
        ("exponential", 20, 0.1),
        ("inverse_time", 0, 0.4),
        ("inverse_time", 10, 0.4 / 1.5),
        ("inverse_time", 40, 0.4 / 3.0),
    ],
)
def test_scheduled_rate(schedule, t, expected):
    assert optimizers.scheduled_rate(schedule, 0.4, t, decay_rate=0.5, decay_steps=10) == pytest.approx(expected)


def test_an_unknown_schedule_is_refused():
    with pytest.raises(ValueError, match="unknown learning-rate schedule 'cosine'"):
        optimizers.scheduled_rate("cosine", 0.1, 1)


def test_decay_steps_below_one_are_refused():
    with pytest.raises(ValueError, match="decay_steps >= 1"):
        optimizers.scheduled_rate("step", 0.1, 1, decay_steps=0)


def test_hyperparameters_validate_the_schedule():
    with pytest.raises(ValidationError, match="would grow the learning rate"):
        Hyperparameters(lr_schedule="step", lr_decay_rate=2.0)
    with pytest.raises(ValidationError, match="lr_schedule"):
        Hyperparameters(lr_schedule="cosine")
    with pytest.raises(ValidationError, match="lr_decay_steps"):
        Hyperparameters(lr_decay_steps=0)
    assert Hyperparameters(lr_schedule="inverse_time", lr_decay_rate=3.0).lr_decay_rate == 3.0  # a rate, not a factor
    hp = Hyperparameters(learning_rate=0.4, lr_schedule="step", lr_decay_rate=0.5, lr_decay_steps=10)
    assert [training.learning_rate(hp, t) for t in (0, 10, 20)] == pytest.approx([0.4, 0.2, 0.1])
    assert "lr_schedule" in hp.model_dump()  # recorded in the model artifact with the other hyperparameters


@pytest.mark.parametrize("field", ["batch_size", "max_staleness"])
def test_async_settings_are_not_negative(field):
    with pytest.raises(ValidationError, match=field):
        Hyperparameters(**{field: -1})
