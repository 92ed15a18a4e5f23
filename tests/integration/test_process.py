"""Children that never outlive us (rxf_repro/process.py), in real child processes: SIGTERM runs the cleanup and stops
the children, and a signal landing while a child starts stops it."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tests.helpers import REPO
from tests.pipelines import kill_group


def leftovers(parent):
    return sorted(n for n in os.listdir(parent) if ".tmp-" in n or ".old-" in n)


def test_sigterm_runs_cleanup_and_stops_the_children(tmp_path):
    """A tool with exit_on_sigterm and children(): SIGTERM leaves no child and no temporary folder."""
    script = tmp_path / "tool.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {REPO!r})
        from rxf_repro import outputs, process
        process.exit_on_sigterm()
        with outputs.output_folder({str(tmp_path / "out")!r}, "tool-a", "kind-a") as tmp, process.children() as kids:
            kids.append(process.start_child(["sleep", "300"]))
            print(kids[0].pid, flush=True)
            time.sleep(300)
    """)
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        child = int(proc.stdout.readline())  # printed inside both blocks: SIGTERM from now on meets the cleanup
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 143
    finally:
        kill_group(proc.pid)
        proc.wait()
        proc.stdout.close()
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def run_script(path, one_core: bool = False) -> subprocess.CompletedProcess:
    """``python PATH`` in its own process group, which is killed, whatever is left of it, if it runs past 60 s. With
    ``one_core`` it and its children share one core (a busy machine's scheduling, every time: after a fork the
    parent runs on before the child has started)."""
    pin = {"preexec_fn": lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})} if one_core else {}
    proc = subprocess.Popen(
        [sys.executable, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **pin,
    )
    try:
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        kill_group(proc.pid)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


SIGNAL_DURING_START = """
import os, signal, subprocess, sys
sys.path.insert(0, {repo!r})
from rxf_repro import process
process.exit_on_sigterm()
# Ctrl-C as an interactive shell delivers it: a job started in the background by a non-interactive shell (`make
# test &`) inherits SIGINT ignored, and an ignored signal cannot be tested
signal.signal(signal.SIGINT, signal.default_int_handler)
started = []
real_popen, real_fork = subprocess.Popen, os.fork

def popen(*args, **kwargs):  # the child exists, start_child has not returned: the signal lands now
    child = real_popen(*args, **kwargs)
    started.append(child.pid)
    signal.raise_signal(signal.{sig})
    return child

def fork():
    pid = real_fork()
    if pid:
        started.append(pid)
        signal.raise_signal(signal.{sig})
    return pid

subprocess.Popen, os.fork = popen, fork
try:
    {start}
    print("the signal was lost")
except BaseException as error:
    subprocess.Popen, os.fork = real_popen, real_fork
    try:
        os.waitpid(started[0], os.WNOHANG)
        print("running", type(error).__name__)
        os.kill(started[0], signal.SIGKILL)
    except ChildProcessError:  # stopped and reaped
        print("stopped", type(error).__name__)
"""


@pytest.mark.parametrize(
    "start",
    ['process.start_child(["sleep", "300"])', "process.ForkedChild(__import__('time').sleep, (300,))"],
    ids=["start_child", "ForkedChild"],
)
@pytest.mark.parametrize("sig,raised", [("SIGINT", "KeyboardInterrupt"), ("SIGTERM", "SystemExit")])
def test_a_signal_while_a_child_starts_stops_the_child_and_then_interrupts(tmp_path, start, sig, raised):
    """Ctrl-C or SIGTERM between the fork and the caller holding the child (rxf-rouge's ROUGE-1.5.5.pl outlived
    one so in CI): the child is stopped, then the signal raises as it would have."""
    script = tmp_path / "start.py"
    script.write_text(SIGNAL_DURING_START.format(repo=REPO, sig=sig, start=start))
    started = time.monotonic()
    proc = run_script(script, one_core=True)
    assert proc.stdout == f"stopped {raised}\n", proc.stderr
    # by the signal itself, not by stop_child's SIGKILL after its 10 s of grace (a signal lost in the new child)
    assert time.monotonic() - started < 8
