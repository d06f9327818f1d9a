"""The real statemachines/training.asl.json executed by moto's Step Functions interpreter,
every Lambda invocation routed to the real handler, compared with scikit-learn."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from mlcore.serving.registry import ModelArtifact
from mlcore.steps import schemas
from mlcore.steps.preparation.in_memory import build_matrices
from mlcore.steps.tabular import column_kinds, read_csv, to_columns
from mllocal.cloud import LocalCloud
from mllocal.lambdas import LambdaServiceError
from mllocal.template import local_stack
from tests.helpers import HOUSING_CSV, keys

HOUSING = HOUSING_CSV.read_bytes()
FAST = {"optimizer": "sgd", "learning_rate": 0.5, "max_epochs": 300, "solver": "sgd"}


def _ingest(cloud, csv=HOUSING, name="housing"):
    resp = cloud.request("POST", f"/datasets/{name}", csv, headers={"Content-Type": "text/csv"})
    assert resp["statusCode"] == 201, resp
    return json.loads(resp["body"])["version"]


def _theta(cloud, key):
    body = cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=key)["Body"].read()
    return np.load(io.BytesIO(body), allow_pickle=False)["theta"].ravel()


def _history(cloud, arn):
    pages = cloud.sfn.get_paginator("get_execution_history").paginate(executionArn=arn)
    return [e for page in pages for e in page["events"]]


@pytest.fixture(scope="class")
def trained():
    """data/housing.csv trained over 4 shards by the state machine, and scikit-learn on the same split.

    Class-scoped: its local cloud is closed before the module's other tests open theirs (one at a time)."""
    with LocalCloud(local_stack(overrides={"LogLevel": "WARNING"})) as cloud:
        version = _ingest(cloud)
        request = {
            "dataset": "housing",
            "version": version,
            "target": "price_k",
            "model_name": "housing",
            "n_shards": 4,
            "seed": 3,
            "hyperparameters": FAST,
        }
        arn = cloud.start("TrainingStateMachine", request)
        execution = cloud.wait(arn)
        assert execution["status"] == "SUCCEEDED", execution
        model = json.loads(execution["output"])
        frame = read_csv(HOUSING)
        _, train, test, _, _ = build_matrices(to_columns(frame), column_kinds(frame), "price_k", 0.2, 3)
        reference = LinearRegression().fit(train[:, :-1].astype(float), train[:, -1])
        artifact = json.loads(cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=model["artifact_key"])["Body"].read())
        yield SimpleNamespace(
            cloud=cloud, arn=arn, model=model, artifact=artifact, test=test, reference=reference, rounds=model["rounds"]
        )


class TestTheWholeDataSet:
    """One training run over data/housing.csv, checked against scikit-learn and through the API."""

    def test_training_registers_the_model(self, trained):
        model, rounds = trained.model, trained.rounds
        assert (model["model_name"], model["version"], model["status"]) == ("housing", 1, "registered")
        assert 10 < rounds < 300
        artifact = trained.artifact
        assert artifact["hyperparameters"]["n_shards"] == 4 and len(artifact["training_curve"]) == rounds

    def test_training_runs_one_worker_per_shard_per_round(self, trained):
        cloud, rounds = trained.cloud, trained.rounds
        # one GradientWorker per shard per round, one Aggregator per round plus the init
        assert cloud.invocations["GradientWorkerFunction"] == 4 * rounds
        assert cloud.invocations["AggregatorFunction"] == rounds + 1
        assert cloud.invocations["PreprocessFunction"] == cloud.invocations["EvaluateFunction"] == 1
        history = _history(cloud, trained.arn)
        # the rounds ran in Express children, rounds_per_call (25) a call: the parent holds the calls, not the Maps
        assert not any(e["type"] == "MapStateStarted" for e in history)
        entered = [e["stateEnteredEventDetails"]["name"] for e in history if e["type"].endswith("StateEntered")]
        assert entered.count("RunRounds") == entered.count("RoundsDone?") == -(-rounds // 25)
        names = [e.get("stateEnteredEventDetails", {}).get("name") for e in history]
        first = names.index("RunRounds")
        call = history[first : first + schemas.EVENTS_PER_CHILD_CALL]  # the history arithmetic of schemas.py
        assert [e["type"] for e in call] == [
            "TaskStateEntered",
            "TaskScheduled",
            "TaskStarted",
            "TaskSubmitted",
            "TaskSucceeded",
            "TaskStateExited",
            "ChoiceStateEntered",
            "ChoiceStateExited",
        ]
        assert len(history) < 25_000

    def test_training_matches_scikit_learn(self, trained):
        # scikit-learn on the same split and features
        test, reference = trained.test, trained.reference
        X_test = test[:, :-1].astype(float)
        theta = _theta(trained.cloud, f"runs/{trained.arn.split(':')[-1]}/params/round-{trained.rounds:05d}.npz")
        ours = X_test @ theta[:-1] + theta[-1]
        np.testing.assert_allclose(ours, reference.predict(X_test), rtol=2e-3)
        ref_r2 = reference.score(X_test, test[:, -1])
        assert abs(trained.model["metrics"]["r2"] - ref_r2) < 1e-3

    def test_evaluate_records_the_scikit_learn_reference_fit(self, trained):
        test, reference = trained.test, trained.reference
        ref_r2 = reference.score(test[:, :-1].astype(float), test[:, -1])
        # Evaluate recorded the same reference fit in the artifact
        recorded = trained.artifact["metrics"]
        assert "LinearRegression" in recorded["reference"]["estimator"]
        assert recorded["reference"]["test"]["r2"] == pytest.approx(ref_r2, rel=1e-9)
        assert recorded["reference"]["difference"]["r2"] == pytest.approx(trained.model["metrics"]["r2"] - ref_r2)

    def test_the_registered_model_answers_through_the_api_with_the_same_numbers(self, trained):
        instance = {
            "area_m2": 120.0,
            "bedrooms": 3,
            "age_years": 20.0,
            "distance_km": 4.0,
            "lot_m2": 300.0,
            "neighborhood": "hills",
        }
        resp = trained.cloud.request("POST", "/models/housing/predict", {"instances": [instance]})
        assert resp["statusCode"] == 200
        expected = ModelArtifact.model_validate(trained.artifact).predict({k: [v] for k, v in instance.items()})[0]
        assert json.loads(resp["body"])["predictions"] == [pytest.approx(expected, rel=1e-12)]


def _run_with_an_unknown_target(cloud) -> dict:
    _ingest(cloud)
    return cloud.run("TrainingStateMachine", {"dataset": "housing", "target": "price", "model_name": "m"})


def test_an_unknown_target_fails_the_execution(cloud):
    execution = _run_with_an_unknown_target(cloud)
    assert execution["status"] == "FAILED"
    assert execution["error"] == "InvalidInput"
    assert "target column 'price' is not in the data set" in execution["cause"]


def test_a_failed_execution_writes_nothing(cloud):
    assert _run_with_an_unknown_target(cloud)["status"] == "FAILED"
    assert keys(cloud, "processed/") == keys(cloud, "runs/") == keys(cloud, "models/") == []


def test_invalid_hyperparameters_fail_the_execution(cloud):
    _ingest(cloud)
    execution = cloud.run(
        "TrainingStateMachine",
        {"dataset": "housing", "target": "price_k", "model_name": "m", "hyperparameters": {"optimizer": "lbfgs"}},
    )
    assert execution["status"] == "FAILED" and execution["error"] == "ValidationError"
    assert "optimizer" in execution["cause"]


def _train_small(rows: bytes, hook=None) -> tuple[np.ndarray, dict]:
    with LocalCloud(local_stack(overrides={"LogLevel": "WARNING"}), hook=hook) as cloud:
        version = _ingest(cloud, rows)
        request = {
            "dataset": "housing",
            "version": version,
            "target": "price_k",
            "model_name": "small",
            "n_shards": 4,
            "hyperparameters": {"max_epochs": 4, "solver": "sgd"},
        }
        execution = cloud.run("TrainingStateMachine", request, name="run-faults")
        assert execution["status"] == "SUCCEEDED", execution
        return _theta(cloud, "runs/run-faults/params/round-00004.npz"), dict(cloud.invocations)


def test_transient_worker_faults_are_retried_to_the_same_parameters(housing_sample):
    clean, clean_calls = _train_small(housing_sample)
    failures = {"left": 3}

    def flaky(spec, event):
        if spec.logical_id == "GradientWorkerFunction" and event["round"] == 1 and failures["left"] > 0:
            failures["left"] -= 1
            raise LambdaServiceError()

    faulty, faulty_calls = _train_small(housing_sample, flaky)
    assert failures["left"] == 0
    assert faulty_calls["GradientWorkerFunction"] == clean_calls["GradientWorkerFunction"] + 3 == 16 + 3
    np.testing.assert_array_equal(faulty, clean)


@pytest.fixture(scope="class")
def solved():
    """data/housing.csv over 4 shards with the exact solver, and scikit-learn's LinearRegression on the same split."""
    with LocalCloud(local_stack(overrides={"LogLevel": "WARNING"})) as cloud:
        version = _ingest(cloud)
        request = {
            "dataset": "housing",
            "version": version,
            "target": "price_k",
            "model_name": "housing-exact",
            "n_shards": 4,
            "seed": 3,
            "hyperparameters": {"solver": "exact"},
        }
        arn = cloud.start("TrainingStateMachine", request)
        execution = cloud.wait(arn)
        assert execution["status"] == "SUCCEEDED", execution
        model = json.loads(execution["output"])
        frame = read_csv(HOUSING)
        _, train, test, _, _ = build_matrices(to_columns(frame), column_kinds(frame), "price_k", 0.2, 3)
        reference = LinearRegression().fit(train[:, :-1].astype(float), train[:, -1])
        artifact = json.loads(cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=model["artifact_key"])["Body"].read())
        yield SimpleNamespace(cloud=cloud, arn=arn, model=model, artifact=artifact, test=test, reference=reference)


class TestTheExactSolver:
    """One run with solver exact: the workers' statistics, one aggregation, scikit-learn's fit."""

    def test_the_run_is_solved_in_one_round(self, solved):
        assert solved.model["rounds"] == 1 and solved.model["status"] == "registered"
        assert solved.artifact["metrics"]["stop_reason"] == "solved"
        assert solved.cloud.invocations["GradientWorkerFunction"] == 4  # one call per shard
        assert solved.cloud.invocations["AggregatorFunction"] == 2  # the init and the solve
        [record] = solved.artifact["training_curve"]
        assert record["round"] == 0 and record["solver"] == {"name": "exact", "singular": True}  # one-hot columns
        assert record["grad_norm"] < 1e-6 * record["loss"]

    def test_the_test_r2_equals_scikit_learns(self, solved):
        test, reference = solved.test, solved.reference
        ref_r2 = reference.score(test[:, :-1].astype(float), test[:, -1])
        assert solved.model["metrics"]["r2"] == pytest.approx(ref_r2, abs=1e-6)
        run = solved.arn.split(":")[-1]
        theta = _theta(solved.cloud, f"runs/{run}/params/round-00001.npz")
        X_test = test[:, :-1].astype(float)
        np.testing.assert_allclose(X_test @ theta[:-1] + theta[-1], reference.predict(X_test), rtol=1e-6)

    @pytest.mark.parametrize(
        ("request_", "message"),
        [
            ({"mode": "async"}, "solver 'exact' runs in sync mode only, not mode 'async'; use solver 'sgd'"),
            (
                {"hyperparameters": {"solver": "exact", "model": "logistic_regression"}},
                "solver 'exact' solves linear_regression only, not logistic_regression; use solver 'newton' or 'auto'",
            ),
            (
                {"hyperparameters": {"solver": "exact", "worker_mode": "local_steps"}},
                "solver 'exact' does not combine with worker_mode 'local_steps'; use worker_mode 'gradient'",
            ),
        ],
    )
    def test_exact_where_it_does_not_apply_is_a_422_that_starts_nothing(self, solved, request_, message):
        cloud = solved.cloud
        request = {"dataset": "housing", "target": "price_k", "model_name": "m", "hyperparameters": {"solver": "exact"}}
        before = cloud.sfn.list_executions(stateMachineArn=cloud.state_machine_arns["TrainingStateMachine"])
        resp = cloud.request("POST", "/training-runs", {**request, **request_})
        assert resp["statusCode"] == 422 and message in resp["body"]
        after = cloud.sfn.list_executions(stateMachineArn=cloud.state_machine_arns["TrainingStateMachine"])
        assert len(after["executions"]) == len(before["executions"])
