"""An MLP too large for the documented limit (models.MLP_MAX_PARAMS: the artifact's JSON under Lambda's 6 MB payload)
once its inputs are counted as the preprocessing will encode them (one-hot and hashed columns expanded) is refused
before the run starts, judged from the data set's stored profile, and nothing is started or written."""

from __future__ import annotations

import pytest

from mlcore.infra import layout
from mlcore.infra.errors import InvalidInput
from mlcore.math import models
from mlcore.steps import runs
from mlcore.steps.schemas import TrainingRequest

from .fakes import FakeStore

ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:training"


def _meta(city: dict, label_classes: int = 3, rows: int = 1000) -> dict:
    """x (numeric), city (text), y (numeric target), label (a text target)."""
    columns = {
        "x": {"kind": "numeric", "missing": 0, "min": 0.0, "max": 9.0},
        "city": {"kind": "categorical", "missing": 0, **city},
        "y": {"kind": "numeric", "missing": 0, "min": 1.0, "max": 5.0},
        "label": {"kind": "categorical", "missing": 0, "distinct": label_classes},
    }
    return {"dataset": "d", "version": "v1", "rows": rows, "columns": [{"name": n, **c} for n, c in columns.items()]}


def _request(hp: dict, **fields) -> TrainingRequest:
    body = {"dataset": "d", "target": "y", "model_name": "m", "hyperparameters": {"model": "mlp_regression", **hp}}
    return TrainingRequest.model_validate({**body, **fields})


def _refusal(request: TrainingRequest, meta: dict) -> str:
    with pytest.raises(InvalidInput) as err:
        runs.check_feasible(request, meta)
    return str(err.value)


BIG = {"hidden_layers": [1024, 200]}  # 205,201 parameters past the first layer: 1024 per input feature beside them


def test_one_hot_columns_count_as_their_categories_and_push_the_network_over_the_limit():
    # features: x, city's 45 categories and label's 3 = 49; (49 + 1) x 1024 + 1025 x 200 + 201 x 1
    count = 50 * 1024 + 1025 * 200 + 201
    assert count == 256_401 > models.MLP_MAX_PARAMS
    assert _refusal(_request(BIG), _meta({"distinct": 45})) == (
        f"hidden_layers [1024, 200] make a network of {count} parameters with 49 features after preprocessing "
        "(one-hot and hashed columns expanded) and 1 outputs, over the limit of 250000; use smaller hidden_layers"
    )


def test_the_count_is_the_one_the_first_round_computes():
    request, meta = _request(BIG), _meta({"distinct": 45})
    layout_ = models.make_layout("mlp_regression", 49, 1, [1024, 200])
    assert f"network of {models.n_params(layout_)} parameters" in _refusal(request, meta)


@pytest.mark.parametrize(
    ("fields", "city"),
    [
        ({}, {"distinct": 2}),  # 6 features: 7 x 1024 + 205,201 = 212,369
        ({"preprocessing": {"columns": {"city": {"encoding": "hash", "hash_buckets": 16}}}}, {"distinct": 45}),
        ({"preprocessing": {"columns": {"city": {"max_categories": 10}}}}, {"distinct": 45}),
        ({"preprocessing": {"columns": {"city": {"drop": True}}}}, {"distinct": 45}),
        # a column the profile does not count (a numeric one declared categorical) counts 1: not judged further
        ({"preprocessing": {"columns": {"x": {"kind": "categorical"}}}}, {"distinct": 2}),
    ],
)
def test_the_same_network_on_fewer_encoded_features_passes(fields, city):
    runs.check_feasible(_request(BIG, **fields), _meta(city))


def test_hashed_and_capped_columns_count_as_their_buckets_and_their_cap():
    hashed = {"preprocessing": {"columns": {"city": {"encoding": "hash", "hash_buckets": 60}}}}
    assert "with 64 features after preprocessing" in _refusal(_request(BIG, **hashed), _meta({"distinct": 5}))
    capped = {"preprocessing": {"columns": {"city": {"max_categories": 200}}, "max_categories": 300}}
    meta = _meta({"distinct": ">= 10000"}, rows=100_000)
    assert "with 204 features after preprocessing" in _refusal(_request(BIG, **capped), meta)


def test_a_classifier_counts_one_output_per_class():
    hp = {"model": "mlp_classifier", "hidden_layers": [1024, 230]}
    # features: x, city's 4, y: 6; 7 x 1024 + 1025 x 230 + 231 x 40 = 252,158 with label's 40 classes
    message = _refusal(_request(hp, target="label"), _meta({"distinct": 4}, label_classes=40))
    assert message.startswith("hidden_layers [1024, 230] make a network of 252158 parameters with 6 features")
    assert "and 40 outputs" in message
    runs.check_feasible(_request(hp, target="label"), _meta({"distinct": 4}, label_classes=3))


def test_a_linear_model_is_not_judged_by_the_network_limit():
    runs.check_feasible(_request({"model": "linear_regression"}), _meta({"distinct": 45}))


class StartRecorder:
    def __init__(self) -> None:
        self.started: list[str] = []

    def start_execution(self, name: str, **_) -> dict:
        self.started.append(name)
        return {}


def test_an_oversized_network_starts_nothing_and_writes_nothing():
    store = FakeStore(
        {
            layout.dataset_latest_key("d"): {"dataset": "d", "version": "v1"},
            layout.dataset_meta_key("d", "v1"): _meta({"distinct": 45}),
        }
    )
    before = dict(store.documents)
    sfn = StartRecorder()
    with pytest.raises(InvalidInput, match=r"^hidden_layers \[1024, 200\] make a network of 256401 parameters"):
        runs.start(store, sfn, ARN, _request(BIG))
    assert sfn.started == []
    assert store.documents == before and not store.arrays and not store.archives and not store.objects
    assert sum(store.writes.values()) == 0
    runs.start(store, sfn, ARN, _request({"hidden_layers": [64]}))
    assert len(sfn.started) == 1
