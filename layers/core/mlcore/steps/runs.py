"""Training runs: start the training workflow for a validated request and report its progress."""

from __future__ import annotations

import base64
import json
import math
import re
import uuid
from datetime import datetime
from typing import Any

from mlcore.infra import aws, layout
from mlcore.infra.errors import ConflictError, InvalidInput, LimitExceeded, MLError, NotFoundError
from mlcore.infra.storage import NotFound, ObjectStore
from mlcore.math import cost, models
from mlcore.math.preprocessing import PreprocessingSpec, resolve_kinds
from mlcore.steps import ingestion, problem
from mlcore.steps.preparation import shared
from mlcore.steps.schemas import TrainingRequest
from mlcore.steps.training import training_curve

RUN_ID = re.compile(r"^run-[0-9a-f]{12}$")
RESUMABLE = ("FAILED", "TIMED_OUT", "ABORTED")
TERMINAL = ("SUCCEEDED", *RESUMABLE)
MAX_REASON = 500
MIN_ROWS = 10  # rows with a target value a training run needs at least


def check_feasible(request: TrainingRequest, meta: dict) -> None:
    """Refuse (InvalidInput) a request that cannot succeed on the data set version ``meta`` describes, judged from
    its stored profile alone (``rows``; per column ``kind``, ``missing`` and, for text, ``distinct``) with the same
    rules and messages as Preprocess: a target that is not a column or has no values, a spec naming columns the data
    set lacks, fewer than ``MIN_ROWS`` rows with a target, a non-numeric regression target, a classifier's class
    count, a split leaving too few rows, more shards than training rows, and a text column with too many categories
    to one-hot encode. A check whose figure the profile lacks (a capped or absent ``distinct``) is skipped; columns
    Preprocess drops by default (``shared.drop_sensitive``) are not checked. Without a profile nothing is judged."""
    if not isinstance(meta.get("columns"), list) or _count(meta.get("rows")) is None:
        return
    profile = {str(c["name"]): c for c in meta["columns"]}
    target = request.target
    shared.check_target(target, profile)
    request, _, _ = shared.setup_request(request, meta)  # the columns Preprocess drops or hashes by default
    spec = request.preprocessing or PreprocessingSpec()
    resolved, _ = resolve_kinds({name: str(c["kind"]) for name, c in profile.items()}, target, spec)
    rows = int(meta["rows"])
    with_target = rows - int(profile[target].get("missing") or 0)
    required = [int(profile[n].get("missing") or 0) for n, r in spec.columns.items() if r.impute == "drop_rows"]
    usable = min([with_target, *(rows - m for m in required)])  # at most this many rows are kept
    shared.check_rows(target, with_target, usable)
    if with_target < MIN_ROWS:
        raise InvalidInput(
            f"the data set has {with_target} rows with a value of target column {target!r}, "
            f"fewer than the {MIN_ROWS} a training run needs"
        )
    model = request.hyperparameters.model
    kind = profile[target]["kind"]
    if model not in models.CLASSIFIERS and kind != "numeric":
        raise InvalidInput(f"target column {target!r} must be numeric for regression")
    if model in models.CLASSIFIERS:
        low, high = profile[target].get("min"), profile[target].get("max")
        classes = _count(profile[target].get("distinct")) if kind != "numeric" else None
        if kind == "numeric" and low is not None and low == high:
            classes = 1  # a numeric profile has no distinct count: one value is one class
        if classes is not None:
            shared.check_class_count(model, target, classes)
    train, validation, test = shared.split_sizes(usable, request.test_fraction, request.validation_fraction)
    shared.check_split(request.test_fraction, request.validation_fraction, train, validation, test)
    shared.check_shards(request.n_shards, train)
    for name, resolved_kind in resolved.items():
        rules, distinct = spec.rules(name), _count(profile[name].get("distinct"))
        if resolved_kind != "categorical" or rules.max_categories is not None or distinct is None:
            continue
        in_training = distinct - (rows - train)  # categories that only the other rows hold are not in the fit
        if in_training > spec.max_categories:
            raise InvalidInput(
                f"column {name!r} has {distinct} distinct values, more than the one-hot limit of "
                f"{spec.max_categories}; drop it, hash it or cap it (max_categories) in the preprocessing spec"
            )
    if models.is_mlp(model):
        check_network_size(request, profile, resolved, spec)


def encoded_features(profile: dict[str, dict], resolved: dict[str, str], spec: PreprocessingSpec) -> int:
    """The features Preprocess will make of the columns ``resolved`` (name -> kind), judged from the profile: one per
    numeric column, ``hash_buckets`` per hashed column, and per one-hot column its distinct values, at most its
    ``max_categories`` (the column's, else the spec's). A one-hot column whose count the profile lacks counts its
    explicit ``max_categories`` when the count is capped (the column has more values), else 1."""
    total = 0
    for name, kind in resolved.items():
        rules = spec.rules(name)
        if kind == "hashed":
            total += int(rules.hash_buckets or 1)
        elif kind == "categorical":
            raw = profile[name].get("distinct")
            distinct, cap = _count(raw), rules.max_categories or spec.max_categories
            if distinct is not None:
                total += max(1, min(distinct, cap))
            else:
                total += rules.max_categories if isinstance(raw, str) and rules.max_categories else 1
        else:
            total += 1
    return total


def check_network_size(
    request: TrainingRequest, profile: dict[str, dict], resolved: dict[str, str], spec: PreprocessingSpec
) -> None:
    """Refuse an MLP whose parameter count, with the features the preprocessing will make (``encoded_features``)
    and the target's classes (2 when the profile does not count them), is above ``models.MLP_MAX_PARAMS``: the same
    limit and message as the run's first round, before anything starts."""
    hp = request.hyperparameters
    outputs = 1
    if hp.model in models.CLASSIFIERS:
        outputs = max(2, _count(profile[request.target].get("distinct")) or 2)
    features = encoded_features(profile, resolved, spec)
    hidden = list(hp.hidden_layers or models.DEFAULT_HIDDEN_LAYERS)
    count = models.n_params(models.make_layout(hp.model, features, outputs, hidden))
    if count > models.MLP_MAX_PARAMS:
        raise InvalidInput(
            f"hidden_layers {hidden} make a network of {count} parameters with {features} features after "
            f"preprocessing (one-hot and hashed columns expanded) and {outputs} outputs, over the limit of "
            f"{models.MLP_MAX_PARAMS}; use smaller hidden_layers"
        )


def _count(value: object) -> int | None:
    """A profile's count, or None where it is absent or not exact (e.g. capped, ">= 100000")."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def estimated_cost(request: TrainingRequest, meta: dict, region: str) -> float:
    """The run's estimated cost in USD at most: ``max_epochs`` rounds over ``n_shards`` shards of the training
    rows the split leaves (``cost.estimate``), at ``region``'s list prices."""
    rows = int(meta.get("rows") or 0)
    columns = meta.get("columns") or []
    with_target = rows - int(next((c.get("missing") or 0 for c in columns if c["name"] == request.target), 0))
    train, _, _ = shared.split_sizes(with_target, request.test_fraction, request.validation_fraction)
    usage = cost.estimate(
        max(train, 1),
        request.n_shards,
        request.hyperparameters.max_epochs,
        mode=request.mode,
        inline_max_shards=request.inline_map_max_shards,
    )
    return float(cost.cost(usage, cost.price_table(region))["total"])


def check_cost(request: TrainingRequest, meta: dict, region: str, max_cost_usd: float) -> None:
    """Refuse a run whose estimated cost is above ``max_cost_usd`` (the stack parameter MaxRunCostUsd)."""
    estimate = estimated_cost(request, meta, region)
    if estimate > max_cost_usd:
        raise InvalidInput(
            f"the run's estimated cost of ${estimate:.2f} ({request.hyperparameters.max_epochs} rounds at most over "
            f"{request.n_shards} shards, {region} list prices) is above the ceiling of ${max_cost_usd:.2f} per run; "
            "lower max_epochs or n_shards, or raise the stack parameter MaxRunCostUsd"
        )


def running_executions(sfn, state_machine_arn: str) -> int:
    """How many executions of the training state machine are RUNNING (continuations and resumptions included)."""
    pages = sfn.get_paginator("list_executions").paginate(stateMachineArn=state_machine_arn, statusFilter="RUNNING")
    return sum(len(page["executions"]) for page in pages)


def check_concurrency(sfn, state_machine_arn: str, max_running: int) -> None:
    """Refuse (LimitExceeded, a 429) a new run while ``max_running`` training executions are RUNNING."""
    running = running_executions(sfn, state_machine_arn)
    if running >= max_running:
        raise LimitExceeded(
            f"{running} training executions are running, the limit is {max_running} at once; retry when one has "
            "finished, or raise the stack parameter MaxConcurrentTrainingRuns"
        )


def start(
    store: ObjectStore,
    sfn,
    state_machine_arn: str,
    request: TrainingRequest,
    *,
    max_running: int | None = None,
    max_cost_usd: float | None = None,
    region: str = "us-east-1",
) -> dict[str, Any]:
    """Check the data set exists, that the request can succeed on it (``check_feasible``), its estimated cost
    (at most ``max_cost_usd``) and the running executions (fewer than ``max_running``), then start one execution
    named after the new run id. A refused request starts and writes nothing. A request naming no model trains the
    task's linear model, inferred from the target (``problem.setup``): the answer's ``problem`` says which, and
    what is done with the other columns."""
    meta = ingestion.describe(store, request.dataset, request.version)
    request = request.model_copy(update={"version": meta["version"]})  # pin the version the run trains on
    request, found = problem.setup(request, meta)
    check_feasible(request, meta)
    if max_cost_usd is not None:
        check_cost(request, meta, region, max_cost_usd)
    if max_running is not None:
        check_concurrency(sfn, state_machine_arn, max_running)
    run_id = f"run-{uuid.uuid4().hex[:12]}"
    sfn.start_execution(stateMachineArn=state_machine_arn, name=run_id, input=request.model_dump_json())
    return {
        "run_id": run_id,
        "status": "RUNNING",
        "dataset": request.dataset,
        "version": meta["version"],
        "model": request.hyperparameters.model,
        "problem": found.to_dict(),
    }


def _run_of(execution_name: str) -> str | None:
    """The run an execution belongs to: ``run-<id>`` itself, ``run-<id>-r<round>`` (continued for the history
    limit) or ``run-<id>-resume-...``; None for an execution of no run."""
    run_id = "-".join(execution_name.split("-")[:2])
    return run_id if RUN_ID.match(run_id) else None


def _execution_arn(state_machine_arn: str, run_id: str) -> str:
    if not RUN_ID.match(run_id):
        raise NotFoundError(f"training run {run_id!r} does not exist")
    return aws.execution_arn(state_machine_arn, run_id)


def _executions(sfn, state_machine_arn: str, run_id: str) -> list[dict[str, Any]]:
    """Every execution of a run, oldest first: the run's own (described, with its input), then those named
    after it (``<run>-r<round>``: continued for the history limit; ``<run>-resume-...``: resumed), as listed."""
    with aws.missing_execution_is(f"training run {run_id!r} does not exist"):
        first = sfn.describe_execution(executionArn=_execution_arn(state_machine_arn, run_id))
    later: list[dict[str, Any]] = []
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=state_machine_arn):
        later += [e for e in page["executions"] if e["name"] != run_id and _run_of(e["name"]) == run_id]
        if page["executions"] and all(e["startDate"] < first["startDate"] for e in page["executions"]):
            break  # listed newest first: the rest started before the run
    return [first, *sorted(later, key=lambda e: e["startDate"])]


def _latest(sfn, executions: list[dict[str, Any]]) -> dict[str, Any]:
    """The description of the run's latest execution: the one whose status is the run's."""
    latest = executions[-1]
    return latest if "input" in latest else sfn.describe_execution(executionArn=latest["executionArn"])


def usage(sfn, lam, state_machine_arn: str, run_id: str, executions: list[dict[str, Any]] | None = None) -> cost.Usage:
    """What a run did, from its execution history: Lambda invocations and billed milliseconds per
    step (task start to end), memory sizes from the functions' configuration, state transitions;
    S3 requests from the code's access pattern (cost.S3_REQUESTS). The child executions' work is added from
    what the parent knows of them (``_count_children``)."""
    events: list[dict[str, Any]] = []
    executions = executions or _executions(sfn, state_machine_arn, run_id)
    for execution in executions:  # resumed executions are part of the run
        pages = sfn.get_paginator("get_execution_history").paginate(executionArn=execution["executionArn"])
        chunk = [e for page in pages for e in page["events"]]
        offset = max((e["id"] for e in events), default=0)
        events += [{**e, "id": e["id"] + offset, "previousEventId": e["previousEventId"] + offset} for e in chunk]
    by_id = {e["id"]: e for e in events}
    scheduled: dict[int, str] = {}  # TaskScheduled id -> function name
    result = cost.Usage()
    memory: dict[str, int] = {}
    children: list[dict[str, Any]] = []  # the Express calls' results, as the parent recorded them
    for e in events:
        if e["type"] in ("TaskSucceeded", "TaskFailed") and _is_express_call(e):
            children.append(e)
        if e["type"].endswith("StateEntered"):
            result.state_transitions += 1
        elif e["type"] == "TaskScheduled":
            params = json.loads(e["taskScheduledEventDetails"].get("parameters") or "{}")
            scheduled[e["id"]] = str(params.get("FunctionName", ""))
        elif e["type"] in ("TaskSucceeded", "TaskFailed", "TaskTimedOut"):
            started = by_id.get(e["previousEventId"])
            if started is None or started["type"] != "TaskStarted" or started["previousEventId"] not in scheduled:
                continue
            function = scheduled[started["previousEventId"]]
            if function not in memory:
                memory[function] = int(lam.get_function_configuration(FunctionName=function)["MemorySize"])
            step = cost.step_of(function)
            fn = result.functions.setdefault(step, cost.FunctionUsage(memory_mb=memory[function]))
            fn.invocations += 1
            fn.billed_ms += max(1, math.ceil((e["timestamp"] - started["timestamp"]).total_seconds() * 1000))
    request = json.loads(events[0]["executionStartedEventDetails"]["input"]) if events else {}
    result.shards = int(request.get("n_shards", 0) or 0)
    prepared = request.get("data") or {}  # a tuning trial starts from its job's prepared data, without Preprocess
    if prepared:
        result.train_rows, result.shards = int(prepared.get("train_rows", 0)), len(prepared.get("shards", []))
    for e in events if not prepared else []:  # the preprocess result carries the row count
        if e["type"] == "TaskSucceeded" and '"train_rows"' in e["taskSucceededEventDetails"].get("output", ""):
            payload = json.loads(e["taskSucceededEventDetails"]["output"]).get("Payload", {})
            result.train_rows = int(payload.get("data", {}).get("train_rows", 0))
            result.shards = len(payload.get("data", {}).get("shards", [])) or result.shards
            break
    _count_children(sfn, lam, state_machine_arn, [e["executionArn"] for e in executions], events, children, result)
    result.rounds = max(result.functions.get("Aggregator", cost.FunctionUsage()).invocations - 1, 0)
    cost.estimate_s3(result)
    return result


EXPRESS_CALL = "startExecution.sync:2"  # how the parent runs sync rounds in Express children (RunRounds)


def _is_express_call(event: dict[str, Any]) -> bool:
    details = event.get("taskSucceededEventDetails") or event.get("taskFailedEventDetails") or {}
    return details.get("resourceType") == "states" and details.get("resource") == EXPRESS_CALL


def _when(value: Any) -> float:
    """A date of a startExecution.sync result in seconds: epoch milliseconds (AWS) or an ISO 8601 string."""
    return float(value) / 1000 if isinstance(value, int | float) else datetime.fromisoformat(str(value)).timestamp()


def _count_children(
    sfn,
    lam,
    state_machine_arn: str,
    execution_arns: list[str],
    events: list[dict[str, Any]],
    calls: list[dict[str, Any]],
    result: cost.Usage,
) -> None:
    """Add what the run's child executions did, which the parent's history does not hold.

    - Express children (sync rounds on the inline Map): Step Functions keeps no history of an Express execution,
      so each call is counted from its result in the parent's history: one request, its duration (StartDate to
      StopDate, billed in 100 ms x 64 MB steps), its rounds (the round it returned less the round it was given; a
      failed call's, up to the round the run's next execution started from, plus the round that failed), and per
      round one GradientWorker per shard and one Aggregator, their billed time estimated (``cost.worker_ms``,
      ``cost.AGGREGATOR_MS``).
    - Distributed Map children (more shards than inline_map_max_shards): each map run's execution counts; per
      child one transition for its start and one for its worker state, and one GradientWorker invocation, its
      billed time estimated the same way.
    """
    rows_per_shard = result.train_rows / max(result.shards, 1)
    memory: dict[str, int] = {}
    starts = [e for e in events if e["type"] == "ExecutionStarted"]
    for e in calls:
        failed = "taskFailedEventDetails" in e
        details = e.get("taskFailedEventDetails") or e.get("taskSucceededEventDetails") or {}
        described = _json(details.get("cause") if failed else details.get("output"))
        if "StartDate" not in described:
            continue
        result.express_executions += 1
        stop = described.get("StopDate", described["StartDate"])
        result.express_gb_seconds += cost.express_gb_seconds(_when(stop) - _when(described["StartDate"]))
        given = _json(described.get("Input")).get("train", {})
        if failed:  # the rounds it stored: where the run's next execution started from; and the round that failed
            later = [_json(s["executionStartedEventDetails"].get("input")) for s in starts if s["id"] > e["id"]]
            resumed = later[0].get("train", {}).get("round") if later else None
            rounds = (int(resumed) - int(given.get("round", 0)) + 1) if resumed is not None else 0
        else:
            rounds = int(_json(described.get("Output")).get("round", 0)) - int(given.get("round", 0))
        functions = _functions_of(sfn, _call_parameters(e, events).get("StateMachineArn"))
        _add_estimated(lam, memory, result, functions, rounds, rows_per_shard)
    worker: str | None = None
    for execution_arn in execution_arns:
        for run in sfn.list_map_runs(executionArn=execution_arn).get("mapRuns", []):
            children = int(sfn.describe_map_run(mapRunArn=run["mapRunArn"])["executionCounts"].get("total", 0))
            result.state_transitions += cost.DISTRIBUTED_TRANSITIONS_PER_SHARD * children
            worker = worker or _functions_of(sfn, state_machine_arn).get("GradientWorker")
            if worker is not None and children:
                fn = _function(lam, memory, result, "GradientWorker", worker)
                fn.invocations += children
                fn.billed_ms += children * cost.worker_ms(rows_per_shard)


def _json(value: Any) -> dict[str, Any]:
    parsed = json.loads(value) if isinstance(value, str) else value
    return parsed if isinstance(parsed, dict) else {}


def _call_parameters(call: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, Any]:
    """The parameters of the Task whose result is ``call``: its TaskScheduled event, found backwards."""
    by_id = {e["id"]: e for e in events}
    event = by_id.get(call["previousEventId"], {})
    while event and event["type"] != "TaskScheduled":
        event = by_id.get(event["previousEventId"], {})
    return _json(event.get("taskScheduledEventDetails", {}).get("parameters")) if event else {}


def _functions_of(sfn, state_machine_arn: str | None) -> dict[str, str]:
    """Step -> function ARN of the Lambda tasks in a state machine's definition (Map item processors included)."""
    if not state_machine_arn:
        return {}
    definition = json.loads(sfn.describe_state_machine(stateMachineArn=state_machine_arn)["definition"])
    found: dict[str, str] = {}

    def visit(states: dict[str, Any]) -> None:
        for state in states.values():
            name = state.get("Parameters", {}).get("FunctionName")
            if isinstance(name, str):
                found.setdefault(cost.step_of(name), name)
            if "ItemProcessor" in state:
                visit(state["ItemProcessor"]["States"])

    visit(definition.get("States", {}))
    return found


def _function(lam, memory: dict[str, int], result: cost.Usage, step: str, name: str) -> cost.FunctionUsage:
    """The usage of ``step`` (function ``name``), its memory size from Lambda's configuration."""
    if name not in memory:
        memory[name] = int(lam.get_function_configuration(FunctionName=name)["MemorySize"])
    return result.functions.setdefault(step, cost.FunctionUsage(memory_mb=memory[name]))


def _add_estimated(
    lam, memory: dict[str, int], result: cost.Usage, functions: dict[str, str], rounds: int, rows_per_shard: float
) -> None:
    """Add ``rounds`` sync rounds' worker and aggregator invocations, their billed time estimated."""
    for step, per_round, billed in (
        ("GradientWorker", result.shards, cost.worker_ms(rows_per_shard)),
        ("Aggregator", 1, cost.AGGREGATOR_MS),
    ):
        name = functions.get(step)
        if name is None or rounds <= 0:
            continue
        fn = _function(lam, memory, result, step, name)
        fn.invocations += per_round * rounds
        fn.billed_ms += per_round * rounds * billed


def stored_usage(store: ObjectStore, sfn, lam, state_machine_arn: str, run_id: str) -> cost.Usage:
    """A run's usage: read once stored; else measured from its execution history (``usage``, which pages every
    execution's events), and stored when the run has ended (it cannot change until a resume, which drops it), so
    later calls read one object. A run still going is measured live each time."""
    if not RUN_ID.match(run_id):
        raise NotFoundError(f"training run {run_id!r} does not exist")
    try:
        return cost.Usage.from_dict(store.get_json(layout.run_usage_key(run_id)))
    except NotFound:
        pass
    executions = _executions(sfn, state_machine_arn, run_id)
    status = _latest(sfn, executions)["status"]
    measured = usage(sfn, lam, state_machine_arn, run_id, executions)
    if status in TERMINAL:
        store.put_json(layout.run_usage_key(run_id), measured.to_dict())
    return measured


def run_cost(
    store: ObjectStore,
    sfn,
    lam,
    state_machine_arn: str,
    run_id: str,
    region: str,
    rows: int | None = None,
    shards: int | None = None,
    rounds: int | None = None,
) -> dict[str, Any]:
    """The run's cost, and with any of rows/shards/rounds a what-if for that size."""
    measured = stored_usage(store, sfn, lam, state_machine_arn, run_id)
    prices = cost.price_table(region)
    result = {"run_id": run_id, "actual": cost.cost(measured, prices)}
    if rows or shards or rounds:
        scaled = cost.what_if(
            measured, rows or measured.train_rows, shards or measured.shards, rounds or measured.rounds
        )
        result["what_if"] = cost.cost(scaled, prices)
    return result


def _page_token(run: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(f"{run['started_at']}|{run['run_id']}".encode()).decode().rstrip("=")


def _after(token: str) -> tuple[str, str]:
    """The (started_at, run_id) a page token names: the last run of the page before."""
    try:
        started_at, run_id = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode().split("|")
        datetime.fromisoformat(started_at)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("next is not a page token this API returned: pass the `next` of the previous page") from None
    if not RUN_ID.match(run_id):
        raise InvalidInput("next is not a page token this API returned: pass the `next` of the previous page")
    return started_at, run_id


SHOWN_HYPERPARAMETERS = ("model", "optimizer", "learning_rate", "solver")  # what tells runs apart in the list
TEST_METRICS = ("r2", "accuracy")  # the metric a run is compared by: R² for regression, accuracy for classifiers


def _last_round(store: ObjectStore, run_id: str) -> tuple[int, dict[str, Any] | None]:
    """How many rounds a run stored, and the last one's document (None when there is none or it is gone)."""
    rounds = store.list_keys(layout.rounds_prefix(run_id))
    if not rounds:
        return 0, None
    try:
        return len(rounds), store.get_json(rounds[-1])
    except NotFound:
        return len(rounds), None


def first_input(raw: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A run's training request and, for a tuning trial, its ``{"job_id", "trial"}``, from its first execution's
    input: a plain run's is the request itself; a trial's is ``{run_id, request, data, tuning}`` (its job prepared
    the data)."""
    given = json.loads(raw)
    if isinstance(given, dict) and isinstance(given.get("request"), dict) and "run_id" in given:
        tuning = given.get("tuning")
        return given["request"], tuning if isinstance(tuning, dict) else None
    return given, None


def _request_columns(request: dict[str, Any], tuning: dict[str, Any] | None = None) -> dict[str, Any]:
    hyperparameters = request.get("hyperparameters") or {}
    return {
        "hyperparameters": {k: hyperparameters.get(k) for k in SHOWN_HYPERPARAMETERS},
        "mode": request.get("mode"),
        **({"tuning": tuning} if tuning else {}),
    }


def _summary(store: ObjectStore, sfn, run: dict[str, Any], first: dict[str, Any], latest: dict[str, Any]) -> dict:
    """A run's comparable columns: its key hyperparameters and mode (from its request); once it ended, its test
    metric (R² or accuracy, from the registered model the workflow returned), rounds and stop reason. A finished
    run's are stored (``run_summary_key``) the first time and read from there after, unless a later execution
    (a resume) ended since."""
    run_id = run["run_id"]
    ended = latest["status"] in TERMINAL
    if ended:
        try:
            stored = store.get_json(layout.run_summary_key(run_id))
            if stored.get("execution") == latest["name"] and stored.get("status") == latest["status"]:
                return {k: v for k, v in stored.items() if k not in ("execution", "status")}
        except NotFound:
            pass
    request, tuning = first_input(sfn.describe_execution(executionArn=first["executionArn"])["input"])
    summary: dict[str, Any] = _request_columns(request, tuning)
    if not ended:
        return summary
    output = sfn.describe_execution(executionArn=latest["executionArn"]).get("output")
    registered = json.loads(output) if latest["status"] == "SUCCEEDED" and output else {}
    metrics = registered.get("metrics") or {}
    metric = next((m for m in TEST_METRICS if isinstance(metrics.get(m), int | float)), None)
    rounds, last = _last_round(store, run_id)
    summary |= {
        "metric": metric,
        "test_metric": metrics.get(metric) if metric else None,
        "rounds_completed": rounds,
        "stop_reason": ((last or {}).get("state") or {}).get("reason"),
        "model_name": registered.get("model_name"),
        "model_version": registered.get("version"),
    }
    store.put_json(layout.run_summary_key(run_id), {**summary, "execution": latest["name"], "status": latest["status"]})
    return summary


def list_runs(
    sfn, state_machine_arn: str, limit: int = 50, next_token: str | None = None, store: ObjectStore | None = None
) -> dict[str, Any]:
    """A page of runs, newest first, each with the status of its latest execution: ``{"runs": [...]}`` and, when
    older runs remain, ``next``, the token of the following page. Executions are listed newest first until
    ``limit`` runs older than the token, and one more, have their own (first) execution listed: a run's
    continuations and resumptions start after it, so they are listed by then. Given the ``store``, each run of
    the page also has its comparable columns (``_summary``): ``hyperparameters`` (model, optimizer, learning_rate,
    solver), ``mode`` and, once it ended, ``metric`` (``r2`` or ``accuracy``), ``test_metric``,
    ``rounds_completed``, ``stop_reason``, ``model_name`` and ``model_version``."""
    after = _after(next_token) if next_token else None
    by_run: dict[str, list[dict[str, Any]]] = {}
    complete = 0  # runs (older than the token) whose first execution was listed
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=state_machine_arn):
        for e in page["executions"]:  # continuations and resumptions belong to their run
            if (run_id := _run_of(e["name"])) is None:
                continue
            by_run.setdefault(run_id, []).append(e)
            if e["name"] == run_id and (after is None or (e["startDate"].isoformat(), run_id) < after):
                complete += 1
        if complete > limit:
            break
    runs = []
    ends: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for run_id, executions in by_run.items():
        executions.sort(key=lambda e: e["startDate"])
        first, latest = executions[0], executions[-1]
        ends[run_id] = (first, latest)
        runs.append(
            {
                "run_id": run_id,
                "status": latest["status"],
                "started_at": first["startDate"].isoformat(),
                **({"stopped_at": latest["stopDate"].isoformat()} if latest.get("stopDate") else {}),
            }
        )
    runs.sort(key=lambda r: (r["started_at"], r["run_id"]), reverse=True)
    if after is not None:
        runs = [r for r in runs if (r["started_at"], r["run_id"]) < after]
    if store is not None:
        for run in runs[:limit]:
            run.update(_summary(store, sfn, run, *ends[run["run_id"]]))
    listed: dict[str, Any] = {"runs": runs[:limit]}
    if len(runs) > limit:
        listed["next"] = _page_token(runs[limit - 1])
    return listed


def stop(sfn, state_machine_arn: str, run_id: str) -> dict[str, Any]:
    """Stop a running run: its latest execution is aborted (the rounds stored so far stay, so ``resume`` continues
    from the last one). A run that is not running is a conflict."""
    latest = _latest(sfn, _executions(sfn, state_machine_arn, run_id))
    if latest["status"] != "RUNNING":
        raise ConflictError(f"training run {run_id!r} is {latest['status']}: only a RUNNING run can be stopped")
    sfn.stop_execution(executionArn=latest["executionArn"], error="StoppedByUser", cause="stopped through the API")
    return {"run_id": run_id, "status": "ABORTED"}


def resume(store: ObjectStore, sfn, state_machine_arn: str, run_id: str) -> dict[str, Any]:
    """Start a new execution of a failed, timed-out or aborted run from its last stored round (its checkpoint);
    a run still running, or finished, is a conflict (one run never has two executions at once)."""
    status = _latest(sfn, _executions(sfn, state_machine_arn, run_id))["status"]
    if status not in RESUMABLE:
        raise ConflictError(
            f"training run {run_id!r} is {status}: only a run that FAILED, TIMED_OUT or was ABORTED can be resumed"
        )
    try:
        context = store.get_json(layout.context_key(run_id))
    except NotFound:
        raise NotFoundError(f"training run {run_id!r} has no checkpoint to resume from") from None
    rounds = store.list_keys(layout.rounds_prefix(run_id))
    if rounds:
        train = store.get_json(rounds[-1])["state"]
    else:
        train = {"run_id": run_id, "round": 0, "params_key": layout.params_key(run_id, 0)}
    name = f"{run_id}-resume-r{train['round']}-{uuid.uuid4().hex[:6]}"
    store.delete([layout.run_usage_key(run_id)])  # the run goes on: its usage is measured again when it ends
    payload = {"run_id": run_id, "request": context["request"], "data": context["data"], "train": train}
    sfn.start_execution(stateMachineArn=state_machine_arn, name=name, input=json.dumps(payload))
    return {"run_id": run_id, "status": "RUNNING", "execution": name, "resumed_from_round": train["round"]}


def failure_reason(cause: str | None) -> str | None:
    """A failed execution's cause as one line, at most MAX_REASON characters: the message of a Lambda error
    payload whose type is one of ours (``MLError``: messages written for the user, naming no raw values), else only
    the error's type (a library's message may quote a raw value, e.g. "could not convert string to float: 'a@b.c'");
    never the stack trace (server paths and the details stay in the logs). A Step Functions cause: its first line."""
    if not cause:
        return cause
    try:
        payload = json.loads(cause)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and "errorMessage" in payload:
        error = str(payload.get("errorType") or "error")
        text = str(payload["errorMessage"]) if error in _user_errors() else f"{error} in a workflow step; see the logs"
    else:
        text = cause
    line = text.strip().splitlines()[0] if text.strip() else text
    return line if len(line) <= MAX_REASON else line[: MAX_REASON - 1] + "…"


def _user_errors() -> set[str]:
    """The names of MLError and every subclass of it loaded (each one's message is written for the user)."""
    names, todo = set(), [MLError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return names


def describe(store: ObjectStore, sfn, state_machine_arn: str, run_id: str, curve: bool = False) -> dict[str, Any]:
    """Status, request, progress (and with ``curve`` every round's summary) of one run."""
    executions = _executions(sfn, state_machine_arn, run_id)
    desc = _latest(sfn, executions)  # continued or resumed: the latest execution has the run's status
    request, tuning = first_input(executions[0]["input"])  # the first execution's input holds the request
    result: dict[str, Any] = {
        "run_id": run_id,
        "status": desc["status"],
        "started_at": executions[0]["startDate"].isoformat(),
        "request": request,
        **({"tuning": tuning} if tuning else {}),
    }
    if desc.get("stopDate"):
        result["stopped_at"] = desc["stopDate"].isoformat()
    if desc["status"] == "SUCCEEDED":
        result["model"] = json.loads(desc["output"])
    elif desc["status"] in ("FAILED", "TIMED_OUT", "ABORTED"):
        result["error"] = {"type": desc.get("error"), "message": failure_reason(desc.get("cause"))}
    result["rounds_completed"], last = _last_round(store, run_id)
    if last is not None:
        result["last_round"] = {k: last[k] for k in ("round", "loss", "grad_norm")}
        if (last.get("state") or {}).get("reason"):  # why the run stopped: converged, max_epochs, ...
            result["stop_reason"] = last["state"]["reason"]
        if "shard_cache" in last:  # the run's shard-cache reads so far (see docs/training.md)
            result["shard_cache"] = last["shard_cache"]
    if "stop_reason" not in result and (result.get("error") or {}).get("type") == "TrainingDiverged":
        result["stop_reason"] = "diverged"  # the diverged round is not recorded: the run's error says which it was
    if (found := run_problem(store, run_id, result["request"])) is not None:
        result["problem"] = found
    if curve:
        result["curve"] = training_curve(store, run_id)
    return result


def run_problem(store: ObjectStore, run_id: str, request: dict[str, Any]) -> dict[str, Any] | None:
    """The run's problem setup (task, models, metric, column decisions): as its manifest records it once
    Preprocess ran, else as inferred from the data set version it trains on; None when neither can be read."""
    try:
        recorded = store.get_json(layout.manifest_key(run_id)).get("problem")
        if isinstance(recorded, dict):
            return recorded
    except NotFound:
        pass
    try:
        parsed = TrainingRequest.model_validate(request)
        meta = ingestion.describe(store, parsed.dataset, parsed.version)
        return problem.setup(parsed, meta)[1].to_dict()
    except (MLError, ValueError):  # a request of another shape, a data set since deleted, ...
        return None
