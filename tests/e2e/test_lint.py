"""The formatter and the linter (ruff.toml) keep the tree as it was left: `make lint` runs the same two commands."""

import os
import shutil
import subprocess
import sys

import pytest

from tests.helpers import REPO


def ruff():
    found = shutil.which("ruff", path=os.path.dirname(sys.executable)) or shutil.which("ruff")
    if found is None:
        pytest.fail("ruff is not installed: it comes with the project's test extra (pip install -e '.[test]')")
    return found


@pytest.mark.parametrize("command", [["check", "."], ["format", "--check", "."]], ids=["check", "format"])
def test_ruff_finds_nothing_to_change(command):
    proc = subprocess.run([ruff(), *command], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
