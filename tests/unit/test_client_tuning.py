"""Comparing runs and tuning jobs from the client (SDK, `sml`, report) against a scripted API (httpx.MockTransport)
answering with documents shaped as the API's contract: which fields a comparison shows and their exact values, the
tuning request sent, the live trial table, the leaderboard, and the search figures."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pandas as pd
import pytest
from rich.console import Console

from mlclient import ApiError, Client, RunFailed
from mlclient.cli import main as sml
from mlclient.sdk import comparison_fields, comparison_row, comparison_table, trials_table, tuning_outcome

URL = "https://api.example.com"
Handler = Callable[[httpx.Request], httpx.Response]


class Api:
    """Answers per (method, path): a document, a list of documents given in turn (the last one repeated), a
    response, or a function of the request; ``seen`` holds every request."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], object] = {}
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        answer = self.routes[(request.method, request.url.path)]
        if callable(answer):
            answer = answer(request)
        if isinstance(answer, list):
            answer = answer.pop(0) if len(answer) > 1 else answer[0]
        return answer if isinstance(answer, httpx.Response) else httpx.Response(200, json=answer)

    def client(self) -> Client:
        return Client(URL, "k", transport=httpx.MockTransport(self), sleep=lambda _: None, progress=False)

    def sent(self, method: str, path: str) -> list[dict]:
        return [json.loads(r.content) for r in self.seen if (r.method, r.url.path) == (method, path)]


@pytest.fixture
def api(monkeypatch) -> Api:
    """The scripted API, also behind every httpx.Client the CLI makes; the CLI prints on a wide terminal."""
    monkeypatch.setattr("mlclient.cli.console", Console(width=200))
    scripted = Api()
    original = httpx.Client

    def make(*args, **kwargs) -> httpx.Client:
        return original(*args, **{**kwargs, "transport": httpx.MockTransport(scripted)})

    monkeypatch.setattr(httpx, "Client", make)
    return scripted


def _sml(*args: str) -> int:
    return sml(["--url", URL, "--api-key", "k", *args])


# -- runs side by side ----------------------------------------------------------------
def _run(run_id: str, status: str = "SUCCEEDED", **hyperparameters) -> dict:
    hp = {"model": "linear_regression", "optimizer": "momentum", "learning_rate": 0.1, "l2": 0.0, "momentum": 0.9}
    hp |= {"batch_size": 0, "solver": "auto", "max_epochs": 300, "tolerance": 0.0001, **hyperparameters}
    run = {
        "run_id": run_id,
        "status": status,
        "started_at": "2026-01-01T00:00:00+00:00",
        "stopped_at": "2026-01-01T00:01:05+00:00",
        "request": {"dataset": "d", "target": "y", "mode": "sync", "hyperparameters": hp},
        "rounds_completed": 12,
    }
    if status == "SUCCEEDED":
        run["stop_reason"] = "converged"
        run["model"] = {"model_name": "m", "version": 1, "metrics": {"r2": 0.91, "rmse": 1.5}, "rounds": 12}
    return run


A, B = "run-00000000000a", "run-00000000000b"


def test_a_comparison_row_is_flat_and_shows_key_and_differing_hyperparameters_only():
    rows = [comparison_row(_run(A), 0.0123), comparison_row(_run(B, "FAILED", optimizer="adam", momentum=0.5))]
    assert rows[0] == {
        "run_id": A,
        "status": "SUCCEEDED",
        "model": "linear_regression",
        "mode": "sync",
        "hp.optimizer": "momentum",
        "hp.learning_rate": 0.1,
        "hp.l2": 0.0,
        "hp.momentum": 0.9,
        "hp.batch_size": 0,
        "hp.solver": "auto",
        "hp.max_epochs": 300,
        "hp.tolerance": 0.0001,
        "rounds": 12,
        "stop_reason": "converged",
        "test.r2": 0.91,
        "test.rmse": 1.5,
        "duration_s": 65.0,
        "cost_usd": 0.0123,
    }
    # momentum differs between the runs: shown; tolerance is the same and not a key hyperparameter: left out
    assert comparison_fields(rows) == [
        "run_id",
        "status",
        "model",
        "mode",
        "hp.optimizer",
        "hp.learning_rate",
        "hp.l2",
        "hp.batch_size",
        "hp.solver",
        "hp.max_epochs",
        "hp.momentum",
        "rounds",
        "stop_reason",
        "test.r2",
        "test.rmse",
        "duration_s",
        "cost_usd",
    ]
    table = comparison_table(rows)
    assert table[0] == {"field": "status", A: "SUCCEEDED", B: "FAILED"}
    assert {"field": "test.r2", A: 0.91, B: None} in table
    assert {"field": "hp.momentum", A: 0.9, B: 0.5} in table


def _comparing(api: Api) -> None:
    api.routes[("GET", f"/training-runs/{A}")] = _run(A)
    api.routes[("GET", f"/training-runs/{B}")] = _run(B, "FAILED", optimizer="adam", learning_rate=0.05)
    api.routes[("GET", f"/training-runs/{A}/cost")] = {"actual": {"total": 0.0123}}
    api.routes[("GET", f"/training-runs/{B}/cost")] = httpx.Response(409, json={"message": "no usage"})


def test_sml_runs_compare_puts_runs_side_by_side_and_json_gives_a_row_per_run(api, capsys):
    _comparing(api)
    assert _sml("runs", "compare", A, B) == 0
    out = capsys.readouterr().out
    lines = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") == 4}
    assert "momentum" in lines["hp.optimizer"] and "adam" in lines["hp.optimizer"]
    assert "0.1" in lines["hp.learning_rate"] and "0.05" in lines["hp.learning_rate"]
    assert "1m 05s" in lines["duration"] and "0.012300" in lines["cost (USD)"]
    assert "0.91" in lines["test.r2"] and "converged" in lines["stop_reason"]
    assert _sml("runs", "compare", A, B, "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["run_id"], r["status"], r["cost_usd"], r["hp.optimizer"]) for r in rows] == [
        (A, "SUCCEEDED", 0.0123, "momentum"),
        (B, "FAILED", None, "adam"),
    ]


def test_compare_runs_is_a_dataframe_with_a_column_per_run(api):
    _comparing(api)
    frame = api.client().compare_runs([A, B])
    assert list(frame.columns) == [A, B] and frame.columns.name == "run_id"
    assert frame.loc["test.r2", A] == 0.91 and pd.isna(frame.loc["test.r2", B])
    assert frame.loc["hp.learning_rate"].tolist() == [0.1, 0.05]


def test_runs_compare_without_ids_and_two_ids_without_compare_are_refused(api, capsys):
    assert _sml("runs", "compare") == 1
    assert "runs compare needs run ids: sml runs compare RUN [RUN...]" in capsys.readouterr().err
    assert _sml("runs", A, B) == 1
    assert "to put several side by side: sml runs compare RUN RUN..." in capsys.readouterr().err
    assert api.seen == []


def test_sml_runs_lists_each_runs_model_optimizer_and_test_metric(api, capsys):
    listed = {
        "run_id": A,
        "status": "SUCCEEDED",
        "started_at": "2026-01-01T00:00:00+00:00",
        "hyperparameters": {"model": "mlp", "optimizer": "adam", "learning_rate": 0.01, "solver": "sgd"},
        "mode": "async",
        "metric": "accuracy",
        "test_metric": 0.9561,
        "stop_reason": "max_epochs",
    }
    api.routes[("GET", "/training-runs")] = {"runs": [listed]}
    assert sml(["--url", URL, "--api-key", "k", "runs"]) == 0
    out = capsys.readouterr().out
    for shown in (A, "mlp adam lr 0.01 async solver sgd", "accuracy 0.9561", "max_epochs", "2026-01-01 00:00:00"):
        assert shown in out


# -- tuning jobs ------------------------------------------------------------------------
JOB = "tune-0123456789ab"
STARTED = {
    "job_id": JOB,
    "status": "RUNNING",
    "task": "regression",
    "metric": "r2",
    "estimated_cost_usd": 0.0421,
    "max_trials": 8,
    "max_parallel_trials": 4,
    "rungs": [5, 15, 45],
    "search_space": {"model": ["linear_regression", "mlp_regression"]},
    "decisions": [{"column": "site_id", "action": "drop", "reason": "unique per row: an identifier"}],
}


def _entry(
    trial: int, model: str, lr: float, rung: int, status: str, metric: float | None, solver: str | None = None, **more
) -> dict:
    epochs = STARTED["rungs"][rung]
    hp = {
        "model": model,
        "optimizer": "adam",
        "learning_rate": lr,
        "l2": 0.001,
        **({"solver": solver} if solver else {}),
    }
    return {
        "trial": trial,
        "mode": "sync",
        "hyperparameters": hp,
        "rung": rung,
        "epochs": epochs,
        "validation_loss": None if metric is None else 1 - metric,
        "validation_metric": metric,
        "status": status,
        "stop_reason": {"stopped_early": "early_stopped", "completed": "converged"}.get(status),
        "run_id": f"run-{trial:012x}",
        "cost_usd": 0.001,
        **more,
    }


def _job(status: str = "SUCCEEDED") -> dict:
    board = [
        _entry(2, "mlp_regression", 0.01, 2, "completed", 0.93),
        _entry(0, "linear_regression", 0.1, 1, "stopped_early", 0.81, solver="newton"),
        _entry(1, "mlp_regression", 0.3, 0, "failed", None, stop_reason="diverged"),
    ]
    job = {
        **STARTED,
        "status": status,
        "request": {"dataset": "d", "target": "y", "model_name": "m"},
        "started_at": "2026-01-01T00:00:00+00:00",
        "ended_at": "2026-01-01T00:02:05+00:00" if status != "RUNNING" else None,
        "cost_usd": 0.0312,
        "early_stopped_share": 0.5,
        "worker_seconds": 120.0,
        "leaderboard": board,
        "best": None,
        "model": None,
    }
    if status == "SUCCEEDED":
        job["best"] = {k: board[0][k] for k in ("trial", "validation_loss", "validation_metric", "hyperparameters")}
        job["best"]["mode"] = "sync"
        job["model"] = {"model_name": "m", "version": 4, "promoted": True, "reason": "better than production"}
    return job


def test_tune_sends_only_the_fields_given_and_a_search_space_file(api, tmp_path):
    api.routes[("POST", "/tuning-jobs")] = httpx.Response(202, json=STARTED)
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"model": ["mlp_regression"], "learning_rate": {"low": 0.001, "high": 0.1}}))
    started = api.client().tune("d", "y", "m", max_trials=8, max_cost_usd=0.5, seed=7, search_space=space)
    assert started == STARTED
    assert api.sent("POST", "/tuning-jobs") == [
        {
            "dataset": "d",
            "target": "y",
            "model_name": "m",
            "max_trials": 8,
            "max_cost_usd": 0.5,
            "seed": 7,
            "search_space": {"model": ["mlp_regression"], "learning_rate": {"low": 0.001, "high": 0.1}},
        }
    ]


def test_sml_tune_maps_its_flags_and_prints_the_job_task_and_estimated_cost(api, capsys, tmp_path):
    api.routes[("POST", "/tuning-jobs")] = httpx.Response(202, json=STARTED)
    space = tmp_path / "space.json"
    space.write_text('{"mode": ["sync"]}')
    args = ["--dataset", "d", "--target", "y", "--model-name", "m", "--max-trials", "8", "--max-parallel", "4"]
    args += ["--max-cost", "0.5", "--seed", "3", "--space", str(space), "--min-epochs", "5", "--max-epochs", "45"]
    args += ["--reduction-factor", "3", "--shards", "2", "--validation-fraction", "0.25"]
    assert _sml("tune", *args) == 0
    assert api.sent("POST", "/tuning-jobs") == [
        {
            "dataset": "d",
            "target": "y",
            "model_name": "m",
            "max_trials": 8,
            "max_parallel_trials": 4,
            "max_cost_usd": 0.5,
            "seed": 3,
            "search_space": {"mode": ["sync"]},
            "min_epochs": 5,
            "max_epochs": 45,
            "reduction_factor": 3,
            "n_shards": 2,
            "validation_fraction": 0.25,
        }
    ]
    captured = capsys.readouterr()
    assert (
        f"started tuning job {JOB}: task regression, validation r2, 8 trials (4 at a time), rungs [5, 15, 45] epochs, "
        "estimated cost $0.0421" in captured.err
    )
    assert "column site_id: drop (unique per row: an identifier)" in captured.err
    assert f"follow it: sml tuning watch {JOB}" in captured.out


def test_a_tuning_job_over_budget_is_one_line_naming_the_estimate(api, capsys):
    message = "max_cost_usd 0.01 is below the job's estimated cost of $0.0421"
    api.routes[("POST", "/tuning-jobs")] = httpx.Response(400, json={"message": message})
    assert _sml("tune", "--dataset", "d", "--target", "y", "--model-name", "m", "--max-cost", "0.01") == 1
    assert capsys.readouterr().err.strip() == f"error: HTTP 400: {message}"
    assert [r.method for r in api.seen] == ["POST"]  # refused: not retried, nothing followed


def test_wait_tuning_follows_the_job_until_it_ends_and_a_failed_job_raises(api):
    api.routes[("GET", f"/tuning-jobs/{JOB}")] = [_job("RUNNING"), _job("RUNNING"), _job("SUCCEEDED")]
    seen: list[str] = []
    job = api.client().wait_tuning(JOB, on_update=lambda doc: seen.append(doc["status"]))
    assert seen == ["RUNNING", "RUNNING", "SUCCEEDED"] and job["model"]["version"] == 4
    api.routes[("GET", f"/tuning-jobs/{JOB}")] = [_job("FAILED")]
    with pytest.raises(RunFailed, match=f"^tuning job {JOB} FAILED in 2m 05s") as failed:
        api.client().wait_tuning(JOB)
    assert failed.value.doc["status"] == "FAILED"


def test_the_trial_table_has_a_row_per_trial_best_first_with_its_columns():
    console = Console(record=True, width=220)
    console.print(trials_table(_job()))
    text = console.export_text()
    header = next(line for line in text.splitlines() if "trial" in line and "optimizer" in line)
    assert [c.strip() for c in header.split("┃")[1:-1]] == [
        "trial",
        "model",
        "optimizer",
        "solver",
        "lr",
        "l2",
        "mode",
        "rung",
        "epochs",
        "validation r2",
        "status",
        "stop reason",
    ]
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in text.splitlines() if line.count("│") == 13]
    early = ["stopped early", "early stopped"]
    assert rows == [
        ["2", "mlp regression", "adam", "", "0.01", "0.001", "sync", "2", "45", "0.93", "completed", "converged"],
        ["0", "linear regression", "adam", "newton", "0.1", "0.001", "sync", "1", "15", "0.81", *early],
        ["1", "mlp regression", "adam", "", "0.3", "0.001", "sync", "0", "5", "", "failed", "diverged"],
    ]
    assert "3 trials: 1 completed, 1 failed, 1 stopped early" in text


def test_on_a_narrow_terminal_the_trials_setup_shares_one_column():
    console = Console(record=True, width=100)
    console.print(trials_table(_job(), width=100))
    text = console.export_text()
    header = next(line for line in text.splitlines() if "trial" in line and "setup" in line)
    assert [c.strip() for c in header.split("┃")[1:-1]] == [
        "trial",
        "setup",
        "rung",
        "epochs",
        "r2",  # "validation" on the line above
        "status",
        "reason",  # "stop" on the line above
    ]
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in text.splitlines() if line.count("│") == 8]
    assert rows[0] == ["2", "mlp_regression adam lr 0.01 l2", "2", "45", "0.93", "completed", "converged"]
    assert rows[1][1] == "0.001 sync"  # the setup wraps between words, the other columns stay whole


def _words_whole(text: str, words: list[str]) -> None:
    for word in words:
        assert word in text, word
    assert max(len(line) for line in text.splitlines()) <= 80


def test_at_80_columns_no_cell_of_the_trial_table_breaks_a_word():
    job = _job()
    job["leaderboard"][1]["stop_reason"] = "successive halving: not in the top 1/3 at rung 1 (15 epochs)"
    console = Console(record=True, width=80)
    console.print(trials_table(job, width=80))
    text = console.export_text()
    _words_whole(text, ["linear_regression", "mlp_regression", "successive", "halving:", "completed", "diverged"])
    header = next(line for line in text.splitlines() if "trial" in line and "setup" in line)
    assert "epochs" not in header  # the first column left out where the others' words would not fit whole
    assert [c.strip() for c in header.split("┃")[1:-1]] == ["trial", "setup", "rung", "r2", "status", "stop reason"]


def test_at_80_columns_sml_runs_keeps_every_word_whole(api, capsys, monkeypatch):
    monkeypatch.setattr("mlclient.cli.console", Console(width=80))
    listed = {
        "run_id": A,
        "status": "SUCCEEDED",
        "started_at": "2026-01-01T00:00:00+00:00",
        "hyperparameters": {"model": "linear_regression", "optimizer": "momentum", "learning_rate": 0.1},
        "mode": "sync",
        "metric": "r2",
        "test_metric": 0.9312,
        "stop_reason": "converged",
    }
    api.routes[("GET", "/training-runs")] = {"runs": [listed]}
    assert _sml("runs") == 0
    out = capsys.readouterr().out
    _words_whole(out, [A, "SUCCEEDED", "linear_regression", "momentum", "0.9312", "converged"])
    assert "started_at" not in out  # left out at 80 columns; a wide terminal shows it (see above)


def test_a_failed_job_names_its_error():
    failed = {**_job("FAILED"), "error": {"type": "ValidationError", "message": "every trial failed"}}
    api = Api()
    api.routes[("GET", f"/tuning-jobs/{JOB}")] = failed
    with pytest.raises(RunFailed, match=r"FAILED in 2m 05s: ValidationError: every trial failed$"):
        api.client().wait_tuning(JOB)


def test_the_outcome_names_the_best_trial_and_the_model_it_registered():
    assert tuning_outcome(_job()) == (
        f"tuning job {JOB} SUCCEEDED in 2m 05s: best trial 2 (mlp_regression, adam, learning rate 0.01, sync), "
        "validation r2 0.93; model m version 4 promoted to production (better than production)"
    )
    job = _job()
    job["best"]["hyperparameters"] = {"model": "linear_regression", "solver": "exact", "l2": 0.0}
    job["model"] = {"model_name": "m", "version": 5, "promoted": False, "reason": "not promoted: no better than v4"}
    assert tuning_outcome(job).split(": ", 1)[1] == (
        "best trial 2 (linear_regression, solver exact, sync), validation r2 0.93; "
        "model m version 5: not promoted: no better than v4"
    )
    # on a small data set the job chose by cross-validation: its out-of-fold metric too
    job["best"]["cross_validation"] = [{"trial": 7, "cv_metric": 0.9}, {"trial": 2, "cv_metric": 0.87654}]
    assert (
        tuning_outcome(job)
        .split(": ", 1)[1]
        .startswith(
            "best trial 2 (linear_regression, solver exact, sync), validation r2 0.93, cross-validated 0.8765 "
            "(chosen among 2 finalists); model m version 5"
        )
    )


def test_sml_tune_watch_shows_the_trials_and_ends_with_the_best_and_the_model(api, capsys):
    api.routes[("POST", "/tuning-jobs")] = httpx.Response(202, json=STARTED)
    api.routes[("GET", f"/tuning-jobs/{JOB}")] = [_job("RUNNING"), _job("SUCCEEDED")]
    assert _sml("tune", "--dataset", "d", "--target", "y", "--model-name", "m", "--watch", "--poll", "0") == 0
    err = capsys.readouterr().err
    assert "validation r2" in err and "stopped early" in err  # the live table, on stderr
    assert err.strip().endswith("model m version 4 promoted to production (better than production)")
    assert len([r for r in api.seen if r.url.path == f"/tuning-jobs/{JOB}"]) == 2


def test_sml_tuning_show_is_the_leaderboard_or_the_document_and_tunings_lists_every_page(api, capsys):
    api.routes[("GET", f"/tuning-jobs/{JOB}")] = _job()
    assert _sml("tuning", "show", JOB) == 0
    out = capsys.readouterr().out
    assert "mlp regression" in out and "best trial 2" in out
    assert _sml("tuning", "show", JOB, "--json") == 0
    assert json.loads(capsys.readouterr().out) == _job()
    other = {"job_id": "tune-000000000001", "status": "RUNNING", "task": "binary", "metric": "accuracy"}
    first = {"job_id": JOB, "status": "SUCCEEDED", "task": "regression", "metric": "r2", "model_name": "m"}
    first |= {"best_validation_metric": 0.93, "started_at": "2026-01-01T00:00:00+00:00"}
    api.routes[("GET", "/tuning-jobs")] = lambda r: (
        {"jobs": [other], "next": None} if r.url.params.get("next") == "p2" else {"jobs": [first], "next": "p2"}
    )
    assert _sml("tunings") == 0
    out = capsys.readouterr().out
    assert JOB in out and "tune-000000000001" in out and "0.93" in out and "2026-01-01 00:00:00" in out
    assert _sml("tunings", "--json") == 0
    assert json.loads(capsys.readouterr().out) == [first, other]


def test_the_leaderboard_is_a_dataframe_by_trial_best_first(api):
    api.routes[("GET", f"/tuning-jobs/{JOB}")] = _job()
    frame = api.client().leaderboard(JOB)
    assert frame.index.tolist() == [2, 0, 1]
    assert frame.loc[2, "model"] == "mlp_regression" and frame.loc[0, "status"] == "stopped_early"
    assert frame.loc[2, "validation metric"] == 0.93 and frame.loc[1, "stop reason"] == "diverged"


def test_stop_tuning_posts_to_the_jobs_stop_route(api, capsys):
    api.routes[("POST", f"/tuning-jobs/{JOB}/stop")] = httpx.Response(202, json={"job_id": JOB, "status": "ABORTED"})
    assert _sml("tuning", "stop", JOB) == 0
    assert f"tuning job {JOB} ABORTED" in capsys.readouterr().out
    api.routes[("POST", f"/tuning-jobs/{JOB}/stop")] = httpx.Response(409, json={"message": "not RUNNING"})
    with pytest.raises(ApiError, match="not RUNNING") as refused:
        api.client().stop_tuning(JOB)
    assert refused.value.status == 409


# -- the search in the report -----------------------------------------------------------
def test_rung_curves_come_from_the_history_else_the_trials_run_else_its_last_point():
    report = pytest.importorskip("mlclient.report")
    job = _job()
    job["leaderboard"][0]["history"] = [
        {"rung": 0, "epochs": 5, "validation_loss": 0.3},
        {"rung": 1, "epochs": 15, "validation_loss": 0.1},
        {"rung": 2, "epochs": 45, "validation_loss": 0.07},
    ]
    curve = [{"round": 1, "loss": 1.0, "validation_loss": 0.4}, {"round": 2, "loss": 0.5, "validation_loss": 0.25}]
    assert report.rung_curves(job, {0: curve}) == {
        2: [(5.0, 0.3), (15.0, 0.1), (45.0, 0.07)],
        0: [(1.0, 0.4), (2.0, 0.25)],
    }
    assert report.rung_curves(job)[0] == [(15.0, pytest.approx(0.19))]  # no history, no curve: its last rung
    assert 1 not in report.rung_curves(job)  # a failed trial without a loss has no curve
    assert report.search_points(job) == {"mlp_regression": [(0.01, 0.93, 2)], "linear_regression": [(0.1, 0.81, 0)]}
    assert report.solver_points(job) == {}
    job["leaderboard"][1]["hyperparameters"] = {"model": "linear_regression", "solver": "exact", "l2": 0.0}
    assert report.search_points(job) == {"mlp_regression": [(0.01, 0.93, 2)]}
    assert report.solver_points(job) == {"linear_regression": [("exact", 0.81, 0)]}


def test_the_tuning_report_writes_the_search_and_rung_figures_and_the_page(api, tmp_path):
    pytest.importorskip("mlclient.report")
    api.routes[("GET", f"/tuning-jobs/{JOB}")] = _job()
    curve = {"curve": [{"round": r, "loss": 1.0 / r, "validation_loss": 1.2 / r} for r in range(1, 6)]}
    for trial in (0, 1, 2):
        api.routes[("GET", f"/training-runs/run-{trial:012x}")] = curve
    paths = api.client().tuning_report(JOB, tmp_path)
    assert [p.name for p in paths] == ["search.png", "rungs.png", "tuning.html"]
    assert all(p.stat().st_size > 0 for p in paths)
    page = (tmp_path / "tuning.html").read_text()
    assert "best trial 2 (mlp_regression" in page and "validation r2" in page and "50% of the trials stopped" in page
    assert [r.url.params.get("curve") for r in api.seen if r.url.path.startswith("/training-runs/")] == ["true"] * 3
    assert _sml("report", "--tuning", JOB, "--out", str(tmp_path / "cli")) == 0
    assert sorted(p.name for p in Path(tmp_path / "cli").iterdir()) == ["rungs.png", "search.png", "tuning.html"]


def test_trials_without_a_learning_rate_are_drawn_by_solver_beside_the_others(tmp_path):
    report = pytest.importorskip("mlclient.report")
    job = _job()
    job["leaderboard"][1]["hyperparameters"] = {"model": "linear_regression", "solver": "exact", "l2": 0.0}
    paths = report.build_tuning_report(job, tmp_path)
    assert [p.name for p in paths] == ["search.png", "rungs.png", "tuning.html"]
    only_solvers = _job()
    for entry in only_solvers["leaderboard"]:
        entry["hyperparameters"] = {"model": entry["hyperparameters"]["model"], "solver": "lbfgs"}
    assert report.search_points(only_solvers) == {}
    assert next(p.name for p in report.build_tuning_report(only_solvers, tmp_path / "solvers")) == "search.png"


def test_in_a_pipe_the_live_trial_table_ends_its_line_before_what_follows(api):
    """Piped (`make demo-tune | tee`, CI logs), rich prints the live table once at the end and leaves the cursor
    after its caption: the outcome line used to be glued to "3 trials: 1 completed, ..."."""
    out = io.StringIO()
    console = Console(file=out, width=120)
    assert not console.is_terminal
    api.routes[("GET", f"/tuning-jobs/{JOB}")] = [_job("RUNNING"), _job("SUCCEEDED")]
    client = Client(URL, "k", transport=httpx.MockTransport(api), sleep=lambda _: None, console=console)
    client.wait_tuning(JOB)
    console.print("next")
    lines = out.getvalue().splitlines()
    assert lines[-1] == "next"
    assert lines[-2].strip() == "3 trials: 1 completed, 1 failed, 1 stopped early"


def test_in_a_pipe_each_change_of_a_trial_is_one_plain_line_then_the_table_once(api):
    """Piped, a live table shows nothing until the job ends (minutes of silence in `make demo-tune | tee`): a line
    per change of the job's status or of a trial instead, a trial not started yet is not told."""
    first = _job("RUNNING")
    first["leaderboard"] = [
        _entry(2, "mlp_regression", 0.01, 0, "running", None),
        _entry(0, "linear_regression", 0.1, 0, "pending", None, run_id=None),
    ]
    api.routes[("GET", f"/tuning-jobs/{JOB}")] = [first, first, _job("RUNNING"), _job("SUCCEEDED")]
    out = io.StringIO()
    console = Console(file=out, width=80)
    client = Client(URL, "k", transport=httpx.MockTransport(api), sleep=lambda _: None, console=console)
    client.wait_tuning(JOB)
    lines = out.getvalue().splitlines()
    assert lines[:5] == [
        f"tuning job {JOB} RUNNING",
        "trial 2: mlp_regression, rung 0, running",
        "trial 2: mlp_regression, rung 2, completed, validation r2 0.93 (converged)",
        "trial 0: linear_regression, rung 1, stopped early, validation r2 0.81 (early_stopped)",
        "trial 1: mlp_regression, rung 0, failed (diverged)",
    ]
    assert lines[5] == f"tuning job {JOB} SUCCEEDED"
    assert lines[6].strip() == f"tuning job {JOB} SUCCEEDED (regression, validation r2)"  # then the table once
    assert sum("┃ trial ┃" in line for line in lines) == 1
    assert lines[-1].strip() == "3 trials: 1 completed, 1 failed, 1 stopped early"


def test_the_defaults_sml_tune_names_in_its_help_are_the_apis():
    """`sml tune --help` says "(default N)" for the fields it leaves to the API: N is TuningRequest's default
    (--min-epochs said 5 while the API's first rung is 15 epochs)."""
    from mlclient.cli import build_parser
    from mlcore.steps.schemas import TuningRequest

    fields = {
        "--max-trials": "max_trials",
        "--max-parallel": "max_parallel_trials",
        "--seed": "seed",
        "--min-epochs": "min_epochs",
        "--max-epochs": "max_epochs",
        "--reduction-factor": "reduction_factor",
        "--shards": "n_shards",
        "--validation-fraction": "validation_fraction",
    }
    tune = build_parser()._subparsers._group_actions[0].choices["tune"]
    helped = {a.option_strings[0]: a.help for a in tune._actions if a.option_strings and a.help}
    for flag, field in fields.items():
        said = re.search(r"\(default ([\d.]+)\)", helped[flag]).group(1)
        assert float(said) == TuningRequest.model_fields[field].default, flag
