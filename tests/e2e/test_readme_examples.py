"""The README's curl examples, run as written (bash, curl, jq) against the local server: every one must work."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from mllocal.server import LocalApi
from mllocal.template import ROOT

pytestmark = pytest.mark.skipif(
    not (shutil.which("curl") and shutil.which("jq") and shutil.which("bash")), reason="needs bash, curl and jq"
)


def readme_block(section: str) -> str:
    """The first ```bash block after the heading ``section``."""
    text = (ROOT / "README.md").read_text()
    after = text[text.index(f"\n{section}\n") :]
    return re.search(r"```bash\n(.*?)```", after, re.S).group(1)


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
