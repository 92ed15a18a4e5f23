"""The documented commands at tiny size, run cheaply: what ``tests/e2e/test_docs.py`` puts on PATH (and in ``$PYTHON``).

``python tests/doc_tools.py fairseq-train ARGS...`` runs ``fairseq-train ARGS...`` exactly as documented, plus what
makes it run on a CPU in seconds: ``--fp16``/``--bf16`` dropped (they do not run on a CPU) and ``--cpu`` added, the
documented ``--arch`` (roberta_large, bart_large) at the tests' tiny size (the tiny stand-in checkpoints have that
size), two updates. Everything else (data paths, --user-dir, criteria, tasks, restore files, save dirs, decoding
options) is the documented command's own, so a documented command that breaks fails here too. The same for the
project's console scripts (``rxf-run``, ``rxf-report``, ``rxf-rouge``, ...) and for ``$PYTHON -m rxf_repro.X``/
``rxf_fairseq.X`` (what ``preprocess/*.sh`` and ``run_scripts/*.sh`` ``exec``), unchanged but for one thing: a
pipeline's ``--workers N`` runs with one process. Its outputs do not depend on N (one process against two:
``test_rerun_is_idempotent_and_usage_is_printed`` in ``tests/integration/test_preprocess_glue.py``,
``test_xnli_zero_shot_splits_per_language`` in ``test_preprocess_xnli.py``,
``test_reddit_tifu_hash_split_is_deterministic_and_documented`` in ``test_preprocess_summarization.py``), and the
documented eight, each a fork of the test process, cost the docs' tests 54 s more on two cores (64 s against 10 s for
data.md's blocks and README's). Any other ``python`` command (``python -c CODE``, ``python FILE.py``) is ``exec``-ed
in a fresh interpreter, as documented: in a fork of the test process it would see what the tests imported, and a
documented ``python -c "import rxf_fairseq; ..."`` would pass with its import left out (fresh, each of the two
``python -c`` blocks costs about 3 s more; ``examples/hf_glue.py`` is no slower).

Where a served command runs: with ``$RXF_DOC_TOOLS`` naming a ``ToolServer``'s socket (``test_docs.py`` serves one
while a block runs), in a fork of the test process, which has fairseq and the project imported already (a fresh
interpreter importing fairseq costs 5-7 s, each of a document's two dozen commands): its own process group, the
command's working directory, environment, stdin, stdout and stderr, and its exit status (``rxf-run``'s way of
running fairseq, ``rxf_repro.process.ForkedChild`` with ``rxf_repro.execution.fairseq_main``). What the test process
imported hides nothing here, since each of these tools imports what it uses itself (a fairseq tool its ``cli_main``, a
console script its entry point, ``-m`` its module). What a fork does not reproduce: ``atexit`` handlers (a fork ends
with ``os._exit``), the locale's stream encoding (its streams are UTF-8, undecodable bytes replaced, whatever
``LANG`` says), an uncaught Ctrl-C's exit status 130 (a fork reports 1, with the traceback), and fairseq's registries
as a fresh tool finds them: the plugin's criteria, tasks and architectures are registered in the test process, so a
fairseq command that left out ``--user-dir rxf_fairseq`` would still find them (``test_docs.py`` checks that every
documented one names it). Without
``$RXF_DOC_TOOLS``, the real tool is ``exec``-ed in a fresh interpreter.
"""

import contextlib
import json
import os
import signal
import socket
import sys
from typing import List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tests.helpers import HYDRA_TINY_ROBERTA, TINY_BART, TINY_ROBERTA, USER_DIR  # noqa: E402

# the tests' tiny sizes, with room for the docs' sentences (byte-level toy BPE: a token per character or so)
DOC_ROBERTA = TINY_ROBERTA + ["--max-positions", "512"]
DOC_BART = TINY_BART + ["--max-source-positions", "512", "--max-target-positions", "512"]
UPDATES = ["--max-update", "2", "--total-num-update", "2", "--warmup-updates", "1"]
HYDRA_TINY = [o for o in HYDRA_TINY_ROBERTA if "max_positions" not in o] + [
    "+model.max_positions=512",
    "task.max_positions=512",
    "common.cpu=true",
    "common.fp16=false",
    "optimization.max_update=2",
    "lr_scheduler.total_num_update=2",
    "lr_scheduler.warmup_updates=1",
    "dataset.max_tokens=2000",
]
# a --multirun sweep of the whole grid is 8 trainings: two settings show the sweep, its folders and its paths
HYDRA_SWEEP = ['hydra.sweeper.params={criterion.r3f_lambda:"0.1,5.0",criterion.noise_type:uniform}']

FAIRSEQ_TOOLS = ("fairseq-train", "fairseq-hydra-train", "fairseq-generate", "fairseq-validate")
PYTHON = "python"  # on PATH and in $PYTHON: `-m rxf_repro.X`/`rxf_fairseq.X` served, the rest exec-ed
SERVED_PACKAGES = ("rxf_repro.", "rxf_fairseq.")
SOCKET = "RXF_DOC_TOOLS"


def last_value(argv: List[str], flag: str):
    values = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == flag]
    return values[-1] if values else None


def tiny(tool: str, argv: List[str]) -> List[str]:
    if tool == "fairseq-hydra-train":
        return argv + HYDRA_TINY + (HYDRA_SWEEP if "--multirun" in argv or "-m" in argv else [])
    if "--help" in argv or "-h" in argv:
        return argv
    out = [a for a in argv if a not in ("--fp16", "--bf16", "--memory-efficient-fp16")] + ["--cpu"]
    arch = last_value(argv, "--arch")
    if arch in ("roberta_large", "roberta_base"):
        out += DOC_ROBERTA
    elif arch in ("bart_large", "bart_base"):
        out += DOC_BART
    if tool == "fairseq-train" and "--help" not in argv:
        out += UPDATES + ["--num-workers", "0"]
    return out


def one_worker(argv: List[str]) -> List[str]:
    """A pipeline's arguments with ``--workers N`` as ``--workers 1``."""
    return [("1" if i and argv[i - 1] == "--workers" else a) for i, a in enumerate(argv)]


# ------------------------------------------------------------------------------------------ the client (a shim)


def ask_server(kind: str, name: str, argv: List[str]) -> int:
    """Have the test process run the command in a fork with our stdin, stdout and stderr; its exit status."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(os.environ[SOCKET])
        socket.send_fds(sock, [b"x"], [0, 1, 2])
        request = {"kind": kind, "name": name, "argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}
        sock.sendall(json.dumps(request).encode())
        sock.shutdown(socket.SHUT_WR)
        reply = b""  # a status line, not the connection's end: that waits on every process holding the connection
        while not reply.endswith(b"\n") and (chunk := sock.recv(64)):
            reply += chunk
    if not reply.endswith(b"\n"):
        print(f"doc_tools: {name}: no exit status from the test process (it stopped serving)", file=sys.stderr)
        return 1
    code = int(reply)
    return 128 - code if code < 0 else code  # killed by a signal: the shell's 128 + N


def main() -> None:
    tool, argv = sys.argv[1], sys.argv[2:]
    served = bool(os.environ.get(SOCKET))
    if tool == PYTHON:
        if served and len(argv) > 1 and argv[0] == "-m" and argv[1].startswith(SERVED_PACKAGES):
            sys.exit(ask_server("module", argv[1], argv[2:]))
        os.execv(sys.executable, [sys.executable, *argv])
    if served:
        sys.exit(ask_server("fairseq" if tool in FAIRSEQ_TOOLS else "script", tool, argv))
    real = os.path.join(os.path.dirname(sys.executable), tool)
    os.execv(real, [real, *(tiny(tool, argv) if tool in FAIRSEQ_TOOLS else argv)])


# ------------------------------------------------------------------------------------------ the server (in the test)


def _known_user_dir(argv: List[str]) -> None:
    """fairseq imports ``--user-dir DIR`` unless a module of that name is imported from that very path, and refuses
    the name otherwise: the docs' ``rxf_fairseq`` (a link to the plugin, imported here already) is that module."""
    from fairseq import utils

    memo = getattr(utils.import_user_module, "memo", set())
    utils.import_user_module.memo = memo
    named = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--user-dir"]
    named += [a.split("=", 1)[1] for a in argv if a.startswith("common.user_dir=")]
    for path in named:
        if os.path.realpath(path) == os.path.realpath(USER_DIR):
            memo.add(os.path.abspath(path))


def _run(request: dict, fds: List[int], inherited: List[socket.socket]) -> int:
    """In the fork: none of the server's sockets, the client's stdin and stdout (its stderr is already ours), then the
    command. A fork holding another command's connection would keep that command's shim waiting, and with it the
    pipe the shim writes: ``A | B`` would never end."""
    import importlib.metadata
    import runpy

    for sock in inherited:
        sock.close()
    os.dup2(fds[0], 0)
    os.dup2(fds[1], 1)
    for fd in set(fds[:2]) - {0, 1, 2}:
        os.close(fd)
    sys.stdin = open(0, encoding="utf-8", errors="replace", closefd=False)
    kind, name, argv = request["kind"], request["name"], request["argv"]
    if kind == "fairseq":
        from rxf_repro import execution

        _known_user_dir(argv)
        return execution.fairseq_main("fairseq_cli." + name[len("fairseq-") :].replace("-", "_"), tiny(name, argv))
    if kind == "module":
        sys.argv = [name, *(one_worker(argv) if name.startswith("rxf_repro.data.") else argv)]
        runpy.run_module(name, run_name="__main__", alter_sys=True)
        return 0
    (entry,) = importlib.metadata.entry_points(group="console_scripts", name=name)
    sys.argv = [name, *argv]
    raise SystemExit(entry.load()())  # the wrapper's sys.exit(main()): None 0, an int itself, else printed and 1


class ToolServer:
    """Runs the shims' commands in forks of this process, for as long as a block's shell runs (``serve``)."""

    def __init__(self) -> None:
        import tempfile

        self.folder = tempfile.mkdtemp(prefix="rxf-doc-")  # a short path: a socket's must fit in 108 bytes
        self.path = os.path.join(self.folder, "socket")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(8)
        self.running: list = []  # (connection, child)
        self.served: List[str] = []  # the names of the commands served, in order (the harness's own test)

    def _start(self, conn: socket.socket) -> None:
        from rxf_repro import process

        _, fds, _, _ = socket.recv_fds(conn, 16, 3)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
        request = json.loads(data)
        self.served.append(request["name"])
        try:
            inherited = [self.listener, conn, *(running for running, _ in self.running)]
            child = process.ForkedChild(
                _run, (request, fds, inherited), output_fd=fds[2], cwd=request["cwd"], env=request["env"]
            )
        finally:
            for fd in fds:
                os.close(fd)
        self.running.append((conn, child))

    def _reap(self) -> None:
        for conn, child in list(self.running):
            if child.poll() is not None:
                with contextlib.suppress(OSError):  # a client that is gone (its shell was stopped) needs no status
                    conn.sendall(f"{child.returncode}\n".encode())
                conn.close()
                self.running.remove((conn, child))

    def serve(self, shell, timeout: float) -> None:
        """Serve until ``shell`` (a ``subprocess.Popen`` started in its own session) has ended and so has every
        command it asked for; past ``timeout`` seconds, or on any error, stop them all and raise. Whatever the shell
        started that still runs (a command not served, a background job) is killed with its process group."""
        import select
        import subprocess
        import time

        from rxf_repro import process

        deadline = time.monotonic() + timeout
        try:
            while True:
                self._reap()
                if shell.poll() is not None and not self.running:
                    return
                if time.monotonic() > deadline:
                    raise subprocess.TimeoutExpired(shell.args, timeout)
                if select.select([self.listener], [], [], 0.02)[0]:
                    self._start(self.listener.accept()[0])
        finally:
            with contextlib.suppress(ProcessLookupError):  # none of the group is left
                os.killpg(shell.pid, signal.SIGKILL)
            shell.wait()
            for conn, child in self.running:  # each fork is its own session
                process.stop_child(child, grace=2.0)
                conn.close()
            self.running.clear()

    def close(self) -> None:
        import shutil

        self.listener.close()
        shutil.rmtree(self.folder, ignore_errors=True)


if __name__ == "__main__":
    main()
