"""The SDK (mlclient.Client) against a scripted API (httpx.MockTransport): configuration, the 403 message, the
retry policy, and pandas in and out. Nothing sleeps: the client's ``sleep`` records the waits."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import numpy as np
import pandas as pd
import pytest

from mlclient import ApiError, Client, RunFailed, SmlError
from mlclient.api import LOCAL_API_KEY, Config
from mlclient.cli import main as sml

Handler = Callable[[httpx.Request], httpx.Response]


class Api:
    """A scripted API: answers in order per (method, path), and every request it saw."""

    def __init__(self, routes: dict[tuple[str, str], list[httpx.Response] | Handler]) -> None:
        self.routes = routes
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        answers = self.routes[(request.method, request.url.path)]
        if callable(answers):
            return answers(request)
        return answers.pop(0) if len(answers) > 1 else answers[0]

    def client(self, **kwargs) -> tuple[Client, list[float]]:
        waits: list[float] = []
        kwargs.setdefault("url", "https://api.example.com/prod")
        kwargs.setdefault("api_key", "k-123456789")
        client = Client(transport=httpx.MockTransport(self), sleep=waits.append, progress=False, **kwargs)
        return client, waits


def _mock_http(monkeypatch, handler: Handler) -> None:
    """Every httpx.Client made from now on (the CLI's) answers through ``handler``."""
    original = httpx.Client

    def make(*args, **kwargs) -> httpx.Client:
        return original(*args, **{**kwargs, "transport": httpx.MockTransport(handler)})

    monkeypatch.setattr(httpx, "Client", make)


def ok(doc, status: int = 200, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=doc, headers=headers)


def fail(status: int, message: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json={"message": message}, headers=headers)


# -- configuration --------------------------------------------------------------------------------
def test_flags_win_over_the_environment_and_the_environment_over_the_defaults():
    env = {"SML_URL": "https://env.example.com/", "SML_API_KEY": "env-key"}
    assert Config.resolve(environ=env) == Config("https://env.example.com", "env-key", "the key in SML_API_KEY")
    flagged = Config.resolve("https://flag.example.com", "flag-key", environ=env)
    assert (flagged.url, flagged.api_key) == ("https://flag.example.com", "flag-key")


@pytest.mark.parametrize("url", [None, "http://127.0.0.1:8123", "http://localhost:3000/"])
def test_a_local_url_without_a_key_gets_the_local_servers_key(url):
    config = Config.resolve(url, environ={})
    assert config.api_key == LOCAL_API_KEY and config.key_source == "the local server's default key"


def test_a_remote_url_without_a_key_sends_none():
    assert Config.resolve("https://api.example.com", environ={}).api_key is None


def test_sml_stack_without_boto3_names_the_extra(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "boto3", None)
    with pytest.raises(SmlError, match=r"reading stack 'prod' needs boto3: pip install 'sml-client\[aws\]'"):
        Config.resolve(environ={"SML_STACK": "prod"})


def test_a_403_without_a_key_says_no_key_was_sent_and_how_to_pass_one():
    client, _ = Api({("GET", "/prod/models"): [fail(403, "Forbidden")]}).client(api_key=None)
    with pytest.raises(ApiError) as caught:
        client.models()
    assert caught.value.status == 403
    assert str(caught.value) == (
        "HTTP 403: Forbidden: no API key was sent; pass the API's key with --api-key KEY or SML_API_KEY, "
        "or --stack NAME / SML_STACK for a deployed stack"
    )


def test_a_403_names_the_refused_key_by_its_source_and_last_characters_only(monkeypatch):
    monkeypatch.setenv("SML_API_KEY", "secret-abcd")
    monkeypatch.delenv("SML_URL", raising=False)
    api = Api({("GET", "/models"): [fail(403, "Forbidden")]})
    client = Client("https://api.example.com", transport=httpx.MockTransport(api), progress=False)
    with pytest.raises(ApiError) as caught:
        client.models()
    assert "Forbidden: the key in SML_API_KEY (x-api-key ending 'abcd') was refused" in str(caught.value)
    assert "secret" not in str(caught.value)
    assert api.seen[0].headers["x-api-key"] == "secret-abcd"


def test_the_cli_sends_the_local_key_to_a_local_url_given_without_one(monkeypatch, capsys):
    seen: list[httpx.Request] = []
    _mock_http(monkeypatch, lambda r: seen.append(r) or ok({"runs": []}))
    monkeypatch.delenv("SML_API_KEY", raising=False)
    assert sml(["--url", "http://127.0.0.1:8123", "runs"]) == 0
    assert seen[0].headers["x-api-key"] == LOCAL_API_KEY and str(seen[0].url) == "http://127.0.0.1:8123/training-runs"


# -- retries --------------------------------------------------------------------------------------
def test_a_read_is_retried_on_5xx_and_429_with_backoff():
    api = Api({("GET", "/prod/models"): [fail(503, "busy"), fail(429, "slow down"), ok([{"name": "m"}])]})
    client, waits = api.client()
    assert client.models() == [{"name": "m"}]
    assert len(api.seen) == 3 and len(waits) == 2 and all(0 <= w <= 20 for w in waits)


def test_a_post_is_retried_on_429_but_never_on_a_5xx():
    api = Api({("POST", "/prod/models/m/rollback"): [fail(429, "slow down"), fail(502, "bad gateway")]})
    client, waits = api.client()
    with pytest.raises(ApiError) as caught:
        client.rollback("m")
    assert (caught.value.status, caught.value.message) == (502, "bad gateway")
    assert len(api.seen) == 2 and len(waits) == 1


def test_retry_after_is_honoured():
    api = Api({("GET", "/prod/models"): [fail(429, "slow down", {"Retry-After": "7"}), ok([])]})
    client, waits = api.client()
    assert client.models() == []
    assert waits == [7.0]


def test_retries_stop_after_the_limit_with_the_last_answer():
    api = Api({("GET", "/prod/models"): [fail(500, "boom")]})
    client, waits = api.client(retries=2)
    with pytest.raises(ApiError, match=r"^HTTP 500: boom$"):
        client.models()
    assert len(api.seen) == 3 and len(waits) == 2


def test_a_connection_that_never_opened_is_retried_even_for_a_post():
    calls = []

    def flaky(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            raise httpx.ConnectError("refused", request=request)
        return ok({"name": "m", "version": 2}, 200)

    client, _ = Api({("POST", "/prod/models/m/promote"): flaky}).client()
    assert client.promote("m", 2)["version"] == 2
    assert len(calls) == 2 and json.loads(calls[1].content) == {"version": 2, "force": False}


# -- pandas in and out ----------------------------------------------------------------------------
def _predict(request: httpx.Request) -> httpx.Response:
    rows = json.loads(request.content)["instances"]
    return ok({"model": "houses", "version": 3, "predictions": [float(r["area_m2"] or 0) * 2 for r in rows]})


def test_predict_a_dataframe_gives_a_series_on_its_index_in_batches_with_missing_values_as_null():
    api = Api({("POST", "/prod/models/houses/predict"): _predict})
    client, _ = api.client()
    frame = pd.DataFrame({"area_m2": [10.0, np.nan, 30.0], "bedrooms": np.array([1, 2, 3], dtype=np.int64)})
    frame.index = pd.Index(["a", "b", "c"])
    out = client.predict("houses", frame, batch_size=2)
    assert isinstance(out, pd.Series) and out.name == "prediction"
    assert out.to_dict() == {"a": 20.0, "b": 0.0, "c": 60.0}
    assert out.attrs == {"model": "houses", "version": 3, "warnings": []}
    bodies = [json.loads(r.content)["instances"] for r in api.seen]
    assert bodies == [
        [{"area_m2": 10.0, "bedrooms": 1}, {"area_m2": None, "bedrooms": 2}],
        [{"area_m2": 30.0, "bedrooms": 3}],
    ]


def test_predict_a_dataframe_with_a_classifier_gives_probability_columns():
    answer = {
        "model": "c",
        "version": 1,
        "predictions": ["no"],
        "classes": ["no", "yes"],
        "probabilities": [[0.75, 0.25]],
    }
    client, _ = Api({("POST", "/prod/models/c/predict"): [ok(answer)]}).client()
    out = client.predict("c", pd.DataFrame({"x": [1.0]}, index=[7]))
    assert isinstance(out, pd.DataFrame)
    assert out.to_dict(orient="index") == {7: {"prediction": "no", "p(no)": 0.75, "p(yes)": 0.25}}


def test_upload_a_dataframe_sends_it_as_csv_under_its_name():
    api = Api({("POST", "/prod/datasets/houses"): [ok({"dataset": "houses", "rows": 2}, 201)]})
    client, _ = api.client()
    assert client.upload(pd.DataFrame({"a": [1, 2], "b": ["x", None]}), "houses")["rows"] == 2
    assert api.seen[0].headers["content-type"] == "text/csv" and api.seen[0].content == b"a,b\n1,x\n2,\n"


def test_upload_a_dataframe_without_a_name_is_refused_before_any_request():
    api = Api({})
    client, _ = api.client()
    with pytest.raises(SmlError, match=r"upload needs a data set name"):
        client.upload(pd.DataFrame({"a": [1]}))
    assert api.seen == []


def test_compare_puts_versions_side_by_side():
    def version(request: httpx.Request) -> httpx.Response:
        v = int(request.url.path.rsplit("/", 1)[1])
        return ok({"created_at": f"t{v}", "metrics": {"test": {"r2": 0.5 + v / 10, "confusion_matrix": [[1]]}}})

    routes: dict = {("GET", "/prod/models/m"): [ok({"versions": [1, 2], "aliases": {"production": {"version": 2}}})]}
    routes.update({("GET", f"/prod/models/m/versions/{v}"): version for v in (1, 2)})
    client, _ = Api(routes).client()
    table = client.compare("m")
    assert table.to_dict(orient="index") == {
        1: {"production": False, "created_at": "t1", "r2": 0.6},
        2: {"production": True, "created_at": "t2", "r2": 0.7},
    }


def test_dataframe_helpers_without_pandas_name_the_extra(monkeypatch):
    client, _ = Api({("GET", "/prod/models/m"): [ok({"versions": []})]}).client()
    monkeypatch.setitem(__import__("sys").modules, "pandas", None)
    with pytest.raises(SmlError, match=r"^DataFrames need pandas: pip install 'sml-client\[pandas\]'$"):
        client.compare("m")


# -- runs -----------------------------------------------------------------------------------------
def _run(status: str, done: int, **extra) -> httpx.Response:
    request = {"hyperparameters": {"max_epochs": 10}}
    return ok({"run_id": "run-1", "status": status, "rounds_completed": done, "request": request, **extra})


def test_train_starts_and_waits_for_the_run():
    model = {"model_name": "m", "version": 1}
    api = Api(
        {
            ("POST", "/prod/training-runs"): [ok({"run_id": "run-1", "status": "RUNNING"}, 202)],
            ("GET", "/prod/training-runs/run-1"): [
                _run("RUNNING", 0),
                _run("RUNNING", 4),
                _run("SUCCEEDED", 6, model=model),
            ],
        }
    )
    client, waits = api.client()
    run = client.train(
        "d", "y", "m", shards=2, hyperparameters={"optimizer": "sgd"}, max_epochs=10, options={"mode": "x"}
    )
    assert run["status"] == "SUCCEEDED" and run["model"] == model and waits == [1.0, 1.0]
    assert json.loads(api.seen[0].content) == {
        "dataset": "d",
        "target": "y",
        "model_name": "m",
        "n_shards": 2,
        "hyperparameters": {"optimizer": "sgd", "max_epochs": 10},
        "mode": "x",
    }


def test_a_failed_run_raises_run_failed_with_its_reason_and_document():
    error = {"type": "Diverged", "message": "diverged at round 3"}
    client, _ = Api({("GET", "/prod/training-runs/run-1"): [_run("FAILED", 3, error=error)]}).client()
    with pytest.raises(RunFailed, match=r"^run run-1 FAILED: Diverged: diverged at round 3$") as caught:
        client.wait("run-1")
    assert caught.value.doc["rounds_completed"] == 3


def test_a_report_without_matplotlib_names_the_extra_before_any_request(monkeypatch):
    api = Api({})
    client, _ = api.client()
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)
    monkeypatch.delitem(__import__("sys").modules, "mlclient.report", raising=False)
    with pytest.raises(SmlError, match=r"^reports need matplotlib: pip install 'sml-client\[report\]'$"):
        client.report("run-1")
    assert api.seen == []


def test_the_cli_compares_a_models_versions_in_a_table(monkeypatch, capsys):
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/models/m":
            return ok({"versions": [1, 2], "aliases": {"production": {"version": 1}}})
        version = int(request.url.path.rsplit("/", 1)[1])
        return ok({"created_at": f"t{version}", "metrics": {"test": {"rmse": 10.0 / version}}})

    _mock_http(monkeypatch, answer)
    assert sml(["--url", "https://api.example.com", "--api-key", "k", "models", "compare", "m"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line.strip().startswith("│")]
    assert [r for r in rows if r[1] in ("1", "2")] == [
        ["│", "1", "│", "True", "│", "t1", "│", "10", "│"],
        ["│", "2", "│", "False", "│", "t2", "│", "5", "│"],
    ]


def test_the_client_is_its_own_distribution_and_the_servers_does_not_ship_it():
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    server = tomllib.loads((root / "pyproject.toml").read_text())
    client = tomllib.loads((root / "client" / "pyproject.toml").read_text())
    assert "mlclient*" not in server["tool"]["setuptools"]["packages"]["find"]["include"]
    assert "scripts" not in server["project"]
    assert client["project"]["scripts"] == {"sml": "mlclient.cli:main"}
    assert client["project"]["requires-python"] == ">=3.10"
    required = {d.split(">")[0].split("<")[0].split("[")[0] for d in client["project"]["dependencies"]}
    assert required == {"httpx", "tenacity", "rich"}
