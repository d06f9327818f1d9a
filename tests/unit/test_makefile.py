"""What `make` shows a new user: the first `make demo` creates .venv for minutes, so pip's progress is shown."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_creating_the_venv_shows_pips_progress_and_says_what_it_does():
    # run as a top-level make even under `make test` (a sub-make prints "Entering directory" lines)
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    recipe = subprocess.run(
        ["make", "-n", "-B", ".venv/bin/.installed", "PYTHON312=python3.12"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout.splitlines()
    installs = [i for i, line in enumerate(recipe) if "pip install " in line]
    assert len(installs) == 3
    assert all("--quiet" not in recipe[i] and "--progress-bar on" in recipe[i] for i in installs)
    says = [i for i, line in enumerate(recipe) if line.startswith('echo "creating .venv with python3.12:')]
    assert len(says) == 1 and says[0] < installs[0]  # what it does, before pip starts
