"""What `make` shows a new user: the first `make demo` creates .venv for minutes, so pip's progress is shown."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_creating_the_venv_shows_pips_progress_and_says_what_it_does():
    recipe = subprocess.run(
        ["make", "-n", "-B", ".venv/bin/.installed", "PYTHON312=python3.12"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    installs = [line for line in recipe if "pip install " in line]
    assert len(installs) == 3
    assert all("--quiet" not in line and "--progress-bar on" in line for line in installs)
    assert recipe[1].startswith('echo "creating .venv with python3.12:')
