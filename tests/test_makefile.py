"""The Makefile's install step: a TORCH given on the command line reaches an existing .venv."""

import os
import stat
import subprocess

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.slow  # fairseq or a pipeline in subprocesses: make test-fast skips it


def fake_venv(root):
    """A .venv whose python only records how it was called."""
    bin_dir = root / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    python = bin_dir / "python"
    python.write_text(f'#!/bin/sh\necho "$@" >> {root / "calls.log"}\n')
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    return root / "venv"


def install(venv, *args):
    proc = subprocess.run(["make", "-s", "-C", REPO, "install", f"VENV={venv}", *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def torch_installs(root):
    calls = (root / "calls.log").read_text().splitlines() if (root / "calls.log").exists() else []
    return [c for c in calls if c.startswith("-m pip install torch")]


def test_a_new_torch_on_the_command_line_is_installed_into_an_existing_venv(tmp_path):
    venv = fake_venv(tmp_path)
    install(venv)
    assert torch_installs(tmp_path) == ["-m pip install torch==2.13.0"]
    install(venv)  # nothing changed: nothing installed
    assert len(torch_installs(tmp_path)) == 1
    install(venv, "TORCH=torch==2.5.1 --index-url https://download.pytorch.org/whl/cu121")
    assert (
        torch_installs(tmp_path)[-1] == "-m pip install torch==2.5.1 --index-url https://download.pytorch.org/whl/cu121"
    )
    assert os.path.exists(venv / ".rxf-installed")
