"""`sml train` and `sml watch` show what the run inferred: its task, model and metric, and each column decision."""

from __future__ import annotations

import httpx
import pytest

from mlclient.cli import main as sml

URL = "https://api.example.com"
PROBLEM = {
    "task": "binary",
    "n_classes": 2,
    "linear_model": "logistic_regression",
    "mlp_model": "mlp_classifier",
    "metric": "accuracy",
    "reason": "the target holds text: 2 classes",
    "decisions": [
        {"column": "row_id", "action": "drop", "reason": "identifier: 300 distinct whole numbers in 300 rows"},
        {"column": "code", "action": "hash", "reason": "90 distinct text values, more than the one-hot limit of 50"},
    ],
}
LINES = [
    "task binary (the target holds text: 2 classes): model logistic_regression, metric accuracy",
    "  drop column row_id: identifier: 300 distinct whole numbers in 300 rows",
    "  hash column code: 90 distinct text values, more than the one-hot limit of 50",
]


@pytest.fixture
def answers(monkeypatch):
    routes: dict[tuple[str, str], httpx.Response] = {}
    original = httpx.Client

    def handle(request: httpx.Request) -> httpx.Response:
        return routes[(request.method, request.url.path)]

    def make(*args, **kwargs) -> httpx.Client:
        return original(*args, **{**kwargs, "transport": httpx.MockTransport(handle)})

    monkeypatch.setattr(httpx, "Client", make)
    return routes


def test_train_shows_the_inferred_task_and_decisions(answers, capsys):
    started = {"run_id": "run-1", "status": "RUNNING", "dataset": "d", "version": "v1", "model": "logistic_regression"}
    answers[("POST", "/training-runs")] = httpx.Response(202, json={**started, "problem": PROBLEM})
    assert sml(["--url", URL, "--api-key", "k", "train", "--dataset", "d", "--target", "y", "--model-name", "m"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[err.index(next(e for e in err if e.startswith("started run"))) + 1 :][:3] == LINES


def test_watch_shows_the_runs_problem_from_its_description(answers, capsys):
    run = {
        "run_id": "run-1",
        "status": "SUCCEEDED",
        "started_at": "2026-01-01T00:00:00+00:00",
        "stopped_at": "2026-01-01T00:00:05+00:00",
        "request": {"hyperparameters": {"model": "logistic_regression"}},
        "rounds_completed": 6,
        "stop_reason": "converged",
        "problem": PROBLEM,
        "model": {"model_name": "m", "version": 1, "metrics": {"accuracy": 0.9}},
    }
    answers[("GET", "/training-runs/run-1")] = httpx.Response(200, json=run)
    assert sml(["--url", URL, "--api-key", "k", "watch", "run-1"]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert LINES[0] in err and err[err.index(LINES[0]) + 1 : err.index(LINES[0]) + 3] == LINES[1:]
