"""The project's commands run the cheap way for the tests: their ``main`` in this process (``call_main``; the data
pipelines, ``preprocess/*.sh``, each ``exec``-ing ``python -m rxf_repro.data.NAME``: ``pipeline``), or in a fork of it
when a test signals or kills the run (``start_pipeline``).

A fresh interpreter that imports fairseq costs 5-7 s on the test machine; the pipelines' work on the tests' inputs costs
a fraction of that. So each shell wrapper runs for real, end to end, in one test of its own module, and every other test
calls the same ``main`` the wrapper ``exec``s, with the same arguments."""

import contextlib
import dataclasses
import importlib
import os
import select
import signal
import subprocess
import time
from typing import Iterable, List, Optional

import psutil

from rxf_repro import process
from tests.helpers import call_main


def pipeline(name: str, argv: Iterable) -> subprocess.CompletedProcess:
    """``preprocess/NAME.sh ARGV...`` as ``rxf_repro.data.NAME.main(ARGV)`` in this process (``call_main``)."""
    return call_main(importlib.import_module(f"rxf_repro.data.{name}").main, argv, f"preprocess/{name}.sh")


def _run_slowly(name: str, argv: List[str], delay: float, stall: Optional[str]) -> int:
    from rxf_repro.data import common

    gpt2_bpe = common.gpt2_bpe

    def slow_gpt2_bpe(*files: str) -> common.TextEncoder:
        """``common.gpt2_bpe``, whose batches take ``delay`` seconds a line, or forever with ``stall`` in a line."""
        encoder = gpt2_bpe(*files)

        def encode(lines: List[str]) -> List[str]:
            for line in lines:
                time.sleep(3600 if stall is not None and stall in line else delay)
            return encoder.encode(lines)

        return dataclasses.replace(encoder, encode=encode)

    if delay or stall:
        common.gpt2_bpe = slow_gpt2_bpe  # in this fork only
    return importlib.import_module(f"rxf_repro.data.{name}").main(argv)


def start_pipeline(
    name: str, argv: Iterable, encode_delay: float = 0.0, stall_on: Optional[str] = None
) -> process.ForkedChild:
    """``preprocess/NAME.sh ARGV...`` in a fork of this process (its own process group, as the ``exec``-ed interpreter
    of the shell wrapper would be in a terminal's job): SIGTERM or Ctrl-C reach the same ``main``, Ctrl-C with its
    default handler. Its stdout and stderr together, read with ``read_until`` and ``read_rest``.

    A test that signals the run during its GPT-2 BPE encoding makes sure the encoding still runs when the signal
    lands, whatever the scheduler does: ``encode_delay`` seconds per line, or no end to the line holding
    ``stall_on``. Only the speed of the encoder changes; the pipeline, its threads and its cleanup are the
    real ones."""
    return process.ForkedChild(_run_slowly, (name, [str(a) for a in argv], encode_delay, stall_on))


def read_until(child: process.ForkedChild, text: str, within: float = 120.0) -> str:
    """The child's output up to the line holding ``text`` (never blocking past ``within`` seconds, whatever the
    scheduler does); fails, naming what was read, if the child ends or the time runs out first."""
    fd, seen, deadline = child.stdout.fileno(), b"", time.monotonic() + within
    while text.encode() not in seen:
        left = deadline - time.monotonic()
        ready = select.select([fd], [], [], max(0.0, min(left, 1.0)))[0] if left > 0 else []
        chunk = os.read(fd, 65536) if ready else b""
        if ready and not chunk:
            raise AssertionError(f"the run ended before printing {text!r}:\n{seen.decode()[-3000:]}")
        if not ready and left <= 0:
            raise AssertionError(f"no {text!r} within {within:.0f} s:\n{seen.decode()[-3000:]}")
        seen += chunk
    return seen.decode(errors="replace")


def read_rest(child: process.ForkedChild, within: float = 60.0) -> str:
    """The rest of the child's output until it ends (its exit status then in ``child.returncode``); fails, after
    killing its process group, if it still runs ``within`` seconds from now."""
    fd, seen, deadline = child.stdout.fileno(), b"", time.monotonic() + within
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            kill_group(child.pid)
            raise AssertionError(f"still running {within:.0f} s later:\n{seen.decode()[-3000:]}")
        if select.select([fd], [], [], min(left, 1.0))[0]:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            seen += chunk
    child.wait(max(1.0, deadline - time.monotonic()))
    return seen.decode(errors="replace")


def kill_group(pid: int) -> None:
    """SIGKILL to a child's process group (it and the workers it forked), if any of it is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def group_members(pgid: int) -> List[int]:
    """The live (not zombie) processes of process group ``pgid``: a run's, what it started included."""
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(OSError, psutil.Error):
            if os.getpgid(proc.pid) == pgid and running(proc.pid):
                found.append(proc.pid)
    return found


def assert_group_gone(pgid: int, within: float = 20.0) -> None:
    """Nothing of process group ``pgid`` runs within ``within`` seconds; what does is killed, and the test fails."""
    deadline = time.monotonic() + within
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = group_members(pgid)
    kill_group(pgid)
    assert not left, f"{left} of process group {pgid} outlived the run"


def running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
