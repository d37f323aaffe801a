"""Style: ruff's lint and format checks over the whole repository (package, tests, benchmarks, notebooks,
docs scripts; the rules and exclusions are [tool.ruff] in pyproject.toml), run here so that the README's
test command, and so .ci/run, runs them. Fix what they find with ``ruff check --fix . && ruff format .``."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO


@pytest.mark.parametrize("command", [["check", "."], ["format", "--check", "."]], ids=["lint", "format"])
def test_ruff(command):
    done = subprocess.run([sys.executable, "-m", "ruff", *command], cwd=REPO, capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, f"ruff {' '.join(command)} (from {REPO}):\n{done.stdout}{done.stderr}"
