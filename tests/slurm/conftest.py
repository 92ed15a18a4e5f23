"""``slurm_cluster``: a real single-node Slurm cluster on localhost (``tests/slurm/local_slurm.sh``), up once per test
run and down once at its end.

Under pytest-xdist the first worker to ask brings the cluster up, under a file lock in the run's shared temp folder,
while the others wait; every worker then reads the same outcome (the cluster's SLURM_CONF, a skip, or a failure), so
a cluster that cannot come up is tried once per run, not once per worker. A cluster this run brought up is brought
down once every worker is done: each worker counts itself out in ``pytest_sessionfinish`` and the last one runs
``local_slurm.sh down``. (The xdist controller cannot do it: it collects no tests, so it loads this conftest only when
tests/slurm is named on the command line.) Without xdist the single process brings it down at its session's end. A
cluster that was already up when the run started (a developer's) is left up."""

import fcntl
import json
import os
import subprocess
from pathlib import Path

import filelock
import pytest

SCRIPT = Path(__file__).with_name("local_slurm.sh")
CANNOT_SET_UP = 3  # local_slurm.sh: "cannot set up here" (not root, no Slurm and no apt-get, another Slurm running)
UP_TIMEOUT_S = 600  # a fresh machine installs Slurm, munge and MariaDB first (~10-20 s here, from a warm apt cache)
DOWN_TIMEOUT_S = 120
OUTCOME, BROUGHT_UP, FINISHED = "slurm-cluster.json", "slurm-cluster.brought-up", "slurm-cluster.finished"

_brought_up_here = False  # this process brought the cluster up (the single-process path's teardown)


def _shared_folder(basetemp: Path) -> Path:
    """This run's temp folder shared by every worker: a worker's basetemp is the controller's basetemp/popen-gwN."""
    return basetemp.parent if os.environ.get("PYTEST_XDIST_WORKER") else basetemp


def _script(command: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SCRIPT), command], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
    )


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _bring_up() -> dict:
    """Run ``local_slurm.sh up`` unless the cluster is up already: ``conf`` and whether this run brought it up, or
    ``skip`` (the script's one line), or ``error``."""
    already_up = _script("status", 60).returncode == 0
    try:
        result = _script("up", UP_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:  # its stderr is bytes, text=True or not
        stderr = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else e.stderr or ""
        return {"error": f"local_slurm.sh up ran past {UP_TIMEOUT_S}s:\n{_tail(stderr)}"}
    if result.returncode == CANNOT_SET_UP:
        return {"skip": _tail(result.stderr, 1) or "local_slurm.sh cannot set up a cluster here"}
    confs = [line[len("SLURM_CONF=") :] for line in result.stdout.splitlines() if line.startswith("SLURM_CONF=")]
    if result.returncode != 0 or not confs:
        return {"error": f"local_slurm.sh up failed (exit {result.returncode}):\n{_tail(result.stderr)}"}
    return {"conf": confs[-1], "brought_up": not already_up}


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory) -> str:
    """The SLURM_CONF path of a running single-node cluster (partition ``debug``, node ``localhost``, accounting on);
    also set in ``os.environ``, so sbatch, squeue and sacct, here and in every child process, use it."""
    global _brought_up_here
    shared = _shared_folder(tmp_path_factory.getbasetemp())
    with filelock.FileLock(str(shared / "slurm-cluster.lock")):
        outcome_file = shared / OUTCOME
        if not outcome_file.exists():
            outcome = _bring_up()
            if outcome.get("brought_up"):
                (shared / BROUGHT_UP).touch()
                _brought_up_here = True
            outcome_file.write_text(json.dumps(outcome))
        outcome = json.loads(outcome_file.read_text())
    if "skip" in outcome:
        pytest.skip(outcome["skip"])
    if "error" in outcome:
        pytest.fail(outcome["error"], pytrace=False)
    os.environ["SLURM_CONF"] = outcome["conf"]
    return outcome["conf"]


def _bring_down() -> None:
    try:
        result = _script("down", DOWN_TIMEOUT_S)
        failed = result.returncode != 0 and f"exit {result.returncode}:\n{_tail(result.stderr)}"
    except subprocess.TimeoutExpired:
        failed = f"it ran past {DOWN_TIMEOUT_S}s"
    if failed:
        print(f"\nlocal_slurm.sh down failed ({failed}); run `{SCRIPT} down` by hand", flush=True)


def pytest_sessionfinish(session):
    config = session.config
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        if config.pluginmanager.has_plugin("dsession"):
            return  # the xdist controller: its workers bring the cluster down
        if _brought_up_here:
            _bring_down()
        return
    # an xdist worker: count this worker out; the last one brings down a cluster this run brought up
    # (a plain flock, not filelock: its debug log lines would reach the terminal, no capture at session end)
    shared = Path(config.option.basetemp).resolve().parent
    with open(shared / FINISHED, "a+") as finished:
        fcntl.flock(finished, fcntl.LOCK_EX)
        finished.seek(0)
        count = len(finished.read().split()) + 1
        finished.write(f"{workerinput['workerid']}\n")
        finished.flush()
        last = count >= workerinput["workercount"]
        if last and (shared / BROUGHT_UP).exists():
            (shared / BROUGHT_UP).unlink()
            _bring_down()
