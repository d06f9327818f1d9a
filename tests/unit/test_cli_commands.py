"""The `sml` commands and the SDK calls under them against a scripted API: tables for people and --json for machines,
paging through runs, training options, batch naming and downloads, how a finished run is told, report contents."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from mlclient import Client, SmlError
from mlclient.cli import main as sml
from mlclient.sdk import format_duration, outcome_text, reference_warnings

URL = "https://api.example.com"
Handler = Callable[[httpx.Request], httpx.Response]


def _route(answers: dict[tuple[str, str], object], seen: list[httpx.Request]) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers[(request.method, request.url.path)]
        if callable(answer):
            answer = answer(request)
        return answer if isinstance(answer, httpx.Response) else httpx.Response(200, json=answer)

    return handle


@pytest.fixture
def api(monkeypatch):
    """Every httpx.Client the CLI makes answers from ``answers``; ``seen`` holds the requests."""
    answers: dict[tuple[str, str], object] = {}
    seen: list[httpx.Request] = []
    original = httpx.Client

    def make(*args, **kwargs) -> httpx.Client:
        return original(*args, **{**kwargs, "transport": httpx.MockTransport(_route(answers, seen))})

    monkeypatch.setattr(httpx, "Client", make)
    return answers, seen


def _sml(*args: str) -> int:
    return sml(["--url", URL, "--api-key", "k", *args])


RUNS = [
    {"run_id": f"run-{i:012x}", "status": "SUCCEEDED", "started_at": f"2026-01-01T00:00:{i:02d}.123456+00:00"}
    for i in range(5)
]


def test_runs_pages_through_the_api_with_the_next_token(api, capsys, monkeypatch):
    from rich.console import Console

    monkeypatch.setattr("mlclient.cli.console", Console(width=200))  # wide enough for every column (80 drops some)
    answers, seen = api

    def page(request: httpx.Request) -> dict:
        token = request.url.params.get("next")
        start = int(token) if token else 0
        size = int(request.url.params.get("limit", 50))
        body: dict = {"runs": RUNS[start : start + 2]}
        if start + 2 < len(RUNS):
            body["next"] = str(start + 2)
        assert size in (2, 100, 50)
        return body

    answers[("GET", "/training-runs")] = page
    client = Client(URL, "k", progress=False)
    assert [r["run_id"] for r in client.runs(None)] == [r["run_id"] for r in RUNS]
    assert [r.url.params.get("next") for r in seen] == [None, "2", "4"]
    assert _sml("runs", "--all") == 0
    out = capsys.readouterr().out
    assert all(r["run_id"] in out for r in RUNS) and "2026-01-01 00:00:04" in out and ".123456" not in out
    assert _sml("runs", "--all", "--json") == 0
    assert [r["run_id"] for r in json.loads(capsys.readouterr().out)] == [r["run_id"] for r in RUNS]


def test_models_list_and_show_are_tables_unless_json(api, capsys):
    answers, _ = api
    answers[("GET", "/models")] = [{"name": "houses", "latest": 3, "production": 2}]
    answers[("GET", "/models/houses")] = {
        "name": "houses",
        "versions": [1, 2, 3],
        "aliases": {"production": {"version": 2}, "latest": {"version": 3}},
    }
    assert _sml("models", "list") == 0
    out = capsys.readouterr().out
    assert "┃ name" in out and "houses" in out and not out.lstrip().startswith("[")
    assert _sml("models", "list", "--json") == 0
    assert json.loads(capsys.readouterr().out) == [{"name": "houses", "latest": 3, "production": 2}]
    assert _sml("models", "show", "houses") == 0
    rows = [line.split("│") for line in capsys.readouterr().out.splitlines() if line.startswith("│")]
    assert [[c.strip() for c in r[1:3]] for r in rows] == [["1", ""], ["2", "production"], ["3", "latest"]]


def test_train_sends_the_spec_mode_and_test_fraction_and_takes_the_target_from_the_spec(api, tmp_path, capsys):
    answers, seen = api
    answers[("POST", "/training-runs")] = httpx.Response(
        202, json={"run_id": "run-1", "status": "RUNNING", "dataset": "ins", "version": "v1"}
    )
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"target": "charges", "columns": {"email": {"drop": True}}}))
    args = ["train", "--dataset", "ins", "--model-name", "m", "--spec", str(spec), "--mode", "async"]
    assert _sml(*args, "--test-fraction", "0.25") == 0
    sent = json.loads(seen[-1].content)
    assert (sent["target"], sent["mode"], sent["test_fraction"]) == ("charges", "async", 0.25)
    assert sent["preprocessing"] == {"target": "charges", "columns": {"email": {"drop": True}}}
    assert "follow it: sml watch run-1" in capsys.readouterr().out
    assert _sml("train", "--dataset", "ins", "--model-name", "m") == 1
    assert "train needs --target, or a --spec that names its target" in capsys.readouterr().err


def test_stop_and_resume(api, capsys):
    answers, seen = api
    answers[("POST", "/training-runs/run-1/stop")] = httpx.Response(202, json={"run_id": "run-1", "status": "ABORTED"})
    answers[("POST", "/training-runs/run-1/resume")] = httpx.Response(
        202, json={"run_id": "run-1", "status": "RUNNING", "execution": "e", "resumed_from_round": 7}
    )
    assert _sml("stop", "run-1") == 0
    assert "run run-1 stopped; continue it with: sml resume run-1" in capsys.readouterr().out
    assert _sml("resume", "run-1") == 0
    assert "run run-1 resumed from round 7" in capsys.readouterr().err
    assert [(r.method, r.url.path) for r in seen] == [
        ("POST", "/training-runs/run-1/stop"),
        ("POST", "/training-runs/run-1/resume"),
    ]


def test_datasets_lists_and_shows(api, capsys):
    answers, _ = api
    listed = [{"dataset": "houses", "version": "abc", "format": "csv", "rows": 300, "n_columns": 7}]
    answers[("GET", "/datasets")] = {"datasets": listed}
    answers[("GET", "/datasets/houses")] = {
        **listed[0],
        "status": "ready",
        "columns": [{"name": "a", "kind": "numeric"}],
    }
    assert _sml("datasets") == 0
    assert "houses" in capsys.readouterr().out
    assert _sml("datasets", "--json") == 0
    assert json.loads(capsys.readouterr().out) == listed
    assert _sml("datasets", "houses") == 0
    out = capsys.readouterr().out
    assert "data set houses" in out and "numeric" in out


def test_batch_start_with_a_file_names_the_data_set_after_it_and_says_so(api, tmp_path, capsys):
    answers, seen = api
    rows = tmp_path / "rows.csv"
    rows.write_text("house,a\nh,1\n")
    answers[("POST", "/datasets/rows")] = {"dataset": "rows", "version": "v9", "key": "raw/rows/v9/data.csv"}
    answers[("POST", "/datasets/mine")] = {"dataset": "mine", "version": "v1", "key": "raw/mine/v1/data.csv"}
    answers[("POST", "/batch-jobs")] = httpx.Response(202, json={"job_id": "batch-0", "status": "RUNNING"})
    assert _sml("batch", "start", "m", "--file", str(rows), "--id-column", "house") == 0
    assert f"uploaded {rows} as data set rows version v9" in capsys.readouterr().err
    assert json.loads(seen[-1].content) == {"model": "m", "input_key": "raw/rows/v9/data.csv", "id_columns": ["house"]}
    assert _sml("batch", "start", "m", "--file", str(rows), "--dataset", "mine") == 0
    assert f"uploaded {rows} as data set mine version v1" in capsys.readouterr().err
    assert not any(r.url.path.startswith("/datasets/batch-") for r in seen)


def test_batch_download_fetches_the_presigned_url_without_the_api_key(api, tmp_path, capsys):
    answers, seen = api
    answers[("GET", "/batch-jobs/batch-0/output")] = {
        "predictions_url": "https://bucket.example/p?sig=1",
        "errors_url": "https://bucket.example/e?sig=1",
        "summary": {"predicted": 2, "failures": 0},
    }
    answers[("GET", "/p")] = httpx.Response(200, content=b'{"row": 0}\n{"row": 1}\n')
    out = tmp_path / "p.jsonl"
    assert _sml("batch", "download", "batch-0", "--out", str(out)) == 0
    assert out.read_bytes() == b'{"row": 0}\n{"row": 1}\n'
    assert "x-api-key" in seen[0].headers and "x-api-key" not in seen[1].headers
    assert f"wrote 2 predictions of batch job batch-0 to {out}" in capsys.readouterr().err


def test_predict_keeps_the_inputs_columns_or_the_named_ones(api, tmp_path, capsys):
    answers, seen = api
    answers[("POST", "/models/m/predict")] = {
        "model": "m",
        "version": 2,
        "predictions": ["yes", "no"],
        "classes": ["no", "yes"],
        "probabilities": [[0.2, 0.8], [0.9, 0.1]],
        "warnings": ["ignored column(s) that are not features of the model: id"],
    }
    rows = tmp_path / "rows.csv"
    rows.write_text("id,x\n1,0.5\n2,-1\n")
    assert _sml("predict", "m", str(rows)) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ["id,x,prediction,p(no),p(yes)", "1.0,0.5,yes,0.2,0.8", "2.0,-1.0,no,0.9,0.1"]
    assert "warning: ignored column(s) that are not features of the model: id" in captured.err
    assert _sml("predict", "m", str(rows), "--keep", "id", "--strict") == 0
    assert capsys.readouterr().out.splitlines()[0] == "id,prediction,p(no),p(yes)"
    assert seen[-1].url.params.get("strict") == "true"
    assert _sml("predict", "m", str(rows), "--keep", "nope") == 1
    assert "--keep names column(s) the input does not have: nope" in capsys.readouterr().err


def test_a_finished_run_is_told_with_its_true_duration_and_stop_reason():
    run = {
        "status": "SUCCEEDED",
        "started_at": "2026-01-01T00:00:00+00:00",
        "stopped_at": "2026-01-01T00:02:05.400000+00:00",
        "rounds_completed": 152,
        "stop_reason": "converged",
    }
    assert outcome_text(run) == "SUCCEEDED in 2m 05s: converged after 152 rounds"
    assert outcome_text({**run, "stopped_at": "2026-01-01T00:00:00.400000+00:00"}).startswith("SUCCEEDED in 0.4s")
    assert format_duration(3725) == "1h 02m"


def test_the_progress_bar_of_a_run_that_converged_early_ends_full_with_how_it_ended():
    states = [
        {"status": "RUNNING", "rounds_completed": 10},
        {
            "status": "SUCCEEDED",
            "rounds_completed": 152,
            "stop_reason": "converged",
            "started_at": "2026-01-01T00:00:00+00:00",
            "stopped_at": "2026-01-01T00:00:12.300000+00:00",
            "model": {"model_name": "m", "version": 1},
        },
    ]

    def answer(request: httpx.Request) -> httpx.Response:
        doc = states.pop(0) if len(states) > 1 else states[0]
        return httpx.Response(200, json={"run_id": "run-1", "request": {"hyperparameters": {"max_epochs": 300}}, **doc})

    from rich.console import Console

    console = Console(record=True, width=160, force_terminal=True)
    client = Client(URL, "k", transport=httpx.MockTransport(answer), sleep=lambda _: None, console=console)
    client.wait("run-1", progress=True)
    text = console.export_text()
    assert "152/152 rounds" in text and "SUCCEEDED in 12.3s: converged after 152 rounds" in text
    assert "152/300" not in text.splitlines()[-1]
    # in a log or a pipe (no terminal) a bar shows nothing until the run ends: a plain line per change instead
    states[:] = [{"status": "RUNNING", "rounds_completed": 10, "last_round": {"loss": 0.5}}, dict(states[0])]
    states.insert(1, dict(states[0]))  # read twice, told once
    piped = Console(record=True, width=160, force_terminal=False)
    client = Client(URL, "k", transport=httpx.MockTransport(answer), sleep=lambda _: None, console=piped)
    client.wait("run-1", progress=True)
    assert piped.export_text().splitlines() == [
        "run run-1 RUNNING: round 10/300, loss 0.5",
        "run run-1 SUCCEEDED after 152 rounds (converged)",
    ]


def test_reference_warnings_name_the_metrics_clearly_worse_than_scikit_learns():
    assert reference_warnings({"r2": 0.70, "rmse": 30.0}, {"r2": 0.91, "rmse": 28.0}) == [
        "r2 0.7 is clearly worse than the scikit-learn reference's 0.91"
    ]
    assert reference_warnings({"rmse": 40.0, "accuracy": 0.9}, {"rmse": 30.0, "accuracy": 0.92}) == [
        "rmse 40 is clearly worse than the scikit-learn reference's 30"
    ]
    assert reference_warnings({"r2": 0.9}, None) == []


def test_the_report_has_importance_stop_reason_warning_timing_and_a_cost_total(tmp_path):
    report = pytest.importorskip("mlclient.report")
    curve = [
        {"round": 0, "loss": 2.0, "seconds": 0.1, "finished_at": 1767225601.0},
        {"round": 1, "loss": 1.0, "seconds": 0.2, "finished_at": 1767225603.0},
    ]
    run = {
        "run_id": "run-1",
        "status": "SUCCEEDED",
        "started_at": "2026-01-01T00:00:00+00:00",
        "curve": curve,
        "stop_reason": "max_epochs",
        "model": {"model_name": "m", "version": 1},
    }
    artifact = {
        "model": {"type": "linear_regression", "coefficients": [[0.5], [-3.0]], "intercept": [1.0]},
        "feature_names": ["a", "b"],
        "metrics": {"test": {"r2": 0.5}, "reference": {"r2": 0.9}},
    }
    assert report.round_times(curve, run["started_at"]) == [(0, 0.1, pytest.approx(0.9)), (1, 0.2, pytest.approx(1.8))]
    assert report.feature_importance(artifact) == ("standardized coefficient", [("b", -3.0), ("a", 0.5)])
    cost = {"total": 0.5, "breakdown": {"Lambda X": 0.2, "S3 requests": 0.3}, "basis": "b"}
    paths = report.build_report(run, artifact, tmp_path, cost)
    page = (tmp_path / "report.html").read_text()
    assert {p.name for p in paths} >= {"importance.png", "timing.png", "report.html"}
    assert "stopped by max_epochs" in page and "<th>total</th><th>$0.500000</th>" in page
    assert "Warning: r2 0.5 is clearly worse than the scikit-learn reference&#x27;s 0.9" in page
    assert "<td>b</td><td>-3</td>" in page and "2.000 s wall time" not in page


def test_a_spec_that_is_not_an_object_is_refused(tmp_path):
    bad = tmp_path / "spec.json"
    bad.write_text("[1]")
    with pytest.raises(SmlError, match="must hold a JSON object"):
        Client(URL, "k", progress=False).train("d", "y", "m", spec=Path(bad), wait=False)
