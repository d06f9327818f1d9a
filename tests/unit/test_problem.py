"""Automatic problem setup (mlcore.steps.problem): the task from the target's profile, identifier-like columns
dropped, high-cardinality text hashed, the spec's word final; and the profile figures it is judged from."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest

from mlcore.infra import layout
from mlcore.infra.errors import InvalidInput
from mlcore.steps import problem, runs, tabular
from mlcore.steps.preparation import in_memory, shared
from mlcore.steps.schemas import TrainingRequest

from .fakes import FakeStore

ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:training"


def _profile(csv: str) -> dict:
    """The stored metadata Ingest would write for ``csv``: its rows and the scan's column profile."""
    data = csv.encode()
    found = tabular.scan(lambda: iter([data]))
    return {"dataset": "d", "version": "v1", "rows": found.rows, "columns": found.columns}


def _table(n: int = 200, seed: int = 0, **columns) -> str:
    """A CSV of ``n`` rows: x (continuous), and each of ``columns`` (a function of the row index and a rng)."""
    rng = np.random.default_rng(seed)
    names = ["x", *columns]
    lines = [",".join(names)]
    for i in range(n):
        values = [f"{rng.normal():.6f}", *(str(f(i, rng)) for f in columns.values())]
        lines.append(",".join(values))
    return "\n".join(lines) + "\n"


# -- the task ----------------------------------------------------------------------------------------------------
TASKS = [  # (target values by row, task, classes, linear model, metric)
    (lambda i, r: "yes" if r.random() < 0.4 else "no", "binary", 2, "logistic_regression", "accuracy"),
    (lambda i, r: ["red", "green", "blue"][i % 3], "multiclass", 3, "softmax_regression", "accuracy"),
    (lambda i, r: r.random() < 0.5, "binary", 2, "logistic_regression", "accuracy"),  # True / False
    (lambda i, r: i % 2, "binary", 2, "logistic_regression", "accuracy"),  # 0 / 1
    (lambda i, r: 3 + i % 7, "multiclass", 7, "softmax_regression", "accuracy"),  # wine quality 3..9
    (lambda i, r: int(r.integers(25, 346)), "regression", None, "linear_regression", "r2"),  # diabetes' whole numbers
    (lambda i, r: f"{r.normal() * 10:.3f}", "regression", None, "linear_regression", "r2"),
    (lambda i, r: f"{i % 4 / 2:.1f}", "regression", None, "linear_regression", "r2"),  # 0, 0.5, 1, 1.5: not whole
]


@pytest.mark.parametrize(
    ("values", "task", "classes", "model", "metric"),
    TASKS,
    ids=["text-2", "text-3", "bool", "int-2", "int-7", "int-many", "float", "few-floats"],
)
def test_the_task_is_inferred_from_the_target(values, task, classes, model, metric):
    found = problem.infer_problem(_profile(_table(y=values)), "y")
    assert (found.task, found.n_classes, found.linear_model, found.metric) == (task, classes, model, metric)
    assert found.mlp_model == ("mlp_regression" if task == "regression" else "mlp_classifier")
    assert found.decisions == []
    assert found.to_dict()["task"] == task and json.loads(json.dumps(found.to_dict())) == found.to_dict()


def test_ten_whole_numbers_are_classes_eleven_are_a_quantity():
    assert problem.infer_problem(_profile(_table(y=lambda i, r: i % 10)), "y").task == "multiclass"
    found = problem.infer_problem(_profile(_table(y=lambda i, r: i % 11)), "y")
    assert (found.task, found.reason) == ("regression", "the target holds 11 distinct whole numbers (more than 10)")


def test_a_model_the_user_names_sets_the_task_family():
    meta = _profile(_table(y=lambda i, r: i % 2))
    assert problem.infer_problem(meta, "y", model="linear_regression").task == "regression"
    found = problem.infer_problem(_profile(_table(y=lambda i, r: r.normal())), "y", model="logistic_regression")
    assert (found.task, found.reason) == ("binary", "model logistic_regression is a classifier")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (lambda i, r: "", "target column 'y' has no values"),
        (lambda i, r: "only", "target column 'y' has a single class: there is nothing to learn"),
        (lambda i, r: 4, "target column 'y' has a single value (4): there is nothing to learn"),
        (lambda i, r: "" if i % 2 else 2.5, "target column 'y' has a single value (2.5): there is nothing to learn"),
    ],
    ids=["all-missing", "one-class", "one-number", "one-number-and-missing"],
)
def test_a_target_that_cannot_be_learned_is_refused_naming_it(values, message):
    with pytest.raises(InvalidInput) as err:
        problem.infer_problem(_profile(_table(y=values)), "y")
    assert str(err.value) == message


def test_a_target_that_is_not_a_column_is_refused():
    with pytest.raises(InvalidInput, match=r"^target column 'z' is not in the data set \(columns: x, y\)$"):
        problem.infer_problem(_profile(_table(y=lambda i, r: i % 2)), "z")


# -- identifiers and hashing -------------------------------------------------------------------------------------
def _decisions(csv: str, spec: dict | None = None) -> list[dict]:
    from mlcore.math.preprocessing import PreprocessingSpec

    parsed = PreprocessingSpec.model_validate(spec) if spec is not None else None
    return problem.infer_problem(_profile(csv), "y", parsed).decisions


def test_identifier_columns_are_dropped_with_the_reason():
    csv = _table(
        n=200,
        row_id=lambda i, r: 1000 + i,  # a running key: unique whole numbers filling their range
        shuffled=lambda i, r: (i * 37) % 200,  # 0..199 in another order
        gappy=lambda i, r: 5 * i + int(r.integers(0, 2)),  # unique, filling ~20% of 0..996: not a row number
        uuid=lambda i, r: uuid.UUID(int=int(r.integers(0, 2**63))),
        near=lambda i, r: f"k{i if i % 50 else 0}",  # 197 distinct text values in 200 rows: nearly unique
        y=lambda i, r: r.normal(),
    )
    decisions = {d["column"]: d for d in _decisions(csv)}
    assert set(decisions) == {"row_id", "shuffled", "uuid", "near"}
    assert decisions["row_id"] == {
        "column": "row_id",
        "action": "drop",
        "reason": "identifier: 200 distinct whole numbers in 200 rows with a value, filling 100% of the range 1000 "
        "to 1199 (a row number or key)",
    }
    assert decisions["uuid"]["reason"] == "identifier: 200 distinct text values in 200 rows with a value"
    assert decisions["near"]["reason"] == "identifier: 197 distinct text values in 200 rows with a value"


def test_measurements_unique_per_row_are_not_identifiers():
    csv = _table(
        n=500,
        reading=lambda i, r: f"{r.normal() * 100:.6f}",  # continuous: every value distinct
        income=lambda i, r: int(r.integers(10_000, 300_000)),  # whole numbers, nearly all distinct, sparse
        age=lambda i, r: int(r.integers(18, 90)),  # whole numbers, few distinct
        customer_id=lambda i, r: ["a", "b", "c"][i % 3],  # a name is no evidence
        y=lambda i, r: r.normal(),
    )
    profile = {c["name"]: c for c in _profile(csv)["columns"]}
    assert profile["income"]["integer"] is True and profile["income"]["distinct"] >= 0.95 * 500
    assert "distinct" not in profile["reading"] and "integer" not in profile["reading"]
    assert _decisions(csv) == []


def test_too_few_rows_never_make_an_identifier():
    assert _decisions(_table(n=19, k=lambda i, r: i, y=lambda i, r: r.normal())) == []
    assert [d["column"] for d in _decisions(_table(n=20, k=lambda i, r: i, y=lambda i, r: r.normal()))] == ["k"]


def test_text_beyond_the_one_hot_limit_is_hashed_and_personal_data_dropped():
    csv = _table(
        n=300,
        code=lambda i, r: f"c{int(r.integers(0, 80))}",  # about 78 categories: over the limit of 50
        city=lambda i, r: ["a", "b", "c"][i % 3],
        mail=lambda i, r: f"user{i % 150}@example.com",
        y=lambda i, r: r.normal(),
    )
    decisions = {d["column"]: d for d in _decisions(csv)}
    assert set(decisions) == {"code", "mail"}
    distinct = next(c["distinct"] for c in _profile(csv)["columns"] if c["name"] == "code")
    assert decisions["code"] == {
        "column": "code",
        "action": "hash",
        "reason": f"{distinct} distinct text values, more than the one-hot limit of 50: hashed into 64 buckets",
    }
    assert decisions["mail"] == {
        "column": "mail",
        "action": "drop",
        "reason": "personal data: most values look like email addresses",
    }
    assert _decisions(csv, {"max_categories": 100}) == [decisions["mail"]]  # the spec's limit


def test_a_column_the_spec_names_is_left_as_the_spec_says():
    csv = _table(n=200, row_id=lambda i, r: i, code=lambda i, r: f"c{i % 90}", y=lambda i, r: r.normal())
    assert [d["column"] for d in _decisions(csv)] == ["row_id", "code"]
    spec = {"columns": {"row_id": {"kind": "categorical", "max_categories": 5}, "code": {"drop": True}}}
    assert _decisions(csv, spec) == []
    found = problem.infer_problem(_profile(csv), "y")
    merged = problem.with_decisions(TrainingRequest.model_validate(_body(preprocessing=spec)).preprocessing, found)
    assert merged is not None and merged.columns["row_id"].max_categories == 5 and merged.columns["code"].drop
    plain = problem.with_decisions(None, found)
    assert plain is not None and plain.columns["row_id"].drop and plain.columns["code"].hash_buckets == 64
    assert problem.with_decisions(None, problem.infer_problem(_profile(_table(y=lambda i, r: i % 2)), "y")) is None


# -- the profile's whole numbers ---------------------------------------------------------------------------------
def test_whole_numbers_are_counted_across_chunks_and_parts(monkeypatch):
    monkeypatch.setattr(tabular, "CHUNK_CHARS", 64)
    data = ("a,b,c\n" + "".join(f"{i % 7},{i},{i / 2}\n" for i in range(300))).encode()
    columns = {c["name"]: c for c in tabular.scan(lambda: iter([data])).columns}
    assert (columns["a"]["integer"], columns["a"]["distinct"]) == (True, 7)
    assert (columns["b"]["integer"], columns["b"]["distinct"]) == (True, 300)
    assert "integer" not in columns["c"] and "distinct" not in columns["c"]  # 0.5, 1.5, ...: not whole
    monkeypatch.setattr(tabular, "DISTINCT_CAP", 100)
    capped = {c["name"]: c for c in tabular.scan(lambda: iter([data])).columns}
    assert capped["b"]["distinct"] == ">= 100" and capped["a"]["distinct"] == 7
    # a data set of two parts: merged, and carried between invocations as JSON
    monkeypatch.setattr(tabular, "DISTINCT_CAP", 10_000)
    first = ("a,b\n" + "".join(f"{i % 3},{i}\n" for i in range(50))).encode()
    second = ("a,b\n" + "".join(f"{i % 5},{i}.5\n" for i in range(50))).encode()
    merged = tabular.Profile()
    for i, part in enumerate((first, second)):
        merged = tabular.Profile.from_state(json.loads(json.dumps(merged.state())))
        merged.add(f"part-{i}", tabular.scan(lambda part=part: iter([part])))
    entries = {c["name"]: c for c in merged.entries()}
    assert (entries["a"]["integer"], entries["a"]["distinct"]) == (True, 5)
    assert "integer" not in entries["b"]


# -- the request: a data set, a target and a model name -----------------------------------------------------------
def _body(**fields) -> dict:
    return {"dataset": "d", "target": "y", "model_name": "m", **fields}


def _stored(meta: dict) -> FakeStore:
    return FakeStore({layout.dataset_latest_key("d"): {"version": "v1"}, layout.dataset_meta_key("d", "v1"): meta})


class RecordingStepFunctions:
    def __init__(self) -> None:
        self.inputs: list[dict] = []

    def start_execution(self, name: str, input: str, **_) -> dict:
        self.inputs.append(json.loads(input))
        return {}


def test_a_request_naming_no_model_trains_the_inferred_tasks_linear_model():
    meta = _profile(_table(n=100, row_id=lambda i, r: i, y=lambda i, r: ["a", "b", "c"][i % 3]))
    for hyperparameters in ({}, {"model": None}):
        sfn = RecordingStepFunctions()
        started = runs.start(
            _stored(meta), sfn, ARN, TrainingRequest.model_validate(_body(hyperparameters=hyperparameters))
        )
        assert started["model"] == "softmax_regression" and started["problem"]["task"] == "multiclass"
        assert started["problem"]["decisions"] == [
            {
                "column": "row_id",
                "action": "drop",
                "reason": "identifier: 100 distinct whole numbers in 100 rows with a value, filling 100% of the "
                "range 0 to 99 (a row number or key)",
            }
        ]
        assert sfn.inputs[0]["hyperparameters"]["model"] == "softmax_regression"
        assert sfn.inputs[0]["preprocessing"] is None  # the decisions are Preprocess's; the request stays the user's
    sfn = RecordingStepFunctions()
    runs.start(_stored(meta), sfn, ARN, TrainingRequest.model_validate(_body(hyperparameters={"hidden_layers": [8]})))
    assert sfn.inputs[0]["hyperparameters"]["model"] == "mlp_classifier"  # network settings: the task's MLP


def test_hyperparameters_that_do_not_fit_the_inferred_model_are_refused_naming_it():
    meta = _profile(_table(n=100, y=lambda i, r: i % 2))
    request = TrainingRequest.model_validate(_body(hyperparameters={"solver": "exact"}))
    sfn = RecordingStepFunctions()
    with pytest.raises(InvalidInput) as err:
        runs.start(_stored(meta), sfn, ARN, request)
    assert str(err.value) == (
        "hyperparameters: solver 'exact' solves linear_regression only, not logistic_regression; use solver 'newton' "
        "or 'auto' (model logistic_regression was inferred: the target holds 2 distinct whole numbers (at most 10); "
        "name the model to choose another)"
    )
    assert sfn.inputs == []


@pytest.mark.parametrize("target", ["empty", "same"])
def test_a_target_that_cannot_be_learned_starts_nothing(target):
    meta = _profile(_table(n=100, empty=lambda i, r: "", same=lambda i, r: "k", y=lambda i, r: r.normal()))
    sfn, store = RecordingStepFunctions(), _stored(meta)
    with pytest.raises(InvalidInput, match=f"^target column '{target}' has "):
        runs.start(store, sfn, ARN, TrainingRequest.model_validate(_body(target=target)))
    assert sfn.inputs == [] and sum(store.writes.values()) == 0


def test_preprocess_applies_the_decisions_and_records_the_problem_in_the_manifest():
    csv = _table(n=120, row_id=lambda i, r: i, code=lambda i, r: f"c{i % 60}", y=lambda i, r: i % 2)
    meta = {**_profile(csv), "format": "csv", "key": "raw/d/v1/data.csv", "sha256": "0", "bytes": len(csv)}
    store = FakeStore()
    store.objects["raw/d/v1/data.csv"] = csv.encode()
    request = TrainingRequest.model_validate(_body(n_shards=2))
    request, found = problem.setup(request, meta)
    result = in_memory.preprocess_in_memory(store, request, "run-1", meta)
    manifest = store.get_json(layout.manifest_key("run-1"))
    assert manifest["problem"] == found.to_dict() and manifest["problem"]["task"] == "binary"
    assert [d["column"] for d in manifest["problem"]["decisions"]] == ["row_id", "code"]
    assert "row_id" in manifest["dropped_columns"]
    assert manifest["feature_names"] == ["x", *(f"code#{b}" for b in range(64))]
    assert result.n_outputs == 1 and result.classes == ["0", "1"]
    assert shared.setup_request(request, meta)[2] == found


class DescribedStepFunctions:
    """One execution of run ``RUN`` with the given status, error and input, as describe_execution reports it."""

    def __init__(self, status: str, request: dict, error: str | None = None, cause: str | None = None):
        from datetime import UTC, datetime

        self.execution = {
            "name": RUN,
            "executionArn": f"{ARN.replace(':stateMachine:', ':execution:')}:{RUN}",
            "status": status,
            "startDate": datetime(2026, 1, 1, tzinfo=UTC),
            "stopDate": datetime(2026, 1, 1, 0, 5, tzinfo=UTC),
            "input": json.dumps(request),
            **({"error": error, "cause": cause} if error else {}),
        }

    def describe_execution(self, executionArn: str) -> dict:
        return self.execution

    def get_paginator(self, operation: str):
        listed = [{k: self.execution[k] for k in ("name", "executionArn", "status", "startDate")}]
        return type("Paginator", (), {"paginate": lambda self, **_: iter([{"executions": listed}])})()


RUN = "run-00000000000e"


def test_a_diverged_run_reports_diverged_as_its_stop_reason():
    cause = json.dumps({"errorType": "TrainingDiverged", "errorMessage": "diverged at round 7; lower learning_rate"})
    sfn = DescribedStepFunctions("FAILED", {"dataset": "gone"}, "TrainingDiverged", cause)
    described = runs.describe(FakeStore(), sfn, ARN, RUN)
    assert described["stop_reason"] == "diverged"
    assert described["error"] == {"type": "TrainingDiverged", "message": "diverged at round 7; lower learning_rate"}
    assert "problem" not in described  # neither a manifest nor the data set to infer it from
    other = DescribedStepFunctions("FAILED", {}, "RoundFailed", json.dumps({"errorType": "RoundFailed"}))
    assert "stop_reason" not in runs.describe(FakeStore(), other, ARN, RUN)


def test_a_runs_description_has_its_problem_recorded_or_inferred():
    meta = _profile(_table(n=100, row_id=lambda i, r: i, y=lambda i, r: i % 2))
    request = _body(version="v1", hyperparameters={"model": "logistic_regression"})
    store = _stored(meta)
    inferred = runs.describe(store, DescribedStepFunctions("RUNNING", request), ARN, RUN)["problem"]
    assert inferred == problem.infer_problem(meta, "y", model="logistic_regression").to_dict()
    assert inferred["task"] == "binary" and [d["column"] for d in inferred["decisions"]] == ["row_id"]
    store.put_json(layout.manifest_key(RUN), {"problem": {**inferred, "reason": "as recorded"}})
    recorded = runs.describe(store, DescribedStepFunctions("RUNNING", request), ARN, RUN)["problem"]
    assert recorded["reason"] == "as recorded"  # the manifest's record wins once Preprocess wrote it


def test_a_version_without_a_stored_profile_is_not_judged():
    request = TrainingRequest.model_validate(_body(mode="async"))
    resolved, found = problem.setup(request, {"dataset": "d", "version": "v1", "rows": 0})
    assert (found.task, found.decisions, resolved.hyperparameters.model) == ("regression", [], "linear_regression")
    assert (resolved.hyperparameters.optimizer, resolved.hyperparameters.learning_rate) == ("sgd", 0.05)
    named = TrainingRequest.model_validate(_body(hyperparameters={"model": "softmax_regression"}))
    assert problem.setup(named, {"rows": 0})[1].task == "multiclass"
    # column names and kinds without the profile's counts (no row count): not judged either, never "no values"
    bare = {"columns": [{"name": "x", "kind": "numeric"}, {"name": "y", "kind": "numeric"}], "rows": None}
    assert problem.setup(request.model_copy(update={"target": "y"}), bare)[1].reason.startswith("the data set has no")


def test_a_text_target_of_too_many_classes_is_refused_and_an_uncounted_one_is_multiclass():
    meta = {"rows": 50_000, "columns": [{"name": "x", "kind": "numeric", "missing": 0, "min": 0.0, "max": 1.0}]}
    capped = {
        **meta,
        "columns": [*meta["columns"], {"name": "y", "kind": "categorical", "missing": 0, "distinct": ">= 10000"}],
    }
    with pytest.raises(InvalidInput) as err:
        problem.infer_problem(capped, "y")
    assert str(err.value) == (
        "target column 'y' has >= 10000 distinct text values: too many classes to learn; choose another target"
    )
    uncounted = {**meta, "columns": [*meta["columns"], {"name": "y", "kind": "categorical", "missing": 0}]}
    assert (problem.infer_problem(uncounted, "y").task, problem.infer_problem(uncounted, "y").n_classes) == (
        "multiclass",
        None,
    )
