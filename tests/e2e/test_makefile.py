"""The Makefile's install step: exactly the lock's versions, and a TORCH given on the command line reaches an
existing .venv with the lock still holding for everything else."""

import os
import re
import stat
import subprocess

from tests.helpers import REPO

LOCK = os.path.join(REPO, "constraints.txt")


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
    return proc


def pip_installs(root):
    calls = (root / "calls.log").read_text().splitlines() if (root / "calls.log").exists() else []
    return [c for c in calls if c.startswith("-m pip install")]


def locked_torch():
    (version,) = re.findall(r"^torch==(\S+)$", open(LOCK).read(), re.M)
    return f"torch=={version}"


def test_every_install_is_constrained_by_the_lock_and_a_new_torch_reaches_an_existing_venv(tmp_path):
    venv = fake_venv(tmp_path)
    install(venv)
    pins = f"-c {venv}/.rxf-constraints.txt --build-constraint {venv}/.rxf-constraints.txt"
    calls = pip_installs(tmp_path)
    assert calls == [
        f"-m pip install -q -c {venv}/.rxf-constraints.txt --upgrade pip",
        f"-m pip install {pins} -q --upgrade setuptools wheel",
        f"-m pip install {pins} {locked_torch()}",
        f"-m pip install {pins} -e .[test,hf,demo,slurm]",
    ]
    assert (venv / ".rxf-constraints.txt").read_text() == open(LOCK).read()
    install(venv)  # nothing changed: nothing installed
    assert len(pip_installs(tmp_path)) == 4
    install(venv, "TORCH=torch==2.5.1 --index-url https://download.pytorch.org/whl/cu121")
    assert (
        pip_installs(tmp_path)[-2]
        == f"-m pip install {pins} torch==2.5.1 --index-url https://download.pytorch.org/whl/cu121"
    )
    # the lock still holds for everything but torch and its CUDA packages
    pins_now = (venv / ".rxf-constraints.txt").read_text().splitlines()
    assert not [p for p in pins_now if re.match(r"(torch|triton|nvidia-[\w-]+)==", p)]
    assert "transformers==" in "\n".join(pins_now) and len(pins_now) > 50
    assert os.path.exists(venv / ".rxf-installed")


def test_a_missing_lock_is_one_line_naming_make_lock(tmp_path):
    venv = fake_venv(tmp_path)
    proc = subprocess.run(
        ["make", "-s", "-C", REPO, "install", f"VENV={venv}", f"LOCK={tmp_path / 'none.txt'}", "TORCH=torch"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 and "none.txt is missing: `make lock` makes it" in proc.stderr
    assert not (tmp_path / "calls.log").exists()
