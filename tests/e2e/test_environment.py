"""What every run of the suite stands on: the installed packages are exactly the lock's, and no test can hang."""

import importlib.metadata
import os
import re
import subprocess
import sys
import time

import pytest
from packaging.utils import canonicalize_name

from tests.helpers import REPO

# The lock as `make install` applied it to this venv (constraints.txt, or without torch's lines for another TORCH).
APPLIED = os.path.join(sys.prefix, ".rxf-constraints.txt")
TORCH_AND_CUDA = re.compile(r"^(torch|triton|nvidia-[a-z0-9-]+)$")


def pins(path):
    found = {}
    for line in open(path, encoding="utf-8"):
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            found[canonicalize_name(name)] = version
    return found


@pytest.mark.skipif(not os.path.exists(APPLIED), reason="this venv was not made by `make install`")
def test_the_venv_holds_exactly_the_locked_versions():
    locked = pins(APPLIED)
    installed = {
        canonicalize_name(d.metadata["Name"]): d.version
        for d in importlib.metadata.distributions()
        if canonicalize_name(d.metadata["Name"]) != "rxf-fairseq"
    }
    differ = {
        name: (installed.get(name), version) for name, version in locked.items() if installed.get(name) != version
    }
    assert not differ, f"installed vs locked: {differ}"
    unlocked = set(installed) - set(locked)
    if "torch" not in locked:  # a TORCH of the user's own: torch and its CUDA packages are theirs
        unlocked = {name for name in unlocked if not TORCH_AND_CUDA.match(name)}
    assert not unlocked, f"installed but not in the lock: {sorted(unlocked)}"


SLEEPER = """
import time


def test_sleeps_past_its_timeout():
    time.sleep(60)


def test_beside_it():
    assert True
"""


def test_a_test_that_sleeps_past_its_timeout_fails_alone_and_shows_the_stacks(tmp_path, request):
    """The suite's own settings (setup.cfg: pytest-timeout's default, its signal method), the limit lowered to 2 s,
    on two xdist workers as `make test` runs them: the sleeper fails, its neighbour passes, the run goes on."""
    assert float(request.config.getini("timeout")) > 0 and request.config.pluginmanager.hasplugin("timeout")
    (tmp_path / "test_sleeper.py").write_text(SLEEPER)
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", os.path.join(REPO, "setup.cfg"), "--rootdir", str(tmp_path)]
        + ["-o", "timeout=2", "-n", "2", "-p", "no:cacheprovider", "test_sleeper.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "1 failed, 1 passed" in proc.stdout and "Timeout (>2.0s) from pytest-timeout" in proc.stdout
    assert "time.sleep(60)" in proc.stdout and "~~ Stack of " in proc.stdout  # where it hung, every thread
    assert time.monotonic() - started < 60
