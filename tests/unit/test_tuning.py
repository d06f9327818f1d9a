"""Tuning logic (mlcore.math.tuning): rungs, the default search space, seeded trials, ASHA's decisions; and the
TuningRequest / SearchSpace contracts (mlcore.steps.schemas)."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
from pydantic import ValidationError

from mlcore.math import tuning
from mlcore.math.mlp import ACTIVATIONS
from mlcore.math.optimizers import OPTIMIZERS
from mlcore.steps.schemas import MAX_LEARNING_RATE, MAX_PARALLEL_TRIALS, Hyperparameters, TrainingRequest, TuningRequest


# -- rungs ------------------------------------------------------------------------------------------------------------
def test_rungs_are_geometric_down_from_max_epochs() -> None:
    assert tuning.rungs(3, 81, 3) == [3, 9, 27, 81]
    assert tuning.rungs(5, 135, 3) == [5, 15, 45, 135]
    assert tuning.rungs(5, 50, 3) == [5, 16, 50]  # floor(50 / 9), floor(50 / 3), 50: the last is max_epochs
    assert tuning.rungs(1, 100, 2) == [1, 3, 6, 12, 25, 50, 100]
    assert tuning.rungs(5, 14, 3) == [14]  # 5 x 3 > 14: a second rung would start below min_epochs
    assert tuning.rungs(9, 9, 3) == [9]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 10, 3), "need 1 <= min_epochs <= max_epochs, got min_epochs=0, max_epochs=10"),
        ((11, 10, 3), "need 1 <= min_epochs <= max_epochs, got min_epochs=11, max_epochs=10"),
        ((1, 10, 1), "the reduction factor eta must be at least 2, got 1"),
    ],
)
def test_rungs_refuse_bad_input(args: tuple[int, int, int], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        tuning.rungs(*args)


def test_rung_caps() -> None:
    assert tuning.rung_caps(16, 4, 3) == [16, 6, 2, 1]
    assert tuning.rung_caps(9, 3, 3) == [9, 3, 1]
    assert tuning.rung_caps(2, 3, 3) == [2, 1, 1]


# -- ASHA -------------------------------------------------------------------------------------------------------------
def _serial(n_trials: int, n_rungs: int, eta: int, loss: dict[tuple[int, int], float]) -> list:
    """Drive next_job with one slot: each job finishes (with ``loss``) before the next is asked for."""
    started: list[tuple[int, int]] = []
    losses: dict[tuple[int, int], float] = {}
    sequence: list = []
    while True:
        job = tuning.next_job(n_trials, n_rungs, eta, started, losses)
        sequence.append(job)
        if job in ("wait", "done"):
            return sequence
        started.append(job)
        losses[job] = loss[job]


RUNG0 = [0.9, 0.5, 0.7, 0.2, 0.8, 0.6, 0.1, 0.4, 0.3]


def test_asha_hand_worked_example_with_eta_3() -> None:
    # 9 trials, 3 rungs, eta 3, one slot. At rung k a trial in the top floor(m / 3) of the m results so far is
    # promoted, at most ceil(9 / 3**k) jobs a rung (9, 3, 1):
    # (0,0) (1,0) (2,0): 3 results, top 1 is trial 1 (0.5)              -> (1,1)
    # rung 1 has 1 result (top 0); rung 0's top 1 is promoted            -> (3,0) 0.2
    # 4 results, top 1 is trial 3                                        -> (3,1)
    # rung 1: 2 results (top 0); rung 0: top 1 = [3], promoted           -> (4,0) 0.8, (5,0) 0.6
    # 6 results, top 2 = [3, 1]: both promoted                           -> (6,0) 0.1
    # 7 results, top 2 = [6, 3]                                          -> (6,1)
    # rung 1: 3 results, top 1 = [6]                                     -> (6,2), the last rung's one job
    # rung 1 is full (3 jobs): trials 7 and 8 only run rung 0            -> (7,0), (8,0), done
    loss = {(t, 0): v for t, v in enumerate(RUNG0)}
    loss |= {(t, 1): v / 2 for t, v in enumerate(RUNG0)} | {(t, 2): v / 4 for t, v in enumerate(RUNG0)}
    assert _serial(9, 3, 3, loss) == [
        (0, 0), (1, 0), (2, 0), (1, 1), (3, 0), (3, 1), (4, 0), (5, 0), (6, 0), (6, 1), (6, 2), (7, 0), (8, 0), "done",
    ]  # fmt: skip


def test_asha_promotes_from_the_highest_rung_first() -> None:
    started = [(t, 0) for t in range(9)] + [(0, 1), (1, 1), (2, 1)]
    losses = {(t, 0): 1.0 + t for t in range(9)} | {(0, 1): 0.3, (1, 1): 0.1, (2, 1): 0.2}
    # rung 1 has 3 results (top 1: trial 1); rung 0 could promote nobody new anyway: rung 1 is full
    assert tuning.next_job(9, 3, 3, started, losses) == (1, 2)


def test_asha_waits_while_something_runs_then_is_done() -> None:
    started = [(0, 0), (1, 0), (2, 0)]
    assert tuning.next_job(3, 2, 3, started, {}) == "wait"
    assert tuning.next_job(3, 2, 3, started, {(0, 0): 0.5, (1, 0): 0.4}) == "wait"
    everything = {(0, 0): 0.5, (1, 0): 0.4, (2, 0): 0.6}
    assert tuning.next_job(3, 2, 3, started, everything) == (1, 1)
    assert tuning.next_job(3, 2, 3, [*started, (1, 1)], everything) == "wait"
    assert tuning.next_job(3, 2, 3, [*started, (1, 1)], everything | {(1, 1): 0.2}) == "done"


def test_asha_promotes_once_even_when_results_are_delivered_again() -> None:
    started = [(0, 0), (1, 0), (2, 0)]
    losses = {(0, 0): 0.9, (1, 0): 0.5, (2, 0): 0.7}
    assert tuning.next_job(6, 2, 3, started, losses) == (1, 1)
    started.append((1, 1))
    again = dict(losses)  # the same results delivered a second time: the same mapping
    assert tuning.next_job(6, 2, 3, started, again) == (3, 0)
    assert tuning.next_job(6, 2, 3, started, again) == (3, 0)  # pure: asking twice changes nothing


def test_asha_late_result_at_a_lower_rung() -> None:
    # 6 trials started; trials 0-2 finished and trial 0 was promoted; then trial 5's rung-0 result arrives, better
    # than everything: it is promoted too, trial 0 is not promoted twice, and rung 1 then holds its cap of 2 jobs
    started = [(t, 0) for t in range(6)] + [(0, 1)]
    losses = {(0, 0): 0.5, (1, 0): 0.6, (2, 0): 0.7}
    assert tuning.next_job(6, 2, 3, started, losses) == "wait"
    losses[(5, 0)] = 0.1
    assert tuning.next_job(6, 2, 3, started, losses) == (5, 1)
    started.append((5, 1))
    losses |= {(3, 0): 0.05, (4, 0): 0.8}  # trial 3 is now the best at rung 0, but rung 1 is full
    assert tuning.next_job(6, 2, 3, started, losses) == "wait"
    losses |= {(0, 1): 0.4, (5, 1): 0.3}
    assert tuning.next_job(6, 2, 3, started, losses) == "done"


def test_asha_late_result_after_higher_rung_work_was_handed_out() -> None:
    # trial 1's rung-1 result arrives after its rung-2 job was handed out (the result was re-delivered late)
    started = [(0, 0), (1, 0), (2, 0), (1, 1), (1, 2)]
    losses = {(0, 0): 0.9, (1, 0): 0.5, (2, 0): 0.7, (1, 1): 0.3}
    assert tuning.next_job(3, 3, 3, started, losses) == "wait"  # (1, 2) runs; (1, 2) is never handed out again
    assert tuning.next_job(3, 3, 3, started, losses | {(1, 2): 0.2}) == "done"


@pytest.mark.parametrize("failed", [math.inf, math.nan])
def test_asha_never_promotes_a_failed_trial(failed: float) -> None:
    started = [(0, 0), (1, 0), (2, 0)]
    # the best result is the only one not failed: promoted
    assert tuning.next_job(3, 2, 3, started, {(0, 0): failed, (1, 0): failed, (2, 0): 0.5}) == (2, 1)
    # every trial failed: nothing is promoted, even by the finish rule
    assert tuning.next_job(3, 2, 3, started, {(0, 0): failed, (1, 0): failed, (2, 0): failed}) == "done"
    # a failed result ranks last: trial 0 is the top 1 of 3 and is promoted
    assert tuning.next_job(4, 2, 3, started, {(0, 0): 0.1, (1, 0): 0.2, (2, 0): failed}) == (0, 1)
    # the top 1 of 3 failed: nobody is promoted (the top 1/3 holds no finite result), the next trial starts
    assert tuning.next_job(4, 2, 3, started, {(0, 0): failed, (1, 0): failed, (2, 0): failed}) == (3, 0)


def test_asha_fewer_trials_than_eta_still_trains_one_to_the_last_rung() -> None:
    loss = {(0, r): 0.5 - r / 10 for r in range(3)} | {(1, r): 0.4 - r / 10 for r in range(3)}
    assert _serial(2, 3, 3, loss) == [(0, 0), (1, 0), (1, 1), (1, 2), "done"]
    assert _serial(1, 3, 3, {(0, r): 1.0 for r in range(3)}) == [(0, 0), (0, 1), (0, 2), "done"]
    assert _serial(0, 3, 3, {}) == ["done"]
    assert _serial(2, 1, 3, loss) == [(0, 0), (1, 0), "done"]  # one rung: nothing to promote to


def test_asha_finish_rule_skips_failures_and_respects_the_caps() -> None:
    # 2 trials, eta 3: rung caps [2, 1, 1]. The better trial fails at rung 1: the other is not promoted in its place
    # (rung 1 holds its one job), the search ends with no trial at the last rung
    loss = {(0, 0): 0.5, (1, 0): 0.4, (1, 1): math.inf}
    assert _serial(2, 3, 3, loss) == [(0, 0), (1, 0), (1, 1), "done"]
    # 4 trials, eta 2: caps [4, 2, 1]; the finalist fails at rung 1, the other rung-1 trial goes on
    loss = {(t, 0): 0.1 * (t + 1) for t in range(4)} | {(0, 1): math.inf, (1, 1): 0.05, (1, 2): 0.01}
    assert _serial(4, 3, 2, loss) == [(0, 0), (1, 0), (0, 1), (2, 0), (3, 0), (1, 1), (1, 2), "done"]


def test_asha_breaks_ties_by_trial_index() -> None:
    started = [(0, 0), (1, 0), (2, 0), (3, 0), (4, 0), (5, 0)]
    losses = {(t, 0): 0.5 for t in range(6)}
    assert tuning.next_job(6, 2, 3, started, losses) == (0, 1)
    assert tuning.next_job(6, 2, 3, [*started, (0, 1)], losses) == (1, 1)
    reversed_losses = dict(reversed(list(losses.items())))  # the mapping's order does not matter
    assert tuning.next_job(6, 2, 3, [*reversed(started), (0, 1)], reversed_losses) == (1, 1)


@pytest.mark.parametrize("seed", range(40))
def test_asha_each_job_once_within_caps_under_random_delivery(seed: int) -> None:
    """Parallel slots finishing in random order, results re-delivered at random: every (trial, rung) handed out once,
    no rung beyond its cap, every trial started, and a finite loss at the last rung when any trial can finish."""
    rng = random.Random(seed)
    n_trials, n_rungs, eta, slots = rng.randint(1, 20), rng.randint(1, 4), rng.randint(2, 4), rng.randint(1, 6)
    quality = {t: rng.random() for t in range(n_trials)}
    fails = {t for t in range(n_trials) if rng.random() < 0.2}
    handed: list[tuple[int, int]] = []
    running: list[tuple[int, int]] = []
    losses: dict[tuple[int, int], float] = {}
    for _ in range(10_000):
        while len(running) < slots:
            job = tuning.next_job(n_trials, n_rungs, eta, handed, dict(losses))
            if job in ("wait", "done"):
                break
            assert isinstance(job, tuple)
            handed.append(job)
            running.append(job)
        if not running:
            break
        done = running.pop(rng.randrange(len(running)))
        trial, rung = done
        losses[done] = math.inf if trial in fails else quality[trial] / (rung + 1)
        if rng.random() < 0.3:
            losses = dict(rng.sample(list(losses.items()), len(losses)))  # re-delivered, any order
    assert tuning.next_job(n_trials, n_rungs, eta, handed, losses) == "done"
    assert len(handed) == len(set(handed))
    per_rung = Counter(r for _, r in handed)
    caps = tuning.rung_caps(n_trials, n_rungs, eta)
    assert all(per_rung[r] <= caps[r] for r in range(n_rungs))
    assert {t for t, r in handed if r == 0} == set(range(n_trials))
    assert all(losses[(t, r - 1)] < math.inf for t, r in handed if r > 0)  # only finite results are promoted
    if n_rungs > 1 and len(fails) < n_trials:
        assert any(r > 0 for _, r in handed)


def test_next_job_refuses_jobs_outside_the_search() -> None:
    with pytest.raises(ValueError, match=r"^job \(trial 3, rung 0\) is outside 3 trials and 2 rungs$"):
        tuning.next_job(3, 2, 3, [(3, 0)], {})
    with pytest.raises(ValueError, match=r"^job \(trial 0, rung 2\) is outside 3 trials and 2 rungs$"):
        tuning.next_job(3, 2, 3, [], {(0, 2): 1.0})
    with pytest.raises(ValueError, match="eta >= 2"):
        tuning.next_job(3, 2, 1, [], {})


def test_leaderboard_order() -> None:
    entries = [
        {"trial": 0, "rung": 0, "validation_loss": 0.1},
        {"trial": 1, "rung": 2, "validation_loss": 0.4},
        {"trial": 2, "rung": 2, "validation_loss": 0.3},
        {"trial": 3, "rung": 3, "validation_loss": math.inf},
        {"trial": 4, "rung": 0, "validation_loss": None},
        {"trial": 5, "rung": 2, "validation_loss": 0.3},
    ]
    assert [e["trial"] for e in tuning.leaderboard_order(entries)] == [2, 5, 1, 0, 3, 4]


# -- the search space and its trials ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("task", "models"),
    [
        ("regression", ["linear_regression", "mlp_regression"]),
        ("binary", ["logistic_regression", "mlp_classifier"]),
        ("multiclass", ["softmax_regression", "mlp_classifier"]),
    ],
)
def test_default_space_has_every_family_of_the_task(task: str, models: list[str]) -> None:
    space = tuning.default_space(task)
    assert space["model"] == models
    assert space["optimizer"] == list(OPTIMIZERS)
    assert space["mode"] == ["sync", "async"]
    assert space["solver"] == ["auto"]
    assert space["activation"] == list(ACTIVATIONS)
    assert space["learning_rate"] == {"low": 1e-3, "high": 0.3}
    assert space["l2"] == {"low": 0.0, "high": 0.1}
    with pytest.raises(ValueError, match="^unknown task 'ranking'"):
        tuning.default_space("ranking")


@pytest.mark.parametrize("task", tuning.TASKS)
def test_sampled_trials_are_valid_training_runs(task: str) -> None:
    for seed in range(60):
        for trial in tuning.sample_trials({}, 12, seed, task):
            hp = Hyperparameters.model_validate({**trial["hyperparameters"], "max_epochs": 135})
            TrainingRequest(
                dataset="d",
                target="y",
                model_name="m",
                mode=trial["mode"],
                hyperparameters=hp,
                n_shards=2,
                validation_fraction=0.2,
            )
            assert hp.model in tuning.TASK_MODELS[task]


def test_trials_carry_only_what_matters_to_them() -> None:
    trials = tuning.sample_trials({}, 64, 7, "regression")
    for trial in trials:
        hp = trial["hyperparameters"]
        if trial["mode"] == "async":
            assert hp["solver"] == "sgd"
            assert {"optimizer", "learning_rate", "batch_size"} <= hp.keys()
            assert "patience" not in hp
        else:  # solver auto: exact, newton or lbfgs, no learning rate; early stopping on the validation split
            assert hp["solver"] == "auto"
            assert not {"optimizer", "learning_rate", "batch_size"} & hp.keys()
            assert hp["patience"] == tuning.PATIENCE == 10
        network = hp["model"] == "mlp_regression"
        assert ({"hidden_layers", "activation"} <= hp.keys()) == network
        assert not network or hp["hidden_layers"] in tuning.default_space("regression")["hidden_layers"]


def test_trials_are_seeded_and_stratified() -> None:
    a = tuning.sample_trials({}, 16, 3, "binary")
    assert a == tuning.sample_trials({}, 16, 3, "binary")
    assert a != tuning.sample_trials({}, 16, 4, "binary")
    combos = Counter((t["hyperparameters"]["model"], t["mode"]) for t in a)
    assert combos == {
        ("logistic_regression", "sync"): 4,
        ("logistic_regression", "async"): 4,
        ("mlp_classifier", "sync"): 4,
        ("mlp_classifier", "async"): 4,
    }
    assert tuning.sample_trials({}, 0, 3, "binary") == []


def test_learning_rate_and_l2_are_log_uniform_with_a_share_of_zero_l2() -> None:
    space = {"mode": ["async"], "learning_rate": {"low": 1e-4, "high": 1.0}, "l2": {"low": 0.0, "high": 0.1}}
    trials = tuning.sample_trials(space, 2000, 0, "regression")
    rates = sorted(t["hyperparameters"]["learning_rate"] for t in trials)
    assert rates[0] >= 1e-4 and rates[-1] <= 1.0
    assert 10**-2.3 < rates[1000] < 10**-1.7  # log-uniform: the median near 10**-2
    l2 = [t["hyperparameters"]["l2"] for t in trials]
    zero = sum(v == 0 for v in l2) / len(l2)
    assert 0.2 < zero < 0.3  # ZERO_L2_SHARE = 0.25
    positive = sorted(v for v in l2 if v > 0)
    assert positive[0] >= 1e-5 and positive[-1] <= 0.1
    bounded = tuning.sample_trials({"l2": {"low": 1e-3, "high": 1e-2}}, 200, 0, "regression")
    assert all(1e-3 <= t["hyperparameters"]["l2"] <= 1e-2 for t in bounded)


def test_a_narrowed_space_is_respected() -> None:
    space = {
        "model": ["mlp_regression"],
        "mode": ["sync"],
        "solver": ["lbfgs", "sgd"],
        "optimizer": ["adam"],
        "hidden_layers": [[8, 8]],
        "activation": ["tanh"],
    }
    trials = tuning.sample_trials(space, 10, 1, "regression")
    assert Counter(t["hyperparameters"]["solver"] for t in trials) == {"lbfgs": 5, "sgd": 5}
    for t in trials:
        hp = t["hyperparameters"]
        assert (t["mode"], hp["model"], hp["hidden_layers"], hp["activation"]) == (
            "sync",
            "mlp_regression",
            [8, 8],
            "tanh",
        )
        assert hp.get("optimizer", "adam") == "adam"


def test_solvers_that_do_not_fit_a_model_are_left_out() -> None:
    space = {"mode": ["sync"], "solver": ["exact", "lbfgs"]}
    trials = tuning.sample_trials(space, 30, 0, "regression")
    assert {(t["hyperparameters"]["model"], t["hyperparameters"]["solver"]) for t in trials} == {
        ("linear_regression", "exact"),
        ("linear_regression", "lbfgs"),
        ("mlp_regression", "lbfgs"),
    }


@pytest.mark.parametrize(
    ("space", "task", "message"),
    [
        ({"momentum": [0.9]}, "regression", "search_space.momentum is not a search-space key; expected one of model"),
        ({"optimizer": []}, "regression", "search_space.optimizer is empty; list at least one value"),
        ({"mode": "sync"}, "regression", "search_space.mode must be a list of values, got 'sync'"),
        ({"solver": ["bfgs"]}, "regression", "search_space.solver 'bfgs' is not a solver; expected one of auto, sgd"),
        ({"l2": {"low": 0.1}}, "regression", r"search_space.l2 must be a range \{'low': number, 'high': number\}"),
        ({"l2": {"low": 0.1, "high": 0.01}}, "regression", "search_space.l2 must have 0 <= low < high, got low=0.1"),
        ({"learning_rate": {"low": 0, "high": 1}}, "regression", "search_space.learning_rate must have 0 < low < high"),
        (
            {"model": ["softmax_regression"]},
            "binary",
            "search_space.model 'softmax_regression' does not fit a binary target; "
            "expected logistic_regression or mlp_classifier",
        ),
        (
            {"model": ["mlp_classifier"], "mode": ["sync"], "solver": ["newton"]},
            "multiclass",
            r"search_space: no valid trial: solver\(s\) \['newton'\] do not fit model\(s\) \['mlp_classifier'\]",
        ),
    ],
)
def test_resolve_space_refuses_naming_the_key(space: dict, task: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}"):
        tuning.sample_trials(space, 4, 0, task)


# -- TuningRequest and SearchSpace ------------------------------------------------------------------------------------
def _tuning(**fields) -> TuningRequest:
    return TuningRequest.model_validate({"dataset": "d", "target": "y", "model_name": "m", **fields})


def _refusal(**fields) -> tuple[str, str]:
    with pytest.raises(ValidationError) as err:
        _tuning(**fields)
    first = err.value.errors()[0]
    return ".".join(str(p) for p in first["loc"]), str(first["msg"])


def test_tuning_request_defaults() -> None:
    r = _tuning()
    assert (r.max_trials, r.max_parallel_trials, r.min_epochs, r.max_epochs, r.reduction_factor) == (16, 4, 15, 135, 3)
    assert (r.n_shards, r.test_fraction, r.validation_fraction, r.seed) == (2, 0.2, 0.2, 0)
    assert r.max_cost_usd is None and r.search_space is None and r.preprocessing is None


def test_the_learning_rate_bound_is_the_hyperparameters_one() -> None:
    Hyperparameters(learning_rate=MAX_LEARNING_RATE)
    with pytest.raises(ValidationError):
        Hyperparameters(learning_rate=MAX_LEARNING_RATE * 1.001)


def test_max_parallel_trials_above_max_trials_is_lowered_to_it() -> None:
    assert _tuning(max_trials=3, max_parallel_trials=8).max_parallel_trials == 3
    assert _tuning(max_trials=30, max_parallel_trials=8).max_parallel_trials == 8


@pytest.mark.parametrize(
    ("fields", "loc", "message"),
    [
        ({"search_space": {"momentum": [0.9]}}, "search_space.momentum", "Extra inputs are not permitted"),
        ({"search_space": {"model": []}}, "search_space", "search_space.model is empty; list at least one value"),
        ({"search_space": {"mode": []}}, "search_space", "search_space.mode is empty"),
        (
            {"search_space": {"learning_rate": {"low": 0.1, "high": 0.01}}},
            "search_space",
            "search_space.learning_rate is empty or inverted: low=0.1 is not below high=0.01",
        ),
        (
            {"search_space": {"l2": {"low": 0.5, "high": 0.5}}},
            "search_space",
            "search_space.l2 is empty or inverted: low=0.5 is not below high=0.5",
        ),
        (
            {"search_space": {"learning_rate": {"low": 0, "high": 0.1}}},
            "search_space",
            "search_space.learning_rate.low must be above 0 (a log-scale range)",
        ),
        (
            {"search_space": {"learning_rate": {"low": 0.1, "high": 11}}},
            "search_space",
            "search_space.learning_rate.high must be at most 10.0, got 11.0",
        ),
        (
            {"search_space": {"hidden_layers": [[64], [0]]}},
            "search_space",
            "search_space.hidden_layers [0]: hidden_layers sizes must be 1 to 1024 units, got 0",
        ),
        ({"search_space": {"model": ["tree"]}}, "search_space.model.0", "Input should be 'linear_regression'"),
        ({"search_space": {"l2": {"low": 0, "high": 1, "mid": 0.5}}}, "search_space.l2.mid", "Extra inputs"),
        ({"max_parallel_trials": MAX_PARALLEL_TRIALS + 1}, "max_parallel_trials", "less than or equal to 16"),
        ({"max_trials": 129}, "max_trials", "less than or equal to 128"),
        ({"max_trials": 0}, "max_trials", "greater than or equal to 1"),
        ({"max_cost_usd": 0}, "max_cost_usd", "greater than 0"),
        ({"reduction_factor": 9}, "reduction_factor", "less than or equal to 8"),
        ({"validation_fraction": 0}, "validation_fraction", "greater than 0"),
        ({"max_epochs": 2001}, "max_epochs", "less than or equal to 2000"),
        ({"min_epochs": 50, "max_epochs": 20}, "", "min_epochs=50 is above max_epochs=20"),
        ({"model_name": "no spaces"}, "model_name", "String should match pattern"),
        ({"preprocessing": {"target": "z"}}, "", "preprocessing.target 'z' differs from target 'y'"),
        ({"hyperparameters": {}}, "hyperparameters", "Extra inputs are not permitted"),
    ],
)
def test_tuning_request_refusals_name_the_field(fields: dict, loc: str, message: str) -> None:
    where, msg = _refusal(**fields)
    assert where == loc
    assert message in msg


def test_search_space_round_trips_into_the_sampler() -> None:
    r = _tuning(search_space={"model": ["linear_regression"], "l2": {"low": 0, "high": 1}})
    given = r.search_space.model_dump(exclude_none=True) if r.search_space else {}
    assert given == {"model": ["linear_regression"], "l2": {"low": 0.0, "high": 1.0}}
    trials = tuning.sample_trials(given, 4, 0, "regression")
    assert {t["hyperparameters"]["model"] for t in trials} == {"linear_regression"}


def test_async_network_trials_default_to_adam_with_bounded_staleness() -> None:
    for trial in tuning.sample_trials({}, 64, 5, "regression"):
        hp = trial["hyperparameters"]
        async_network = trial["mode"] == "async" and hp["model"] == "mlp_regression"
        assert ("max_staleness" in hp) == async_network
        if async_network:
            assert (hp["optimizer"], hp["max_staleness"]) == ("adam", 3)
            assert 0.01 <= hp["learning_rate"] <= 0.1
    given = {"optimizer": ["sgd"], "learning_rate": {"low": 1e-4, "high": 1e-3}, "mode": ["async"]}
    for trial in tuning.sample_trials(given, 16, 5, "regression"):  # the request's space replaces the defaults
        hp = trial["hyperparameters"]
        assert hp["optimizer"] == "sgd" and 1e-4 <= hp["learning_rate"] <= 1e-3


def _entry(trial, loss, se=0.0, rung=2, model="linear_regression", hidden=None):
    hp = {"model": model, **({"hidden_layers": hidden} if hidden else {})}
    return {"trial": trial, "rung": rung, "validation_loss": loss, "validation_loss_se": se, "hyperparameters": hp}


def test_the_simplest_trial_within_one_standard_error_of_the_lowest_loss_is_selected():
    board = [
        _entry(3, 1.00, se=0.10, model="mlp_regression", hidden=[64, 64]),
        _entry(5, 1.05, model="mlp_regression", hidden=[16]),
        _entry(1, 1.08),  # linear, within 1.00 + 0.10
        _entry(0, 1.09),  # linear, within too, but a higher loss
        _entry(2, 1.01, rung=1),  # at a lower rung: not compared
    ]
    index, why = tuning.select(board)
    assert (index, board[index]["trial"]) == (2, 1)
    assert why == ("the simplest trial within one standard error (0.1) of the lowest validation loss (1, trial 3)")


def test_a_simpler_trial_beyond_one_standard_error_is_not_selected():
    board = [_entry(3, 1.00, se=0.05, model="mlp_regression", hidden=[8]), _entry(1, 1.06), _entry(0, None)]
    assert tuning.select(board) == (0, "the lowest validation loss (1)")
    assert tuning.select([_entry(3, 1.0, se=None, model="mlp_classifier"), _entry(1, 1.0)]) == (1, (
        "the simplest trial within one standard error (0) of the lowest validation loss (1, trial 3)"))  # fmt: skip


def test_complexity_is_zero_for_linear_families_and_the_hidden_units_of_a_network():
    assert tuning.complexity({"model": "softmax_regression"}) == 0
    assert tuning.complexity({"model": "mlp_classifier"}) == 64  # the default [64]
    assert tuning.complexity({"model": "mlp_regression", "hidden_layers": [32, 16]}) == 48
