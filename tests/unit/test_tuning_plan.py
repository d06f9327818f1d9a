"""A tuning job's plan before it starts (mlcore.steps.tuning_plan) and its cost (mlcore.math.cost): the estimate
under successive halving, the budget refusals, and the same search as SageMaker Automatic Model Tuning would bill it."""

from __future__ import annotations

import re

import pytest

from mlcore.infra.errors import InvalidInput
from mlcore.math import cost, tuning
from mlcore.steps import problem as problems
from mlcore.steps import tuning_plan
from mlcore.steps.schemas import TuningRequest

US = cost.price_table("us-east-1")


def _meta(rows: int = 400, **columns: dict) -> dict:
    base = {
        "x": {"kind": "numeric", "missing": 0, "min": 0.0, "max": 9.0},
        "city": {"kind": "categorical", "missing": 0, "distinct": 3},
        "y": {"kind": "numeric", "missing": 0, "min": 1.5, "max": 5.5},
        "label": {"kind": "categorical", "missing": 0, "distinct": 2},
    }
    merged = {**base, **columns}
    return {"dataset": "d", "version": "v1", "rows": rows, "columns": [{"name": k, **v} for k, v in merged.items()]}


def _request(**fields) -> TuningRequest:
    return TuningRequest.model_validate({"dataset": "d", "target": "y", "model_name": "m", **fields})


# -- cost -------------------------------------------------------------------------------------------------------------
def _per_job() -> float:
    return (
        10 * US.state_transition
        + 4 * US.lambda_request
        + 0.8 * US.lambda_gb_second  # 4 x 200 ms at 1024 MB
        + 3 * US.s3_get
        + 2 * US.s3_put
    )


def test_trial_cost_is_a_run_without_its_preparation() -> None:
    usage = cost.estimate(256, 2, 135)
    run = cost.cost(usage, US)["total"]
    prep = usage.functions["Preprocess"]
    preparation = (
        prep.gb_seconds * US.lambda_gb_second
        + US.lambda_request
        + cost.S3_REQUESTS["Preprocess"]["get"] * US.s3_get
        + (cost.S3_REQUESTS["Preprocess"]["put"] + 2) * US.s3_put  # and the 2 shards
    )
    assert cost.trial_cost(256, 2, 135, US) == pytest.approx(run - preparation, rel=1e-12)
    assert cost.preprocessing_cost(256, 2, US) == pytest.approx(preparation, rel=1e-12)
    assert cost.trial_cost(256, 2, 135, US, mode="async") > cost.trial_cost(256, 2, 135, US)


def test_preprocessing_cost_arithmetic() -> None:
    # REFERENCE_RUN's Preprocess: 4.4 us a row at 3008 MB, 1 request, 3 GETs, 2 PUTs and one PUT a shard
    expected = 4.4 * 3008 / 1024 * US.lambda_gb_second + US.lambda_request + 3 * US.s3_get + (2 + 16) * US.s3_put
    assert cost.preprocessing_cost(1_000_000, 16, US) == pytest.approx(expected, rel=1e-12)


def test_estimated_tuning_cost_counts_asha_jobs_per_rung() -> None:
    rungs = [5, 15, 45, 135]
    est = cost.estimated_tuning_cost(256, 2, rungs, 16, 3, US, modes=("sync", "async"))
    assert est["jobs_per_rung"] == [16, 6, 2, 1]
    assert est["epochs"] == 16 * 5 + 6 * 15 + 2 * 45 + 1 * 135 == 395

    def dearest(epochs: int) -> float:
        return max(cost.trial_cost(256, 2, epochs, US, mode) for mode in ("sync", "async"))

    trials = 16 * dearest(5) + 6 * dearest(15) + 2 * dearest(45) + dearest(135)
    assert est["trials"] == pytest.approx(trials, rel=1e-12)
    assert est["orchestration"] == pytest.approx(25 * _per_job(), rel=1e-12)
    assert est["preprocessing"] == pytest.approx(cost.preprocessing_cost(256, 2, US), rel=1e-12)
    assert est["total"] == pytest.approx(est["preprocessing"] + trials + est["orchestration"], rel=1e-12)
    assert est["one_trial"] == pytest.approx(est["preprocessing"] + dearest(135) + _per_job(), rel=1e-12)
    # successive halving: 16 trials cost less than 4 trained to the end
    assert est["total"] < 4 * est["one_trial"]
    sync_only = cost.estimated_tuning_cost(256, 2, rungs, 16, 3, US)
    assert sync_only["total"] < est["total"]  # sync rounds run in Express children: cheaper than async passes


def test_estimated_tuning_cost_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        cost.estimated_tuning_cost(0, 2, [5], 4, 3, US)
    with pytest.raises(ValueError, match="at least 1"):
        cost.estimated_tuning_cost(10, 2, [], 4, 3, US)
    with pytest.raises(ValueError, match="eta at least 2"):
        cost.estimated_tuning_cost(10, 2, [5], 4, 1, US)


def test_sagemaker_tuning_cost_arithmetic() -> None:
    c = cost.sagemaker_tuning_cost([10, 100.2, 3600])
    assert c["instance_type"] == "ml.m5.large"
    assert c["usd_per_hour"] == 0.115
    assert c["jobs"] == 3
    assert c["billed_seconds"] == 60 + 101 + 3600  # a 60 s minimum a job, whole seconds
    assert c["total"] == pytest.approx(3761 * 0.115 / 3600, rel=1e-12)
    assert cost.sagemaker_tuning_cost([10.0], usd_per_hour=1.0, min_billed_seconds=0)["total"] == pytest.approx(
        10 / 3600
    )
    assert cost.sagemaker_tuning_cost([])["total"] == 0
    with pytest.raises(ValueError, match="must not be negative"):
        cost.sagemaker_tuning_cost([-1.0])


# -- the plan ---------------------------------------------------------------------------------------------------------
def test_plan_of_a_regression_job() -> None:
    p = tuning_plan.plan(_request(), _meta(), "us-east-1")
    assert (p["task"], p["metric"]) == ("regression", "r2")
    assert p["problem"]["task"] == "regression" and p["problem"]["linear_model"] == "linear_regression"
    # 400 rows: a small training split searches sync trials only
    assert p["space"] == {**tuning.default_space("regression"), "mode": ["sync"]}
    assert p["trials"] == tuning.sample_trials({"mode": ["sync"]}, 16, 0, "regression")
    assert p["rungs"] == [15, 45, 135]
    assert p["jobs_per_rung"] == [16, 6, 2]
    # 400 rows: 80 test, then 64 of the 320 for validation: 256 training rows
    expected = cost.estimated_tuning_cost(256, 2, [15, 45, 135], 16, 3, US, modes=("sync",))
    assert p["estimated_cost_usd"] == pytest.approx(expected["total"], rel=1e-12)
    assert tuning_plan.plan(_request(), _meta(), "us-east-1") == p  # seeded
    assert tuning_plan.check_tuning_budget(_request(), _meta(), "us-east-1") == p["estimated_cost_usd"]


def test_async_trials_join_the_default_space_from_20000_training_rows() -> None:
    # 25,000 rows: 5,000 test, 20,000 training + validation; one row fewer is a small data set
    assert tuning.default_modes(20_000) == ["sync", "async"] and tuning.default_modes(19_999) == ["sync"]
    large = tuning_plan.plan(_request(), _meta(rows=25_000), "us-east-1")
    assert large["space"] == tuning.default_space("regression")
    assert {t["mode"] for t in large["trials"]} == {"sync", "async"}
    small = tuning_plan.plan(_request(), _meta(rows=24_998), "us-east-1")
    assert small["space"]["mode"] == ["sync"] and {t["mode"] for t in small["trials"]} == {"sync"}
    # a request's own mode stands either way
    given = tuning_plan.plan(_request(search_space={"mode": ["sync", "async"]}), _meta(), "us-east-1")
    assert given["space"]["mode"] == ["sync", "async"] and {t["mode"] for t in given["trials"]} == {"sync", "async"}


def test_plan_of_a_classification_job_with_a_narrowed_space() -> None:
    space = {"model": ["logistic_regression"], "l2": {"low": 0.001, "high": 0.1}, "mode": ["sync"]}
    p = tuning_plan.plan(_request(target="label", search_space=space, max_trials=5, seed=3), _meta(), "us-east-1")
    assert (p["task"], p["metric"]) == ("binary", "accuracy")
    assert {t["hyperparameters"]["model"] for t in p["trials"]} == {"logistic_regression"}
    assert {t["mode"] for t in p["trials"]} == {"sync"}
    assert all(0.001 <= t["hyperparameters"]["l2"] <= 0.1 for t in p["trials"])
    assert p["jobs_per_rung"] == [5, 2, 1]


def test_plan_refuses_a_job_over_its_budget_with_the_estimate() -> None:
    estimate = tuning_plan.plan(_request(), _meta(), "us-east-1")["estimated_cost_usd"]
    one = cost.estimated_tuning_cost(256, 2, [15, 45, 135], 16, 3, US, modes=("sync",))["one_trial"]
    assert one < estimate
    budget = (one + estimate) / 2
    with pytest.raises(InvalidInput) as err:
        tuning_plan.plan(_request(max_cost_usd=budget), _meta(), "us-east-1")
    assert str(err.value) == (
        f"max_cost_usd=${budget:.4f} is below the tuning job's estimated cost of ${estimate:.4f} (16 trials, 780 "
        "trial-epochs at most under successive halving, us-east-1 list prices); raise max_cost_usd or lower "
        "max_trials or max_epochs"
    )
    assert tuning_plan.plan(_request(max_cost_usd=estimate), _meta(), "us-east-1")["estimated_cost_usd"] == estimate


def test_plan_refuses_a_budget_below_one_trial() -> None:
    one = cost.estimated_tuning_cost(256, 2, [15, 45, 135], 16, 3, US, modes=("sync",))["one_trial"]
    budget = one * 0.9
    with pytest.raises(InvalidInput) as err:
        tuning_plan.plan(_request(max_cost_usd=budget), _meta(), "us-east-1")
    assert str(err.value) == (
        f"max_cost_usd=${budget:.4f} is below the estimated ${one:.4f} of a single trial trained to max_epochs=135 "
        "over 2 shards; raise max_cost_usd or lower max_epochs or n_shards"
    )


@pytest.mark.parametrize(
    ("fields", "meta", "message"),
    [
        (
            {"search_space": {"model": ["linear_regression", "mlp_classifier"]}},
            _meta(),
            "search_space.model 'mlp_classifier' does not fit a regression target; "
            "expected linear_regression or mlp_regression",
        ),
        (
            {"target": "label"},
            _meta(label={"kind": "categorical", "missing": 0, "distinct": 1}),
            "target column 'label' has a single class: there is nothing to learn",
        ),
        ({"target": "nope"}, _meta(), "target column 'nope' is not in the data set"),
        (
            {"search_space": {"mode": ["sync"], "solver": ["exact"], "model": ["mlp_regression"]}},
            _meta(),
            r"search_space: no valid trial: solver\(s\) \['exact'\] do not fit model\(s\) \['mlp_regression'\]",
        ),
    ],
)
def test_plan_refuses_what_cannot_run(fields: dict, meta: dict, message: str) -> None:
    with pytest.raises(InvalidInput, match=f"^{message}"):
        tuning_plan.plan(_request(**fields), meta, "us-east-1")


def test_plan_runs_a_training_run_s_feasibility_checks() -> None:
    with pytest.raises(InvalidInput, match=re.escape("n_shards")):
        tuning_plan.plan(_request(n_shards=40), _meta(rows=30), "us-east-1")


def test_trial_request_is_the_trial_s_training_run() -> None:
    meta = _meta(site_code={"kind": "categorical", "missing": 0, "distinct": 400})
    request = _request(seed=5, n_shards=3, validation_fraction=0.25)
    p = tuning_plan.plan(request, meta, "us-east-1")
    decided = {d["column"] for d in p["problem"]["decisions"]}
    trial = p["trials"][0]
    run = tuning_plan.trial_request(request, trial, 15, problems.infer_problem(meta, "y"))
    assert run.hyperparameters.max_epochs == 15
    assert run.mode == trial["mode"]
    assert run.hyperparameters.model == trial["hyperparameters"]["model"]
    assert (run.seed, run.n_shards, run.validation_fraction, run.test_fraction) == (5, 3, 0.25, 0.2)
    assert run.dataset == "d" and run.target == "y" and run.model_name == "m"
    assert decided and decided <= set(run.preprocessing.columns if run.preprocessing else {})


def test_plan_checks_every_network_size_it_samples() -> None:
    # the schema passes [1024, 240] (246,000 parameters between the hidden layers); with the data's features in
    # front the network is over the limit: the plan refuses it although the first trial of that family is smaller
    space = {"model": ["mlp_regression"], "mode": ["sync"], "hidden_layers": [[8], [1024, 240]]}
    with pytest.raises(InvalidInput, match=r"^hidden_layers \[1024, 240\] make a network of \d+ parameters"):
        tuning_plan.plan(_request(search_space=space, max_trials=4), _meta(), "us-east-1")
    small = {**space, "hidden_layers": [[8]]}
    assert len(tuning_plan.plan(_request(search_space=small, max_trials=4), _meta(), "us-east-1")["trials"]) == 4


def test_the_searched_models_set_the_task_as_a_training_request_s_model_does() -> None:
    rating = {"kind": "numeric", "missing": 0, "min": 1.0, "max": 5.0, "integer": True, "distinct": 5}
    meta = _meta(rating=rating)
    assert tuning_plan.plan(_request(target="rating"), meta, "us-east-1")["task"] == "multiclass"
    regression = {"model": ["linear_regression", "mlp_regression"]}
    p = tuning_plan.plan(_request(target="rating", search_space=regression), meta, "us-east-1")
    assert (p["task"], p["metric"]) == ("regression", "r2")
    assert {t["hyperparameters"]["model"] for t in p["trials"]} == {"linear_regression", "mlp_regression"}
    mixed = {"model": ["linear_regression", "softmax_regression"]}
    with pytest.raises(InvalidInput, match="^search_space.model 'linear_regression' does not fit a multiclass target"):
        tuning_plan.plan(_request(target="rating", search_space=mixed), meta, "us-east-1")
    assert tuning_plan.chosen_model(None) is None
    assert tuning_plan.chosen_model(["mlp_classifier", "logistic_regression"]) == "mlp_classifier"
