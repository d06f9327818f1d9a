"""What `make` shows a new user: the first `make demo` creates .venv for minutes, so pip's progress is shown."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _make(*args: str, check: bool = True, **more_env: str) -> subprocess.CompletedProcess:
    # run as a top-level make even under `make test` (a sub-make prints "Entering directory" lines)
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")} | more_env
    return subprocess.run(["make", *args], cwd=ROOT, capture_output=True, text=True, check=check, env=env)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_creating_the_venv_shows_pips_progress_and_says_what_it_does(tmp_path):
    venv = tmp_path / "new-venv"  # none yet
    recipe = _make("-n", "-B", f"{venv}/bin/.installed", f"VENV={venv}", "PYTHON312=python3.12").stdout.splitlines()
    installs = [i for i, line in enumerate(recipe) if "pip install " in line]
    assert len(installs) == 3
    assert all("--quiet" not in recipe[i] and "--progress-bar on" in recipe[i] for i in installs)
    assert all("|" not in recipe[i] for i in installs)  # piped, pip's progress bars would not show
    says = [i for i, line in enumerate(recipe) if line.startswith(f'echo "creating {venv} with python3.12:')]
    assert len(says) == 1 and says[0] < installs[0]  # what it does, before pip starts
    assert f"python3.12 -m venv {venv}" in recipe


FAKE_PIP = """#!/bin/bash
echo "Requirement already satisfied: numpy in ./lib (2.1.0)"
echo "Collecting onnx"
echo "Requirement already satisfied: protobuf in ./lib (5.0)"
echo "Successfully installed onnx-1.17.0"
exit "${FAKE_PIP_EXIT:-0}"
"""


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_updating_the_venv_says_so_and_leaves_out_pips_already_satisfied_lines(tmp_path):
    """A .venv that exists, pyproject.toml newer than its stamp: "updating", not "creating ... (a few minutes,
    once)", and pip's output without its "Requirement already satisfied" lines; a pip that fails still fails make."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    for name, text in (("python", "#!/bin/bash\n"), ("pip", FAKE_PIP)):
        (venv / "bin" / name).write_text(text)
        (venv / "bin" / name).chmod(0o755)
    target = f"{venv}/bin/.installed"
    done = _make(target, f"VENV={venv}", "PYTHON312=python3.12")
    lines = done.stdout.splitlines()
    assert lines[0] == f"updating {venv} (pyproject.toml client/pyproject.toml changed)"
    assert "creating" not in done.stdout and "-m venv" not in done.stdout
    assert not [line for line in lines if line.startswith("Requirement already satisfied")]
    assert lines.count("Collecting onnx") == 3 and lines.count("Successfully installed onnx-1.17.0") == 3
    assert lines[-1] == f"{venv} is ready" and (venv / "bin" / ".installed").exists()
    (venv / "bin" / ".installed").unlink()
    failed = _make(target, f"VENV={venv}", "PYTHON312=python3.12", check=False, FAKE_PIP_EXIT="1")
    assert failed.returncode != 0 and f"{venv} is ready" not in failed.stdout
    assert failed.stdout.splitlines()[-1] == "Successfully installed onnx-1.17.0"  # the first pip's, then it stops
