"""The README's curl examples, run as written (bash, curl, jq) against the local server: every one must work."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request

import pytest

from mllocal.server import LocalApi
from mllocal.template import ROOT

pytestmark = pytest.mark.skipif(
    not (shutil.which("curl") and shutil.which("jq") and shutil.which("bash")), reason="needs bash, curl and jq"
)


def readme_block(section: str, language: str = "bash") -> str:
    """The first ```bash (or ``language``) block after the heading ``section``."""
    text = (ROOT / "README.md").read_text()
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


def test_the_use_the_api_examples_work_as_written(server):
    script = readme_block("## Use the API")
    assert "Content-Type: application/json" not in script  # curl's default content type is the point
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
    """The README's second block after its step 1 (the upload), run in a scratch folder that sees the repository's
    data/ (the ONNX download lands there, not in the tree); then its onnxruntime snippet on the downloaded graph,
    whose answer must equal Predict's for the same row."""
    upload = readme_block("## Use the API").split("\n\n")[0]
    assert "INPUT=$(curl" in upload and "@data/housing.csv" in upload
    script = readme_block("### Neural networks, tuning jobs and ONNX")
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

    snippet = readme_block("### Neural networks, tuning jobs and ONNX", "python")
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
