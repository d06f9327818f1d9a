"""The plan of a tuning job before anything starts: its problem, search space, trials, rungs and estimated cost.

``plan`` refuses (InvalidInput, a 400 naming the field) a request that cannot run or is over its budget, so the
tuning API starts nothing and writes nothing for it.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from mlcore.infra.errors import InvalidInput
from mlcore.math import cost, models, tuning
from mlcore.steps import problem as problems
from mlcore.steps import runs
from mlcore.steps.preparation import shared
from mlcore.steps.schemas import Hyperparameters, TrainingRequest, TuningRequest


def split_rows(request: TuningRequest, meta: dict) -> tuple[int, int, int]:
    """(training, validation, test) rows of the job's split: the rows with a target value."""
    rows = int(meta.get("rows") or 0)
    columns = meta.get("columns") or []
    missing = next((c.get("missing") or 0 for c in columns if c.get("name") == request.target), 0)
    return shared.split_sizes(rows - int(missing), request.test_fraction, request.validation_fraction)


def training_rows(request: TuningRequest, meta: dict) -> int:
    """Training rows a trial fits on: the rows with a target value less the test and validation splits."""
    return max(split_rows(request, meta)[0], 1)


def trial_request(
    request: TuningRequest, trial: dict[str, Any], epochs: int, problem: problems.Problem | None = None
) -> TrainingRequest:
    """The training run of ``trial`` (one of ``plan``'s trials) for ``epochs`` epochs: the job's data set, split,
    seed (every trial sees the same split) and shards, with the problem's column decisions added to its
    preprocessing."""
    hp = {**trial["hyperparameters"], "max_epochs": epochs}
    spec = problems.with_decisions(request.preprocessing, problem) if problem else request.preprocessing
    return TrainingRequest(
        dataset=request.dataset,
        version=request.version,
        target=request.target,
        model_name=request.model_name,
        n_shards=request.n_shards,
        test_fraction=request.test_fraction,
        validation_fraction=request.validation_fraction,
        seed=request.seed,
        hyperparameters=Hyperparameters.model_validate(hp),
        preprocessing=spec,
        mode=trial["mode"],
    )


def estimated_cost(request: TuningRequest, meta: dict, region: str, modes: tuple[str, ...]) -> dict[str, Any]:
    """``cost.estimated_tuning_cost`` of the request on the data set version ``meta`` describes, its trials run in
    ``modes``, at ``region``'s list prices."""
    return cost.estimated_tuning_cost(
        training_rows(request, meta),
        request.n_shards,
        tuning.rungs(request.min_epochs, request.max_epochs, request.reduction_factor),
        request.max_trials,
        request.reduction_factor,
        cost.price_table(region),
        modes=modes,
    )


def check_budget(request: TuningRequest, estimate: dict[str, Any]) -> float:
    """The estimated cost in USD; refuses (InvalidInput, naming max_cost_usd) a ``max_cost_usd`` below the cost of
    one trial to ``max_epochs``, or below the whole job's estimate."""
    total = float(estimate["total"])
    limit = request.max_cost_usd
    if limit is None:
        return total
    if limit < estimate["one_trial"]:
        raise InvalidInput(
            f"max_cost_usd=${limit:.4f} is below the estimated ${estimate['one_trial']:.4f} of a single trial trained "
            f"to max_epochs={request.max_epochs} over {request.n_shards} shards; raise max_cost_usd or lower "
            "max_epochs or n_shards"
        )
    if limit < total:
        raise InvalidInput(
            f"max_cost_usd=${limit:.4f} is below the tuning job's estimated cost of ${total:.4f} "
            f"({request.max_trials} trials, {estimate['epochs']} trial-epochs at most under successive halving, "
            f"{estimate['region']} list prices); raise max_cost_usd or lower max_trials or max_epochs"
        )
    return total


def check_tuning_budget(request: TuningRequest, meta: dict, region: str) -> float:
    """The job's estimated cost in USD (its trials as ``plan`` samples them); refuses it over ``max_cost_usd``."""
    return float(plan(request, meta, region)["estimated_cost_usd"])


def chosen_model(searched: list[str] | None) -> str | None:
    """The model that sets the task, as a training request's model does (``problem.infer_problem``): the search's
    first when its models are all regressors or all classifiers; None (the task is inferred) otherwise."""
    if not searched or len({m in models.CLASSIFIERS for m in searched}) != 1:
        return None
    return searched[0]


def plan(request: TuningRequest, meta: dict, region: str) -> dict[str, Any]:
    """The tuning job ``request`` asks for on the data set version ``meta`` describes (its stored metadata and
    profile): ``{"task", "metric", "problem", "space", "trials", "rungs", "jobs_per_rung", "estimated_cost_usd"}``.
    The task is inferred from the target, unless the search space's models are all regressors or all classifiers.
    Refuses (InvalidInput) a target that cannot be learned, a search space that does not fit the task, a request no
    trial of which could run on the data (the same checks as a training run's), and a budget below the estimate."""
    given = request.search_space.model_dump(exclude_none=True) if request.search_space else {}
    if "mode" not in given:  # async trials only where they can pay
        train, validation, _ = split_rows(request, meta)
        given["mode"] = tuning.default_modes(train + validation)
    problem = problems.infer_problem(meta, request.target, request.preprocessing, chosen_model(given.get("model")))
    try:
        space = tuning.resolve_space(given, problem.task)
    except ValueError as err:
        raise InvalidInput(str(err)) from None
    trials = tuning.sample_trials(space, request.max_trials, request.seed, problem.task)
    budgets = tuning.rungs(request.min_epochs, request.max_epochs, request.reduction_factor)
    checked: set[tuple[str, str, str]] = set()
    for index, trial in enumerate(trials):
        try:
            run = trial_request(request, trial, request.max_epochs, problem)
        except ValidationError as err:
            first = err.errors()[0]
            message = str(first["msg"]).removeprefix("Value error, ")
            raise InvalidInput(
                f"search_space: trial {index} ({trial['hyperparameters']}) is not valid: {message}"
            ) from None
        key = (run.hyperparameters.model, run.mode, str(run.hyperparameters.hidden_layers))
        if key not in checked:
            runs.check_feasible(run, meta)
            checked.add(key)
    modes = tuple(dict.fromkeys(t["mode"] for t in trials)) or ("sync",)
    estimate = estimated_cost(request, meta, region, modes)
    return {
        "task": problem.task,
        "metric": problem.metric,
        "problem": problem.to_dict(),
        "space": space,
        "trials": trials,
        "rungs": budgets,
        "jobs_per_rung": estimate["jobs_per_rung"],
        "estimated_cost_usd": check_budget(request, estimate),
    }
