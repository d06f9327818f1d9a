"""The local API server on a free port, driven over HTTP by the `sml` command-line client."""

from __future__ import annotations

import json
import socket
import struct
import urllib.error
import urllib.request

import pytest

from mlclient import Client
from mlclient.cli import main as sml
from mlclient.sdk import duration, format_duration
from mllocal.server import BODY_TIMEOUT_SECONDS, LocalApi
from mllocal.template import ROOT

SAMPLE = ROOT / "data" / "housing.csv"


@pytest.fixture(scope="module")
def server():
    with LocalApi(port=0, access_log=False) as api:
        yield api


def _sml(server, *args) -> int:
    return sml(["--url", server.url, "--api-key", server.api_key or "unused", *args])


def server_run(server, run_id: str) -> dict:
    request = urllib.request.Request(f"{server.url}/training-runs/{run_id}", headers={"x-api-key": server.api_key})
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", path
    return struct.unpack(">II", data[16:24])


def test_upload_train_watch_predict_report(server, tmp_path, capsys):
    small = tmp_path / "houses.csv"
    small.write_text("".join(SAMPLE.read_text().splitlines(keepends=True)[:301]))
    assert _sml(server, "upload", str(small), "--dataset", "houses", "--json") == 0
    uploaded = json.loads(capsys.readouterr().out)
    assert uploaded["rows"] == 300
    assert _sml(server, "upload", str(small), "--dataset", "houses") == 0  # people get a line and a table
    out = capsys.readouterr().out
    first = (
        f"data set houses version {uploaded['version']}: 300 rows x 7 columns (already registered: the same content)"
    )
    assert out.splitlines()[0] == first and "neighborhood" in out and len(out.splitlines()) < 30

    assert (
        _sml(
            server,
            "train",
            "--dataset",
            "houses",
            "--target",
            "price_k",
            "--model-name",
            "houses",
            "--shards",
            "2",
            "--set",
            "optimizer=sgd",
            "--set",
            "learning_rate=0.5",
            "--set",
            "max_epochs=40",
            "--watch",
            "--json",
        )
        == 0
    )
    captured = capsys.readouterr()
    model = json.loads(captured.out)
    assert model["model_name"] == "houses" and model["version"] == 1
    run_id = captured.err.split("started run ")[1].split()[0]
    ended = next(line for line in captured.err.splitlines() if line.startswith(f"run {run_id} SUCCEEDED in "))
    run = server_run(server, run_id)
    assert run["stop_reason"]  # the stop reason is shown, with the rounds
    assert f": {run['stop_reason'].replace('_', ' ')} after {run['rounds_completed']} rounds: model houses" in ended
    assert duration(run) > 0  # from the run's start to its end
    assert _sml(server, "watch", run_id) == 0  # a finished run: its true duration, not "in 0s"
    assert f"run {run_id} SUCCEEDED in {format_duration(duration(run))}:" in capsys.readouterr().err

    instances = tmp_path / "rows.csv"
    instances.write_text(
        "area_m2,bedrooms,age_years,distance_km,lot_m2,neighborhood\n"
        "92.2,2,62.7,3.11,156,harbor\n128.4,3,5.4,2.59,,riverside\n"
    )
    out = tmp_path / "pred.csv"
    assert _sml(server, "predict", "houses", str(instances), "--out", str(out)) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "area_m2,bedrooms,age_years,distance_km,lot_m2,neighborhood,prediction" and len(lines) == 3
    assert lines[1].startswith("92.2,2.0,62.7,3.11,156.0,harbor,")
    assert float(lines[1].split(",")[-1]) < float(lines[2].split(",")[-1])  # the bigger, newer house costs more

    with_ids = tmp_path / "with_ids.csv"
    with_ids.write_text(
        "house,area_m2,bedrooms,age_years,distance_km,lot_m2,neighborhood,price_k\n"
        "h-1,92.2,2,62.7,3.11,156,harbor,250\nh-2,128.4,3,5.4,2.59,,riverside,400\n"
    )
    assert _sml(server, "predict", "houses", str(with_ids), "--keep", "house", "--out", str(out)) == 0
    assert "warning: ignored column(s) that are not features of the model: house, price_k" in capsys.readouterr().err
    lines = out.read_text().splitlines()
    assert lines[0] == "house,prediction" and [line.split(",")[0] for line in lines[1:]] == ["h-1", "h-2"]
    assert _sml(server, "predict", "houses", str(with_ids), "--strict") == 1
    assert "HTTP 400: instances[0] has unknown feature(s): house, price_k" in capsys.readouterr().err

    start = ["batch", "start", "houses", "--file", str(with_ids), "--id-column", "house", "--watch", "--json"]
    assert _sml(server, *start) == 0
    captured = capsys.readouterr()
    job = json.loads(captured.out)
    assert job["status"] == "SUCCEEDED" and job["summary"]["rows"] == 2 and job["summary"]["failures"] == 0
    assert "uploaded " + str(with_ids) + " as data set with_ids version " in captured.err
    assert _sml(server, "datasets", "--json") == 0
    assert sorted(d["dataset"] for d in json.loads(capsys.readouterr().out)) == ["houses", "with_ids"]
    assert _sml(server, "datasets") == 0
    assert "with_ids" in capsys.readouterr().out
    downloaded = tmp_path / "batch.jsonl"
    assert _sml(server, "batch", "download", job["job_id"], "--out", str(downloaded)) == 0
    predicted = [json.loads(line) for line in downloaded.read_text().splitlines()]
    assert [(p["row"], p["house"]) for p in predicted] == [(0, "h-1"), (1, "h-2")]
    assert [p["prediction"] for p in predicted] == pytest.approx([float(x.split(",")[-1]) for x in lines[1:]])
    with Client(server.url, server.api_key, progress=False) as client:
        where = client.batch_output(job["job_id"])
    assert _put(where["predictions_url"], b"{}") == 403  # a download URL never writes
    assert _get(where["errors_url"].replace("signature=", "signature=0")) == 403
    assert _get(where["errors_url"]) == 200

    assert _sml(server, "models", "list") == 0
    assert "houses" in capsys.readouterr().out
    assert _sml(server, "models", "rollback", "houses") == 1  # only one version: nothing to roll back to
    assert capsys.readouterr().err.startswith("error: HTTP 4")

    assert _sml(server, "runs") == 0
    assert run_id in capsys.readouterr().out
    assert _sml(server, "runs", run_id) == 0
    shown = capsys.readouterr().out
    assert "stop_reason" in shown and run["stop_reason"] in shown
    assert _sml(server, "stop", run_id) == 1
    assert (
        f"HTTP 409: training run '{run_id}' is SUCCEEDED: only a RUNNING run can be stopped" in capsys.readouterr().err
    )
    assert _sml(server, "models", "show", "houses", "1") == 0
    shown = capsys.readouterr().out
    assert "test metrics" in shown and "scikit-learn reference" in shown and len(shown.splitlines()) < 60

    report = tmp_path / "report"
    assert _sml(server, "report", run_id, "--out", str(report)) == 0
    for name in ("loss.png", "timing.png", "residuals.png"):
        width, height = _png_size(report / name)
        assert width > 300 and height > 200
    page = (report / "report.html").read_text()
    assert run_id in page and page.count("data:image/png;base64,") >= 2 and "r2" in page
    assert "Cost estimate" in page and "Lambda GradientWorker" in page and "<th>total</th>" in page
    assert "Feature importance" in page and "standardized coefficient" in page and "area_m2" in page
    assert f"stopped by {run['stop_reason']}" in page and "of which" in page
    assert server.cloud.s3.get_object(Bucket=server.cloud.stack.bucket, Key=f"runs/{run_id}/usage.json")

    assert _sml(server, "cost", run_id, "--rows", "1000000", "--shards", "16", "--rounds", "100") == 0
    out = capsys.readouterr().out
    assert "this run" in out and "what if: 100 rounds x 16 shards, 1000000 rows" in out


def test_an_upload_through_a_presigned_url_is_registered_by_the_object_created_notification(server, capsys):
    assert _sml(server, "upload", str(SAMPLE), "--dataset", "big", "--via-s3", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["status"] == "ready" and doc["rows"] == 3000 and doc["dataset"] == "big"


def test_uploading_a_missing_file_exits_2(server, capsys):
    bad = SAMPLE.parent / "does-not-exist.csv"
    assert _sml(server, "upload", str(bad)) == 2
    assert "No such file" in capsys.readouterr().err


def _failing_calls(server, capsys) -> list[tuple[int, str]]:
    """An unknown run (404), an invalid request (422) and an unreachable server: exit codes and stderr."""
    calls = [
        lambda: _sml(server, "runs", "run-000000000000"),
        lambda: _sml(server, "train", "--dataset", "x", "--target", "y", "--model-name", "m", "--shards", "5000"),
        lambda: sml(["--url", "http://127.0.0.1:9", "runs"]),
    ]
    results = []
    for call in calls:
        code = call()
        results.append((code, capsys.readouterr().err))
    return results


def test_api_errors_exit_1(server, capsys):
    assert [code for code, _ in _failing_calls(server, capsys)] == [1, 1, 1]


def test_api_errors_are_one_line(server, capsys):
    (_, not_found), (_, invalid), (_, unreachable) = _failing_calls(server, capsys)
    assert not_found.strip() == "error: HTTP 404: training run 'run-000000000000' does not exist"
    err = invalid.strip()
    assert err.startswith("error: HTTP 422: invalid request: body/n_shards") and "\n" not in err
    assert unreachable.startswith("error: cannot reach http://127.0.0.1:9")


@pytest.mark.parametrize("declared", ["1", "-5", "abc"])
def test_a_body_that_does_not_match_its_content_length_is_a_400_not_a_hung_server(server, declared):
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=BODY_TIMEOUT_SECONDS * 3) as conn:
        conn.sendall(f"GET /training-runs HTTP/1.1\r\nHost: x\r\nContent-Length: {declared}\r\n\r\n".encode())
        answer = conn.makefile("rb").readline()
    assert answer.startswith(b"HTTP/1.1 400"), answer


def _put(url: str, body: bytes) -> int:
    request = urllib.request.Request(url, data=body, method="PUT")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def _alias_version(server, name: str) -> int | None:
    key = f"models/{name}/aliases/production.json"
    try:
        body = server.cloud.s3.get_object(Bucket=server.cloud.stack.bucket, Key=key)["Body"].read()
    except server.cloud.s3.exceptions.NoSuchKey:
        return None
    return json.loads(body)["version"]


@pytest.mark.parametrize("query", ["", "?signature=0000", "?signature={good}"])
def test_the_local_upload_path_writes_only_with_the_signature_of_its_own_key(server, query):
    headers = {"x-api-key": server.api_key or "", "Content-Type": "application/json"}
    request = urllib.request.Request(
        server.url + "/datasets", data=b'{"name": "signed"}', headers=headers, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        upload_url = json.loads(response.read())["upload_url"]
    good = upload_url.split("signature=")[1]
    target = f"{server.url}/_local_s3/models/nobody/aliases/production.json{query.format(good=good)}"
    assert _put(target, b'{"version": 99}') == 403
    assert _alias_version(server, "nobody") is None


def test_a_local_url_without_a_key_uses_the_local_servers_key(server, capsys, monkeypatch):
    monkeypatch.delenv("SML_API_KEY", raising=False)
    assert sml(["--url", server.url, "runs"]) == 0
    monkeypatch.setenv("SML_URL", server.url)
    assert sml(["models", "list"]) == 0


def test_a_refused_key_is_a_403_that_names_it_and_how_to_pass_one(server, capsys, monkeypatch):
    monkeypatch.setenv("SML_API_KEY", "not-the-key-wxyz")
    assert sml(["--url", server.url, "runs"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        "error: HTTP 403: Forbidden: the key in SML_API_KEY (x-api-key ending 'wxyz') was refused; pass the API's "
        "key with --api-key KEY or SML_API_KEY, or --stack NAME / SML_STACK for a deployed stack"
    )


def test_runs_are_listed_with_their_setup_and_metric_and_compared_side_by_side(server, tmp_path, capsys):
    small = tmp_path / "compared.csv"
    small.write_text("".join(SAMPLE.read_text().splitlines(keepends=True)[:201]))
    with Client(server.url, server.api_key, progress=False) as client:
        client.upload(small, "compared")
        first = client.train("compared", "price_k", "compared", shards=2, solver="sgd", learning_rate=0.5, max_epochs=5)
        second = client.train("compared", "price_k", "compared", shards=2, optimizer="adam", max_epochs=5)
        listed = {r["run_id"]: r for r in client.runs(None)}
        frame = client.compare_runs([first["run_id"], second["run_id"]])
    ids = [first["run_id"], second["run_id"]]
    for run in (first, second):
        row = listed[run["run_id"]]
        assert row["metric"] == "r2" and row["test_metric"] == run["model"]["metrics"]["r2"]
        assert row["stop_reason"] == run["stop_reason"] and row["rounds_completed"] == run["rounds_completed"]
        assert row["hyperparameters"]["optimizer"] == run["request"]["hyperparameters"]["optimizer"]
    assert listed[ids[0]]["hyperparameters"]["learning_rate"] == 0.5
    assert list(frame.columns) == ids and frame.loc["hp.optimizer"].tolist() == ["momentum", "adam"]
    assert frame.loc["test.r2"].tolist() == [first["model"]["metrics"]["r2"], second["model"]["metrics"]["r2"]]
    assert all(cost > 0 for cost in frame.loc["cost_usd"])
    assert _sml(server, "runs", "compare", *ids, "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["run_id"] for r in rows] == ids and [r["stop_reason"] for r in rows] == [
        first["stop_reason"],
        second["stop_reason"],
    ]
    assert _sml(server, "runs", "compare", *ids) == 0
    out = capsys.readouterr().out
    assert "hp.learning_rate" in out and "cost (USD)" in out and "test.r2" in out


def test_a_tuning_job_from_sml_tune_to_its_leaderboard_and_search_report(server, tmp_path, capsys):
    small = tmp_path / "tuned.csv"
    small.write_text("".join(SAMPLE.read_text().splitlines(keepends=True)[:301]))
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"model": ["linear_regression", "mlp_regression"], "mode": ["sync"]}))
    assert _sml(server, "upload", str(small), "--dataset", "tuned") == 0
    flags = ["--dataset", "tuned", "--target", "price_k", "--model-name", "tuned", "--max-trials", "3"]
    flags += ["--max-parallel", "2", "--min-epochs", "3", "--max-epochs", "9", "--space", str(space), "--seed", "1"]
    capsys.readouterr()
    assert _sml(server, "tune", *flags, "--watch", "--poll", "0.5") == 0
    err = capsys.readouterr().err
    job_id = err.split("started tuning job ")[1].split(":")[0]
    assert "task regression, validation r2, 3 trials (2 at a time), rungs [3, 9] epochs, estimated cost $" in err
    assert f"tuning job {job_id} SUCCEEDED in " in err and "best trial " in err and "model tuned version 1" in err
    assert _sml(server, "tuning", "show", job_id, "--json") == 0
    job = json.loads(capsys.readouterr().out)
    assert job["status"] == "SUCCEEDED" and len(job["leaderboard"]) == 3
    assert {e["hyperparameters"]["model"] for e in job["leaderboard"]} <= {"linear_regression", "mlp_regression"}
    assert _sml(server, "tunings", "--json") == 0
    assert job_id in [j["job_id"] for j in json.loads(capsys.readouterr().out)]
    report = tmp_path / "search"
    assert _sml(server, "report", "--tuning", job_id, "--out", str(report)) == 0
    for name in ("search.png", "rungs.png"):
        width, height = _png_size(report / name)
        assert width > 300 and height > 200
    assert f"Tuning job {job_id}" in (report / "tuning.html").read_text()
