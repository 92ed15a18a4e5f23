"""Child processes that never outlive us: Ctrl-C and SIGTERM stop every child, and cleanup code runs.

A tool's ``main`` calls ``exit_on_sigterm()`` once; SIGTERM then raises ``SystemExit(143)`` in the main thread,
so ``finally`` blocks (temporary folders, children) run as they do for Ctrl-C. Children are started in their own
process group (``start_child``) so that stopping one also stops what it started (fairseq's data-loader workers).

Standard library only.
"""

import contextlib
import os
import signal
import subprocess
from typing import Iterator, List, Sequence

SIGTERM_EXIT = 128 + signal.SIGTERM


def _raise_exit(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one is enough: cleanup must not be interrupted again
    raise SystemExit(SIGTERM_EXIT)


def exit_on_sigterm() -> None:
    """SIGTERM -> ``SystemExit(143)`` in the main thread (the default would skip every ``finally``)."""
    signal.signal(signal.SIGTERM, _raise_exit)


def start_child(command: Sequence[str], **kwargs) -> subprocess.Popen:
    """``subprocess.Popen`` in a new process group (stopped as a whole by ``stop_child``)."""
    return subprocess.Popen(list(command), start_new_session=True, **kwargs)


def stop_child(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM to the child's process group, SIGKILL after ``grace`` seconds; a finished child is left alone."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@contextlib.contextmanager
def children() -> Iterator[List[subprocess.Popen]]:
    """A list to append started children to; any that still run when the block ends (an error, Ctrl-C,
    SIGTERM, or a normal exit with a child left running) are stopped."""
    procs: List[subprocess.Popen] = []
    try:
        yield procs
    finally:
        for proc in procs:
            stop_child(proc)
