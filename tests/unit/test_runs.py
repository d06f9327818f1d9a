"""Training-run bookkeeping without AWS: which executions make up a run, when it may resume, how it failed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from mlcore.infra import layout
from mlcore.infra.errors import ConflictError, InvalidInput, LimitExceeded
from mlcore.math import cost
from mlcore.steps import runs
from mlcore.steps.preparation import in_memory, shared
from mlcore.steps.schemas import TrainingRequest

from .fakes import FakeStore

ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:training"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class FakeStepFunctions:
    """describe_execution and a newest-first list_executions over the given executions."""

    def __init__(self, executions: list[tuple[str, str]]):
        self.executions = [
            {
                "name": name,
                "executionArn": f"{ARN.replace(':stateMachine:', ':execution:')}:{name}",
                "status": status,
                "startDate": T0 + timedelta(minutes=i),
                "input": json.dumps({"dataset": "d"}),
            }
            for i, (name, status) in enumerate(executions)
        ]
        self.started: list[str] = []

    def describe_execution(self, executionArn: str) -> dict:
        return next(e for e in self.executions if e["executionArn"] == executionArn)

    def get_paginator(self, operation: str):
        assert operation == "list_executions"
        newest_first = sorted(self.executions, key=lambda e: e["startDate"], reverse=True)
        listed = [{k: e[k] for k in ("name", "executionArn", "status", "startDate")} for e in newest_first]
        return type("Paginator", (), {"paginate": lambda self, **_: iter([{"executions": listed}])})()

    def list_executions(self, **_) -> dict:
        return {"executions": next(iter(self.get_paginator("list_executions").paginate()))["executions"]}

    def start_execution(self, name: str, **_) -> dict:
        self.started.append(name)
        return {}


RUN = "run-00000000000c"


@pytest.mark.parametrize("status", ["RUNNING", "SUCCEEDED"])
def test_a_running_or_finished_run_is_not_resumed(status):
    sfn = FakeStepFunctions([(RUN, "FAILED"), (f"{RUN}-resume-r4-abcdef", status)])
    with pytest.raises(ConflictError, match=f"^training run '{RUN}' is {status}: only a run that FAILED"):
        runs.resume(FakeStore(), sfn, ARN, RUN)
    assert sfn.started == []


@pytest.mark.parametrize("status", ["FAILED", "TIMED_OUT", "ABORTED"])
def test_a_stopped_run_resumes_from_its_last_round(status):
    store = FakeStore({layout.context_key(RUN): {"request": {}, "data": {}}})
    sfn = FakeStepFunctions([(RUN, "SUCCEEDED"), (f"{RUN}-r3", status), ("run-00000000000d", "RUNNING")])
    resumed = runs.resume(store, sfn, ARN, RUN)
    assert resumed["resumed_from_round"] == 0 and sfn.started == [resumed["execution"]]
    assert resumed["execution"].startswith(f"{RUN}-resume-r0-")


def test_the_run_list_groups_executions_by_run_and_shows_the_latest_status():
    sfn = FakeStepFunctions(
        [(RUN, "SUCCEEDED"), ("run-00000000000d", "FAILED"), (f"{RUN}-r3", "RUNNING"), ("batch-0", "RUNNING")]
    )
    listed = runs.list_runs(sfn, ARN)["runs"]
    assert [(r["run_id"], r["status"]) for r in listed] == [("run-00000000000d", "FAILED"), (RUN, "RUNNING")]
    assert listed[1]["started_at"] == T0.isoformat()


def test_runs_beyond_a_page_are_reached_with_the_next_token():
    names = [f"run-{i:012x}" for i in range(7)]
    sfn = FakeStepFunctions([(n, "SUCCEEDED") for n in names] + [(f"{names[1]}-r3", "FAILED")])
    first = runs.list_runs(sfn, ARN, limit=3)
    assert [r["run_id"] for r in first["runs"]] == names[6:3:-1]
    second = runs.list_runs(sfn, ARN, limit=3, next_token=first["next"])
    assert [r["run_id"] for r in second["runs"]] == names[3:0:-1]
    last = runs.list_runs(sfn, ARN, limit=3, next_token=second["next"])
    assert [(r["run_id"], r["status"]) for r in last["runs"]] == [(names[0], "SUCCEEDED")]
    assert "next" not in last
    assert [(r["run_id"], r["status"]) for r in second["runs"]][-1] == (names[1], "FAILED")  # its continuation's


def test_a_page_token_the_api_did_not_give_is_refused():
    with pytest.raises(InvalidInput, match="next is not a page token this API returned"):
        runs.list_runs(FakeStepFunctions([]), ARN, next_token="bm90IGEgdG9rZW4")


class StoppableStepFunctions(FakeStepFunctions):
    def stop_execution(self, executionArn: str, error: str, cause: str) -> dict:
        self.stopped = (executionArn, error, cause)
        self.describe_execution(executionArn)["status"] = "ABORTED"
        return {}


def test_a_running_run_is_stopped_through_its_latest_execution():
    sfn = StoppableStepFunctions([(RUN, "SUCCEEDED"), (f"{RUN}-r3", "RUNNING")])
    assert runs.stop(sfn, ARN, RUN) == {"run_id": RUN, "status": "ABORTED"}
    assert sfn.stopped == (sfn.executions[1]["executionArn"], "StoppedByUser", "stopped through the API")


@pytest.mark.parametrize("status", ["SUCCEEDED", "FAILED", "ABORTED"])
def test_a_run_that_is_not_running_is_not_stopped(status):
    sfn = StoppableStepFunctions([(RUN, status)])
    with pytest.raises(ConflictError, match=f"training run '{RUN}' is {status}: only a RUNNING run can be stopped"):
        runs.stop(sfn, ARN, RUN)
    assert not hasattr(sfn, "stopped")


def test_a_finished_runs_usage_is_measured_once_and_stored(monkeypatch):
    measured: list[str] = []

    def usage(sfn, lam, arn, run_id, executions=None):
        measured.append(run_id)
        return cost.Usage(
            functions={"Aggregator": cost.FunctionUsage(3, 1500, 512)},
            state_transitions=40,
            rounds=2,
            shards=2,
            train_rows=100,
        )

    monkeypatch.setattr(runs, "usage", usage)
    store, sfn = FakeStore(), FakeStepFunctions([(RUN, "SUCCEEDED")])
    first = runs.run_cost(store, sfn, None, ARN, RUN, "us-east-1")
    second = runs.run_cost(store, sfn, None, ARN, RUN, "us-east-1", rounds=10)
    assert measured == [RUN]  # the history is paged once; afterwards the stored usage is read
    assert store.get_json(layout.run_usage_key(RUN))["functions"]["Aggregator"] == {
        "invocations": 3,
        "billed_ms": 1500,
        "memory_mb": 512,
    }
    assert second["actual"] == first["actual"] and second["what_if"]["usage"]["rounds"] == 10


def test_a_running_runs_usage_is_measured_live_and_not_stored(monkeypatch):
    measured: list[str] = []
    monkeypatch.setattr(
        runs, "usage", lambda sfn, lam, arn, run_id, executions=None: measured.append(run_id) or cost.Usage()
    )
    store, sfn = FakeStore(), FakeStepFunctions([(RUN, "RUNNING")])
    runs.run_cost(store, sfn, None, ARN, RUN, "us-east-1")
    runs.run_cost(store, sfn, None, ARN, RUN, "us-east-1")
    assert measured == [RUN, RUN] and not store.exists(layout.run_usage_key(RUN))


def test_a_resumed_run_drops_its_stored_usage():
    store, sfn = FakeStore(), FakeStepFunctions([(RUN, "FAILED")])
    store.put_json(layout.context_key(RUN), {"request": {}, "data": {}})
    store.put_json(layout.run_usage_key(RUN), cost.Usage().to_dict())
    runs.resume(store, sfn, ARN, RUN)
    assert not store.exists(layout.run_usage_key(RUN))


def test_a_lambda_failure_is_reported_by_its_message_without_the_stack_trace():
    cause = json.dumps(
        {"errorType": "InvalidInput", "errorMessage": "column 'x' must be numeric", "stackTrace": ["  File /var/task"]}
    )
    assert runs.failure_reason(cause) == "column 'x' must be numeric"
    assert runs.failure_reason("States.Timeout\nmore") == "States.Timeout"
    for error, message in [("InvalidInput", "a"), ("TrainingDiverged", "diverged at round 3"), ("RoundFailed", "b")]:
        assert runs.failure_reason(json.dumps({"errorType": error, "errorMessage": message})) == message


def test_a_library_error_is_reported_by_its_type_only_never_its_message():
    """A library's message may quote a raw feature value: the run names the error type; the logs have the rest."""
    cause = json.dumps(
        {"errorType": "ValueError", "errorMessage": "could not convert string to float: 'customer1118@example.com'"}
    )
    assert runs.failure_reason(cause) == "ValueError in a workflow step; see the logs"
    assert runs.failure_reason("x" * 2000) == "x" * (runs.MAX_REASON - 1) + "…"
    assert runs.failure_reason(None) is None


# -- requests that cannot succeed are refused up front, from the data set's stored profile ----------------------
def _meta(rows: int = 40, **columns: dict) -> dict:
    """A stored profile: x (numeric), city (3 categories), y (numeric target), label (2 classes), plus ``columns``."""
    base = {
        "x": {"kind": "numeric", "missing": 0, "min": 0.0, "max": 9.0},
        "city": {"kind": "categorical", "missing": 0, "distinct": 3},
        "y": {"kind": "numeric", "missing": 0, "min": 1.0, "max": 5.0},
        "label": {"kind": "categorical", "missing": 0, "distinct": 2},
    }
    merged = {**base, **columns}
    return {
        "dataset": "d",
        "version": "v1",
        "rows": rows,
        "columns": [{"name": name, **entry} for name, entry in merged.items()],
    }


def _request(**fields) -> TrainingRequest:
    return TrainingRequest.model_validate({"dataset": "d", "target": "y", "model_name": "m", **fields})


def _refusal(request: TrainingRequest, meta: dict) -> str:
    with pytest.raises(InvalidInput) as err:
        runs.check_feasible(request, meta)
    return str(err.value)


FEASIBILITY_CASES = [
    (
        {"target": "nope"},
        _meta(),
        "target column 'nope' is not in the data set (columns: x, city, y, label)",
    ),
    (
        {"preprocessing": {"columns": {"size": {"drop": True}}}},
        _meta(),
        "the preprocessing spec names column(s) not in the data set: size",
    ),
    (
        {"preprocessing": {"columns": {"y": {"drop": True}}}},
        _meta(),
        "the preprocessing spec drops the target column 'y'",
    ),
    (
        {},
        _meta(y={"kind": "numeric", "missing": 40, "min": None, "max": None}),
        "target column 'y' has no values",
    ),
    (
        {},
        _meta(rows=9),
        "the data set has 9 rows with a value of target column 'y', fewer than the 10 a training run needs",
    ),
    (
        {},
        _meta(rows=40, y={"kind": "numeric", "missing": 31, "min": 1.0, "max": 5.0}),
        "the data set has 9 rows with a value of target column 'y', fewer than the 10 a training run needs",
    ),
    (
        {"target": "city", "hyperparameters": {"model": "linear_regression"}},
        _meta(),
        "target column 'city' must be numeric for regression",
    ),
    (
        {"target": "label", "hyperparameters": {"model": "logistic_regression"}},
        _meta(label={"kind": "categorical", "missing": 0, "distinct": 1}),
        "target column 'label' has a single class: there is nothing to learn",
    ),
    (
        {"target": "city", "hyperparameters": {"model": "logistic_regression"}},
        _meta(),
        "target column 'city': logistic_regression needs exactly 2 classes, got 3; use softmax_regression",
    ),
    (
        {"target": "label", "hyperparameters": {"model": "softmax_regression"}},
        _meta(label={"kind": "categorical", "missing": 0, "distinct": 1}),
        "target column 'label' has a single class: there is nothing to learn",
    ),
    (
        {"hyperparameters": {"model": "logistic_regression"}},
        _meta(y={"kind": "numeric", "missing": 0, "min": 1.0, "max": 1.0}),
        "target column 'y' has a single value (1): there is nothing to learn",
    ),
    (
        {"test_fraction": 0.01},
        _meta(rows=10),
        "10 usable rows are too few to split with test_fraction=0.01",
    ),
    (  # 40 rows: 8 test, 32 training
        {"n_shards": 33},
        _meta(),
        "n_shards=33 is more than the 32 training rows",
    ),
    (  # 40 rows: 8 test, 8 validation, 24 training
        {"n_shards": 25, "validation_fraction": 0.25},
        _meta(),
        "n_shards=25 is more than the 24 training rows",
    ),
    (  # at most 5 rows have x, which the spec requires: 1 test, 4 training
        {"n_shards": 5, "preprocessing": {"columns": {"x": {"impute": "drop_rows"}}}},
        _meta(x={"kind": "numeric", "missing": 35, "min": 0.0, "max": 9.0}),
        "n_shards=5 is more than the 4 training rows",
    ),
    (  # a column the spec names is one-hot encoded as asked, not hashed: 150 categories are over the limit
        {"preprocessing": {"columns": {"code": {"impute": "most_frequent"}}, "max_categories": 100}},
        _meta(rows=200, code={"kind": "categorical", "missing": 0, "distinct": 150}),
        "column 'code' has 150 distinct values, more than the one-hot limit of 100; drop it, hash it or cap it "
        "(max_categories) in the preprocessing spec",
    ),
    (  # a sensitive column the spec names is the user's choice, encoded as asked
        {"preprocessing": {"columns": {"email": {}}}},
        _meta(rows=200, email={"kind": "categorical", "missing": 0, "distinct": 200, "sensitive": "email"}),
        "column 'email' has 200 distinct values, more than the one-hot limit of 50; drop it, hash it or cap it "
        "(max_categories) in the preprocessing spec",
    ),
]


@pytest.mark.parametrize(("fields", "meta", "message"), FEASIBILITY_CASES)
def test_a_request_that_cannot_succeed_is_refused_with_the_reason(fields, meta, message):
    assert _refusal(_request(**fields), meta) == message


@pytest.mark.parametrize(
    ("fields", "meta"),
    [
        ({}, _meta()),
        ({"n_shards": 32}, _meta()),  # one training row per shard
        ({"n_shards": 24, "validation_fraction": 0.25}, _meta()),
        ({}, _meta(rows=10)),
        ({"target": "label", "hyperparameters": {"model": "logistic_regression"}}, _meta()),
        ({"target": "city", "hyperparameters": {"model": "softmax_regression"}}, _meta()),
        # a numeric target's class count is not in the profile: not judged
        ({"hyperparameters": {"model": "logistic_regression"}}, _meta()),
        # 100 rows, 80 training: at most 60 - 20 = 40 of the 60 categories need reach the fit
        ({}, _meta(rows=100, code={"kind": "categorical", "missing": 0, "distinct": 60})),
        (
            {"preprocessing": {"columns": {"code": {"drop": True}}}},
            _meta(rows=200, code={"kind": "categorical", "missing": 0, "distinct": 150}),
        ),
        (
            {"preprocessing": {"columns": {"code": {"encoding": "hash", "hash_buckets": 16}}}},
            _meta(rows=200, code={"kind": "categorical", "missing": 0, "distinct": 150}),
        ),
        (
            {"preprocessing": {"columns": {"code": {"max_categories": 20}}}},
            _meta(rows=200, code={"kind": "categorical", "missing": 0, "distinct": 150}),
        ),
        # a capped distinct count is not exact: not judged
        ({}, _meta(rows=200_000, code={"kind": "categorical", "missing": 0, "distinct": ">= 100000"})),
        # identifiers and personal data are dropped by default, however many values they have
        ({}, _meta(rows=200, email={"kind": "categorical", "missing": 0, "distinct": 200, "sensitive": "email"})),
        ({}, _meta(rows=200, id={"kind": "categorical", "missing": 0, "distinct": 200, "sensitive": "identifier"})),
    ],
)
def test_a_request_that_can_succeed_passes_the_check(fields, meta):
    runs.check_feasible(_request(**fields), meta)


def test_the_check_splits_as_preprocess_does():
    rng = np.random.default_rng(0)
    columns = {"x": rng.normal(size=40), "y": rng.normal(size=40)}
    prepared = in_memory.build_matrices(
        columns, {"x": "numeric", "y": "numeric"}, "y", 0.2, 0, validation_fraction=0.25
    )
    assert shared.split_sizes(40, 0.2, 0.25) == (24, 8, 8)
    assert (prepared.train.shape[0], prepared.validation.shape[0], prepared.test.shape[0]) == (24, 8, 8)


def test_sensitive_columns_are_dropped_unless_the_spec_names_them():
    meta = _meta(
        email={"kind": "categorical", "missing": 0, "distinct": 40, "sensitive": "email"},
        phone={"kind": "categorical", "missing": 0, "distinct": 40, "sensitive": "phone"},
    )
    request, dropped = shared.drop_sensitive(_request(), meta)
    assert dropped == [{"column": "email", "reason": "email"}, {"column": "phone", "reason": "phone"}]
    assert request.preprocessing is not None
    assert {n: r.drop for n, r in request.preprocessing.columns.items()} == {"email": True, "phone": True}
    asked = _request(preprocessing={"columns": {"phone": {"encoding": "hash", "hash_buckets": 8}}})
    request, dropped = shared.drop_sensitive(asked, meta)
    assert dropped == [{"column": "email", "reason": "email"}]
    assert request.preprocessing is not None and request.preprocessing.columns["phone"].encoding == "hash"
    assert shared.drop_sensitive(_request(target="email"), meta)[1] == [{"column": "phone", "reason": "phone"}]
    assert shared.drop_sensitive(_request(), _meta()) == (_request(), [])


# -- ceilings: concurrent runs and estimated cost -------------------------------------------------------------
class FilteringStepFunctions(FakeStepFunctions):
    """list_executions honours statusFilter, as Step Functions does."""

    def get_paginator(self, operation: str):
        listed = next(iter(super().get_paginator(operation).paginate()))["executions"]

        def paginate(_, statusFilter: str | None = None, **__):
            return iter([{"executions": [e for e in listed if statusFilter in (None, e["status"])]}])

        return type("Paginator", (), {"paginate": paginate})()


def _stored(meta: dict) -> FakeStore:
    return FakeStore(
        {
            layout.dataset_latest_key("d"): {"dataset": "d", "version": "v1"},
            layout.dataset_meta_key("d", "v1"): meta,
        }
    )


def test_a_run_beyond_the_running_limit_is_refused_and_nothing_starts():
    sfn = FilteringStepFunctions([(RUN, "RUNNING"), ("run-00000000000d", "SUCCEEDED"), (f"{RUN}-r3", "RUNNING")])
    with pytest.raises(LimitExceeded) as err:
        runs.start(_stored(_meta()), sfn, ARN, _request(), max_running=2)
    assert str(err.value) == (
        "2 training executions are running, the limit is 2 at once; retry when one has finished, "
        "or raise the stack parameter MaxConcurrentTrainingRuns"
    )
    assert sfn.started == []
    started = runs.start(_stored(_meta()), sfn, ARN, _request(), max_running=3)
    assert sfn.started == [started["run_id"]]


def test_a_run_whose_estimate_is_above_the_cost_ceiling_is_refused_and_nothing_starts():
    sfn = FilteringStepFunctions([])
    meta = _meta(rows=100_000)
    big = _request(n_shards=1000, hyperparameters={"max_epochs": 2000})
    estimate = runs.estimated_cost(big, meta, "us-east-1")
    # 80,000 training rows, 2000 rounds over 1000 shards (a Distributed Map: 4 + 2 x 1000 transitions a round): the
    # state transitions alone cost 2000 x 2004 x $0.000025
    usage = cost.estimate(80_000, 1000, 2000)
    assert usage.state_transitions == 6 + 2000 * 2004
    assert estimate == cost.cost(usage, cost.price_table("us-east-1"))["total"] > 2000 * 2004 * 0.025 / 1000
    with pytest.raises(InvalidInput) as err:
        runs.start(_stored(meta), sfn, ARN, big, max_cost_usd=5.0)
    assert str(err.value) == (
        f"the run's estimated cost of ${estimate:.2f} (2000 rounds at most over 1000 shards, us-east-1 list "
        "prices) is above the ceiling of $5.00 per run; lower max_epochs or n_shards, or raise the stack parameter "
        "MaxRunCostUsd"
    )
    assert sfn.started == []
    small = runs.estimated_cost(_request(), meta, "us-east-1")
    assert small < 0.1  # 300 rounds over 4 shards
    runs.start(_stored(meta), sfn, ARN, _request(), max_cost_usd=5.0)
    assert len(sfn.started) == 1


def test_a_request_that_cannot_succeed_starts_nothing():
    sfn = FilteringStepFunctions([])
    with pytest.raises(InvalidInput, match="^n_shards=33 is more than the 32 training rows$"):
        runs.start(_stored(_meta()), sfn, ARN, _request(n_shards=33), max_running=10, max_cost_usd=5.0)
    assert sfn.started == []


class ComparableStepFunctions(FakeStepFunctions):
    """Executions with a full training request as input and, when SUCCEEDED, the registered model as output;
    counts describe_execution calls."""

    def __init__(self, executions: list[tuple[str, str]], request: dict, output: dict | None):
        super().__init__(executions)
        for e in self.executions:
            e["input"] = json.dumps(request)
            if e["status"] == "SUCCEEDED" and output is not None:
                e["output"] = json.dumps(output)
        self.described = 0

    def describe_execution(self, executionArn: str) -> dict:
        self.described += 1
        return super().describe_execution(executionArn)


def _full_request(**hyperparameters) -> dict:
    return TrainingRequest(
        dataset="d", target="y", model_name="m", mode="async", hyperparameters=hyperparameters
    ).model_dump(mode="json")


def test_the_run_list_shows_hyperparameters_test_metric_and_stop_reason_and_stores_them_once():
    request = _full_request(optimizer="adam", learning_rate=0.05)
    output = {"model_name": "m", "version": 3, "metrics": {"rmse": 1.5, "r2": 0.91}, "rounds": 2}
    sfn = ComparableStepFunctions([(RUN, "SUCCEEDED")], request, output)
    store = FakeStore(
        {
            layout.round_key(RUN, 1): {"round": 1, "loss": 2.0, "grad_norm": 0.1, "state": {}},
            layout.round_key(RUN, 2): {"round": 2, "loss": 1.0, "grad_norm": 0.01, "state": {"reason": "converged"}},
        }
    )
    (run,) = runs.list_runs(sfn, ARN, store=store)["runs"]
    expected = {
        "hyperparameters": {"model": "linear_regression", "optimizer": "adam", "learning_rate": 0.05, "solver": "auto"},
        "mode": "async",
        "metric": "r2",
        "test_metric": 0.91,
        "rounds_completed": 2,
        "stop_reason": "converged",
        "model_name": "m",
        "model_version": 3,
    }
    assert {k: run[k] for k in expected} == expected and run["status"] == "SUCCEEDED"
    assert store.documents[layout.run_summary_key(RUN)] == {**expected, "execution": RUN, "status": "SUCCEEDED"}
    # listed again: the stored summary alone, no execution described, no round read
    described, reads = sfn.described, sum(store.reads.values())
    (again,) = runs.list_runs(sfn, ARN, store=store)["runs"]
    assert {k: again[k] for k in expected} == expected
    assert sfn.described == described and sum(store.reads.values()) == reads + 1
    assert store.writes[layout.run_summary_key(RUN)] == 1


def test_a_resumed_run_gets_a_new_summary_and_a_running_one_only_its_hyperparameters():
    request = _full_request(model="logistic_regression", solver="sgd")
    sfn = ComparableStepFunctions([(RUN, "FAILED")], request, None)
    store = FakeStore()
    (failed,) = runs.list_runs(sfn, ARN, store=store)["runs"]
    assert (failed["metric"], failed["test_metric"], failed["stop_reason"], failed["rounds_completed"]) == (
        None,
        None,
        None,
        0,
    )
    sfn.executions.append({**sfn.executions[0], "name": f"{RUN}-resume-r0-abcdef", "status": "RUNNING"})
    sfn.executions[-1]["startDate"] = T0 + timedelta(minutes=5)
    sfn.executions[-1]["executionArn"] += "-resume-r0-abcdef"
    (running,) = runs.list_runs(sfn, ARN, store=store)["runs"]
    assert running["status"] == "RUNNING" and running["mode"] == "async"
    assert running["hyperparameters"]["model"] == "logistic_regression"
    assert running["hyperparameters"]["solver"] == "sgd"
    assert "metric" not in running and "stop_reason" not in running
    sfn.executions[-1]["status"] = "SUCCEEDED"
    sfn.executions[-1]["output"] = json.dumps({"model_name": "m", "version": 1, "metrics": {"accuracy": 0.8}})
    (succeeded,) = runs.list_runs(sfn, ARN, store=store)["runs"]
    assert (succeeded["metric"], succeeded["test_metric"]) == ("accuracy", 0.8)
    assert store.documents[layout.run_summary_key(RUN)]["execution"] == f"{RUN}-resume-r0-abcdef"


def test_the_run_list_without_a_store_reads_no_execution():
    sfn = ComparableStepFunctions([(RUN, "SUCCEEDED")], _full_request(), {"metrics": {}})
    (run,) = runs.list_runs(sfn, ARN)["runs"]
    assert sfn.described == 0 and "hyperparameters" not in run
