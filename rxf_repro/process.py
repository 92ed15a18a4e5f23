"""Child processes that never outlive us: Ctrl-C and SIGTERM stop every child, and cleanup code runs.

A tool's ``main`` calls ``exit_on_sigterm()`` once, so that SIGTERM runs ``finally`` blocks as Ctrl-C does. Children
get their own process group so that stopping one also stops what it started (fairseq's data-loader workers).
Standard library only.
"""

import contextlib
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
from typing import Any, Callable, Iterator, List, Optional, Sequence

SIGTERM_EXIT = 128 + signal.SIGTERM
STOPPING = {signal.SIGINT, signal.SIGTERM}  # the signals that stop a tool and its children


def _raise_exit(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one is enough: cleanup must not be interrupted again
    raise SystemExit(SIGTERM_EXIT)


def exit_on_sigterm() -> None:
    """SIGTERM -> ``SystemExit(143)`` in the main thread (the default would skip every ``finally``)."""
    signal.signal(signal.SIGTERM, _raise_exit)


def start_child(command: Sequence[str], **kwargs) -> subprocess.Popen:
    """``subprocess.Popen`` in a new process group (stopped as a whole by ``stop_child``)."""
    with interrupts_deferred() as started:
        started.append(subprocess.Popen(list(command), start_new_session=True, **kwargs))
    return started[0]


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[list]:
    """Ctrl-C and SIGTERM held back during the block (which appends what it starts to the list it yields), then
    delivered once those children are stopped. A signal landing inside ``Popen``, after the fork, would leave a child
    the caller never holds, running on (rxf-rouge's ROUGE-1.5.5.pl outlived a Ctrl-C so, once in CI). Outside the
    main thread (where no handler can be set) the block runs unguarded."""
    started: list = []
    if threading.current_thread() is not threading.main_thread():
        yield started
        return
    received: List[int] = []
    here = os.getpid()

    def defer(signum, frame) -> None:
        if os.getpid() != here:  # a forked child not yet past its own handlers: it was told to stop
            os._exit(128 + signum)
        received.append(signum)

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) not in (signal.SIG_IGN, None):  # None: a handler not set from Python
            previous[sig] = signal.signal(sig, defer)
    try:
        yield started
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        for child in started:
            stop_child(child)
        signal.raise_signal(received[0])


class ForkedChild:
    """``target(*args)`` in a fork of this interpreter (multiprocessing's fork context), in its own process group:
    what is imported here already (fairseq, torch, the plugin) costs it nothing, which is the point. Its output goes to
    ``output_fd``, or to a pipe read through ``stdout``. Used as a ``subprocess.Popen``; its exit status is ``target``'s
    return value (0 for None), a ``SystemExit``'s, or 1 after an uncaught exception (its traceback in the output).
    Its exit, as a normal interpreter's, stops what the target left running (fairseq's data-loader workers)."""

    def __init__(
        self,
        target: Callable[..., Any],
        args: Sequence[Any] = (),
        output_fd: Optional[int] = None,
        cwd: Optional[str] = None,
        env: Optional[dict] = None,
    ):
        self.returncode: Optional[int] = None
        self.stdout = None
        read_end = None
        if output_fd is None:
            read_end, output_fd = os.pipe()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # or the child would write our buffered output a second time
        context = multiprocessing.get_context("fork")
        self._process = context.Process(target=_child, args=(target, args, output_fd, read_end, cwd, env))
        with interrupts_deferred() as started:
            # Blocked across the fork, unblocked by the child once its own handlers are set: a signal sent to the
            # child in between stays pending instead of reaching CPython's after-fork reset, which drops it (the
            # child then ran on until stop_child's SIGKILL, 10 s later). Ours is delivered on the way out.
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOPPING)
            try:
                self._process.start()
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            self.pid = self._process.pid
            started.append(self)
        if read_end is not None:
            os.close(output_fd)
            self.stdout = os.fdopen(read_end, "r", encoding="utf-8", errors="replace")

    def poll(self) -> Optional[int]:
        if self.returncode is None and not self._process.is_alive():
            self.returncode = self._process.exitcode
        return self.returncode

    def wait(self, timeout: Optional[float] = None) -> int:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired(f"forked child {self.pid}", timeout or 0)
        self.returncode = self._process.exitcode
        return self.returncode


def _child(target, args, output_fd: int, read_end: Optional[int], cwd: Optional[str], env) -> None:
    os.setsid()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # Slurm signals every process of a job step: SIGUSR2 (a time-limit warning, a preemption notice) is for the
    # parent's handler (submitit's checkpoint and requeue, which then stops this child), not a second copy of it here
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    signal.signal(signal.SIGCONT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOPPING)  # blocked by the parent across the fork
    if read_end is not None:
        os.close(read_end)
    os.dup2(output_fd, 1)
    os.dup2(output_fd, 2)
    if output_fd > 2:
        os.close(output_fd)
    sys.stdout = open(1, "w", encoding="utf-8", errors="replace", buffering=1, closefd=False)
    sys.stderr = open(2, "w", encoding="utf-8", errors="replace", buffering=1, closefd=False)
    if cwd:
        os.chdir(cwd)
    if env is not None:
        os.environ.clear()
        os.environ.update(env)
    code = target(*args)
    sys.exit(code if isinstance(code, int) else 0)


def stop_child(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM to the child's process group, SIGKILL after ``grace`` seconds; a finished child is left alone."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:  # a forked child that has not yet made its group; not reaped, so the pid is its
            try:
                os.kill(proc.pid, sig)
            except ProcessLookupError:
                return
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait)
            return


@contextlib.contextmanager
def children() -> Iterator[List[subprocess.Popen]]:
    """A list to append started children to; any still running when the block ends, however it ends, are stopped."""
    procs: List[subprocess.Popen] = []
    try:
        yield procs
    finally:
        for proc in procs:
            stop_child(proc)
