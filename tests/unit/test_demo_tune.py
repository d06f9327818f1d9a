"""`make demo-tune` (mllocal.demo.tune) as a user reads it: what it asks the SDK for and what it prints, with the local
server and the SDK replaced by fakes (tests/e2e runs real tuning jobs)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from mllocal import demo

JOB = {
    "job_id": "tune-1",
    "status": "SUCCEEDED",
    "task": "regression",
    "metric": "r2",
    "started_at": "2026-01-01T00:00:00+00:00",
    "ended_at": "2026-01-01T00:00:30+00:00",
    "leaderboard": [],
    "best": {"trial": 4, "mode": "sync", "hyperparameters": {"model": "linear_regression", "solver": "auto"}},
    "model": {"model_name": "housing", "version": 1, "promoted": True, "reason": "first version"},
}


class FakeApi:
    url, api_key = "http://127.0.0.1:1", "local-api-key"

    def __enter__(self) -> FakeApi:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class FakeClient:
    """Records the SDK calls; wait_tuning prints the trial table once, as the SDK's live display leaves it."""

    def __init__(self, url: str, key: str | None) -> None:
        self.shown: list[object] = []  # what reaches the SDK's console
        self.console = SimpleNamespace(width=120, print=self.shown.append)
        self.calls: list[tuple[str, dict]] = []
        FakeClient.last = self

    def __enter__(self) -> FakeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def upload(self, data, name, **kwargs):
        self.calls.append(("upload", {"name": name, **kwargs}))
        return {"version": "v1", "rows": 3000}

    def tune(self, dataset, target, model_name, **kwargs):
        self.calls.append(("tune", {"dataset": dataset, "target": target, "model_name": model_name, **kwargs}))
        return {"job_id": "tune-1", "task": "regression", "rungs": [3, 9, 27], "estimated_cost_usd": 0.0135}

    def wait_tuning(self, job_id, **kwargs):
        self.calls.append(("wait_tuning", {"job_id": job_id, **kwargs}))
        self.console.print("the live trial table")
        return JOB


@pytest.fixture
def fakes(monkeypatch):
    monkeypatch.setattr("mlclient.Client", FakeClient)
    monkeypatch.setattr("mllocal.server.LocalApi", lambda **kwargs: FakeApi())


def test_demo_tune_shows_the_trial_table_once_then_the_outcome(fakes):
    lines: list[str] = []
    job = demo.tune(demo.DEFAULT_DATA, "housing", "price_k", out=lines.append)
    assert job is JOB
    assert FakeClient.last.shown == ["the live trial table"]  # no second copy of the table after it
    assert lines[0] == "uploaded   housing version v1: 3000 rows"
    assert lines[1] == (
        "started    tuning job tune-1: task regression, 6 trials (3 at a time), rungs [3, 9, 27] epochs, "
        "estimated cost $0.0135"
    )
    assert lines[2].startswith("tuning job tune-1 SUCCEEDED in 30.0s: best trial 4 (linear_regression")
    assert lines[3].startswith("done in ")
    tuned = dict(FakeClient.last.calls)["tune"]
    assert (tuned["max_trials"], tuned["max_parallel_trials"], tuned["seed"]) == (6, 3, 0)
