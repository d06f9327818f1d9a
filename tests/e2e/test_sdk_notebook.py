"""docs/notebook.py, the SDK's example, run as a user runs it (`python docs/notebook.py --url ...`) against the
local API server on a free port."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import pytest

from mllocal.server import LocalApi
from mllocal.template import ROOT


@pytest.fixture(scope="module")
def server():
    with LocalApi(port=0, access_log=False) as api:
        yield api


def _get(server, path: str):
    request = urllib.request.Request(server.url + path, headers={"x-api-key": server.api_key or ""})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_the_notebook_runs_the_whole_flow_against_the_local_server(server, tmp_path):
    out = tmp_path / "report"
    # no --api-key: the local server's key is found for a local URL
    done = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "notebook.py"), "--url", server.url, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0] == f"API: {server.url}"
    assert lines[1].startswith("data set notebook-houses version ") and lines[1].endswith(": 400 rows")
    assert "served by version 2" in done.stdout
    assert lines[-1] == "promoted version 2"
    assert (out / "report.html").exists() and (out / "loss.png").exists()
    model = _get(server, "/models/notebook-houses")
    assert model["versions"] == [1, 2] and model["aliases"]["production"]["version"] == 2
