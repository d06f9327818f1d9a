"""The client installs on its own: a clean virtual environment on the oldest and the newest Python other than the
server's 3.12 found here (python3.X on PATH or pyenv's), `pip install client/`, nothing of the server's weight
(numpy, pandas, matplotlib, boto3), `sml --help`, `import mlclient`, and upload -> train -> predict with that `sml`
against the local API server. The 3.12 side is every other test of the client. Prints the installed size."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mllocal.server import LocalApi
from mllocal.template import ROOT
from tests.helpers import HOUSING_CSV, first_rows

MAX_INSTALLED_MB = 40  # httpx, tenacity, rich and their dependencies: ~17 MB; the server's are ~330 MB
OTHER_VERSIONS = ((3, 10), (3, 11), (3, 13))


def _pythons() -> dict[tuple[int, int], str]:
    """A working interpreter per supported minor version other than 3.12, the way the Makefile finds python3.12."""
    try:
        pyenv = subprocess.run(["pyenv", "root"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pyenv = ""
    found = {}
    for major, minor in OTHER_VERSIONS:
        name = f"python{major}.{minor}"
        candidates = [shutil.which(name)]
        if pyenv:
            candidates += sorted(map(str, Path(pyenv, "versions").glob(f"{major}.{minor}*/bin/{name}")), reverse=True)
        for candidate in filter(None, candidates):
            check = [candidate, "-c", f"import sys; assert sys.version_info[:2] == ({major}, {minor})"]
            if subprocess.run(check, capture_output=True, timeout=60).returncode == 0:
                found[(major, minor)] = candidate
                break
    return found


PYTHONS = _pythons()
CHOSEN = sorted({min(PYTHONS), max(PYTHONS)}) if PYTHONS else []


@pytest.fixture(scope="module")
def server():
    with LocalApi(port=0, access_log=False) as api:
        yield api


def _site_packages_bytes(venv: Path) -> int:
    return sum(p.stat().st_size for p in venv.glob("lib/python3.*/site-packages/**/*") if p.is_file())


def _run(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
    assert done.returncode == 0, f"{args}: {done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.mark.skipif(not PYTHONS, reason="no python3.10, 3.11 or 3.13 on PATH or in `pyenv root`/versions")
@pytest.mark.parametrize("version", CHOSEN, ids=lambda v: f"py{v[0]}.{v[1]}")
def test_the_client_installs_alone_and_runs_upload_train_predict(server, version, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SML_", "PYTHON", "VIRTUAL_ENV"))}
    venv = tmp_path / "venv"
    _run([PYTHONS[version], "-m", "venv", str(venv)], env, tmp_path)
    before = _site_packages_bytes(venv)
    # from a copy: building in client/ itself would leave build/ and *.egg-info beside the sources
    source = shutil.copytree(
        ROOT / "client", tmp_path / "client", ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__", ".*")
    )
    _run([str(venv / "bin" / "pip"), "install", "--quiet", str(source)], env, tmp_path, timeout=600)
    installed_mb = (_site_packages_bytes(venv) - before) / 2**20
    print(f"\nsml-client on Python {version[0]}.{version[1]}: {installed_mb:.1f} MB installed")
    assert installed_mb < MAX_INSTALLED_MB

    python, sml = str(venv / "bin" / "python"), str(venv / "bin" / "sml")
    modules = "('numpy', 'pandas', 'matplotlib', 'boto3')"
    heavy = f"import importlib.util as u; print([m for m in {modules} if u.find_spec(m)])"
    assert _run([python, "-c", heavy], env, tmp_path).stdout.strip() == "[]"
    assert "upload,train,watch" in _run([sml, "--help"], env, tmp_path).stdout
    assert _run([python, "-c", "import mlclient; print(mlclient.Client.__name__)"], env, tmp_path).stdout == "Client\n"

    # no --api-key anywhere: the local server's key is found for its local URL
    name = f"alone{version[0]}{version[1]}"
    (tmp_path / "houses.csv").write_bytes(first_rows(HOUSING_CSV, 300))
    uploaded = _run([sml, "--url", server.url, "upload", "houses.csv", "--dataset", name, "--json"], env, tmp_path)
    assert '"rows": 300' in uploaded.stdout
    train = [sml, "--url", server.url, "train", "--dataset", name, "--target", "price_k", "--model-name", name]
    trained = _run([*train, "--shards", "2", "--watch"], env, tmp_path)
    assert f"model {name} version 1" in trained.stderr
    (tmp_path / "rows.csv").write_text(
        "area_m2,bedrooms,age_years,distance_km,lot_m2,neighborhood\n"
        "92.2,2,62.7,3.11,156,harbor\n128.4,3,5.4,2.59,,riverside\n"
    )
    predicted = _run([sml, "predict", name, "rows.csv"], {**env, "SML_URL": server.url}, tmp_path)
    lines = predicted.stdout.splitlines()
    assert lines[0].endswith(",neighborhood,prediction") and len(lines) == 3
    assert float(lines[1].split(",")[-1]) < float(lines[2].split(",")[-1])
