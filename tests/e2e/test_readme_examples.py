"""The curl examples of the README and docs/walkthrough.md, run as written (bash, curl, jq) against the local server:
every one must work, and every one that sends a body says its Content-Type."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest

from mllocal.server import LocalApi
from mllocal.template import ROOT

pytestmark = pytest.mark.skipif(
    not (shutil.which("curl") and shutil.which("jq") and shutil.which("bash")), reason="needs bash, curl and jq"
)


WALKTHROUGH = "docs/walkthrough.md"


def readme_block(section: str, language: str = "bash", page: str = "README.md") -> str:
    """The first ```bash (or ``language``) block after the heading ``section`` of ``page``."""
    text = (ROOT / page).read_text()
    after = text[text.index(f"\n{section}\n") :]
    return re.search(rf"```{language}\n(.*?)```", after, re.S).group(1)


def _documents(text: str):
    decoder, at = json.JSONDecoder(), 0
    while at < len(text):
        if text[at].isspace():
            at += 1
            continue
        doc, at = decoder.raw_decode(text, at)
        yield doc


@pytest.fixture(scope="module")
def server():
    with LocalApi(port=0, access_log=False) as api:
        yield api


def _sends_its_content_type(script: str) -> None:
    """Every curl command (continuation lines joined) that sends a body names its Content-Type."""
    for command in script.replace("\\\n", " ").split("\n"):
        if re.search(r"\s(-d|--data-binary)\s", command):
            assert "Content-Type: " in command, command


def test_the_readme_commands_work_as_written(server):
    script = readme_block("## Use the API")
    _sends_its_content_type(script)
    env = {**os.environ, "API": server.url, "KEY": server.api_key or ""}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    uploaded, started = list(_documents(done.stdout))
    assert uploaded["dataset"] == "housing" and uploaded["status"] == "ready" and uploaded["rows"] == 3000
    assert started["status"] == "RUNNING" and started["run_id"].startswith("run-")
    deadline = time.monotonic() + 300  # the run ends before the walkthrough trains the same model
    while True:
        request = urllib.request.Request(
            f"{server.url}/training-runs/{started['run_id']}", headers={"x-api-key": server.api_key or ""}
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            status = json.loads(answer.read())["status"]
        if status != "RUNNING" or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert status == "SUCCEEDED"


def test_the_walkthrough_examples_work_as_written(server):
    script = readme_block("## Use the API", page=WALKTHROUGH)
    _sends_its_content_type(script)
    env = {**os.environ, "API": server.url, "KEY": server.api_key or ""}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    printed = list(_documents(done.stdout))  # curl prints an answer without a newline after it
    run, predicted, promoted, *rows = printed
    assert run["status"] == "SUCCEEDED" and run["model"]["model_name"] == "housing" and run["stop_reason"]
    assert len(predicted["predictions"]) == 2
    assert predicted["warnings"] == ["ignored column(s) that are not features of the model: id"]
    assert "message" not in promoted, promoted
    assert [r["row"] for r in rows] == [0, 1] and all(isinstance(r["prediction"], float) for r in rows)


def test_the_network_tuning_and_onnx_examples_work_as_written(server, tmp_path):
    """The walkthrough's second block after its step 1 (the upload), run in a scratch folder that sees the repository's
    data/ (the ONNX download lands there, not in the tree); then its onnxruntime snippet on the downloaded graph,
    whose answer must equal Predict's for the same row."""
    upload = readme_block("## Use the API", page=WALKTHROUGH).split("\n\n")[0]
    assert "INPUT=$(curl" in upload and "@data/housing.csv" in upload
    script = readme_block("## Neural networks, tuning jobs and ONNX", page=WALKTHROUGH)
    _sends_its_content_type(script)
    (tmp_path / "data").symlink_to(ROOT / "data")
    env = {**os.environ, "API": server.url, "KEY": server.api_key or ""}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", f"{upload}\n{script}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
    network, job = list(_documents(done.stdout))
    assert network["status"] == "SUCCEEDED" and network["model"] == "housing-mlp" and network["version"] == 1
    assert network["stop_reason"] and network["r2"] > 0.8, network
    assert job["status"] == "SUCCEEDED", job
    assert len(job["trials"]) == 4 and "completed" in {t["status"] for t in job["trials"]}
    assert {t["status"] for t in job["trials"]} <= {"completed", "stopped_early", "failed"}  # all ended
    assert job["model"]["model_name"] == "housing-tuned" and job["model"]["version"] == 1
    assert (tmp_path / "housing-mlp.onnx").read_bytes()[:2] == b"\x08\x09"  # ModelProto.ir_version = 9

    snippet = readme_block("## Neural networks, tuning jobs and ONNX", "python", page=WALKTHROUGH)
    ran = subprocess.run(
        [sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=True
    )
    onnx_answer = float(ran.stdout.strip().removeprefix("[").removesuffix("]"))  # numpy prints [183.92]
    instance = {"area_m2": 92.2, "bedrooms": 2, "age_years": 62.7, "distance_km": 3.11, "lot_m2": None}
    request = urllib.request.Request(
        f"{server.url}/models/housing-mlp/predict",
        data=json.dumps({"instances": [{**instance, "neighborhood": "harbor"}]}).encode(),
        headers={"x-api-key": server.api_key or "", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        (predicted,) = json.loads(answer.read())["predictions"]
    assert onnx_answer == pytest.approx(predicted, rel=1e-5)
