"""The local cluster of ``slurm_cluster`` behaves the way the project relies on: batch jobs finish and are accounted
(sacct), job arrays respect their concurrency limit, and a requeued job runs again under the same id with
SLURM_RESTART_COUNT set."""

import os
import subprocess
import time
from pathlib import Path
from typing import Callable, Dict

import pytest

pytestmark = pytest.mark.timeout(120)

ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL"}


def _run(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def _sbatch(*args: str) -> str:
    """Submit a job (1 CPU, 5 minutes at most); its id."""
    return _run("sbatch", "--parsable", "--cpus-per-task=1", "--time=5", *args).strip().split(";")[0]


def _states(job: str) -> Dict[str, str]:
    """sacct's state of each of the job's allocations (an array's tasks as ``ID_N``), ``CANCELLED by 0`` as
    ``CANCELLED``."""
    lines = _run("sacct", "-j", job, "-n", "-P", "-X", "-o", "JobID,State").splitlines()
    return {job_id: state.split()[0] for job_id, state in (line.split("|") for line in lines if line)}


def _ended(job: str, allocations: int = 1) -> bool:
    """All ``allocations`` of the job (1, or an array's task count) are in sacct and have ended."""
    states = _states(job)
    return len(states) == allocations and set(states.values()) <= ENDED


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}", pytrace=False)
        time.sleep(0.5)


def test_batch_job_completes_and_is_accounted(slurm_cluster, tmp_path):
    out = tmp_path / "job.out"
    job = _sbatch("--output", str(out), "--wrap", "echo hello from $SLURM_JOB_ID")
    _wait(lambda: _ended(job), f"job {job} to end")
    assert _states(job) == {job: "COMPLETED"}
    assert out.read_text() == f"hello from {job}\n"


def test_job_array_runs_at_most_two_tasks_at_once(slurm_cluster, tmp_path):
    # each task records when it started and ended (seconds since the epoch)
    script = f"date +%s.%N > {tmp_path}/$SLURM_ARRAY_TASK_ID.start; sleep 2; date +%s.%N > {tmp_path}/$SLURM_ARRAY_TASK_ID.end"
    job = _sbatch("--array=0-3%2", "--output", "/dev/null", "--wrap", script)
    _wait(lambda: _ended(job, 4), f"array {job} to end", 90)
    assert _states(job) == {f"{job}_{i}": "COMPLETED" for i in range(4)}
    spans = [tuple(float((tmp_path / f"{i}.{end}").read_text()) for end in ("start", "end")) for i in range(4)]
    most = max(sum(start <= t < end for start, end in spans) for t, _ in spans)
    assert most <= 2, f"{most} tasks ran at once: {spans}"


def test_requeued_job_runs_again_with_restart_count(slurm_cluster, tmp_path):
    out = tmp_path / "job.out"
    script = 'echo "job=$SLURM_JOB_ID restart=${SLURM_RESTART_COUNT:-0}"; sleep 300'
    job = _sbatch("--requeue", "--open-mode=append", "--output", str(out), "--wrap", script)
    try:
        _wait(lambda: out.exists() and "restart=0" in out.read_text(), f"job {job} to start")
        _run("scontrol", "requeue", job)
        # cred_expire=10 and a 2 s scheduling interval: it runs again ~12 s later
        _wait(lambda: "restart=1" in out.read_text(), f"job {job} to run again", 90)
        lines = [line for line in out.read_text().splitlines() if line.startswith("job=")]
        assert lines == [f"job={job} restart=0", f"job={job} restart=1"]
    finally:
        subprocess.run(["scancel", job], check=False)
    _wait(lambda: _ended(job), f"job {job} to end after scancel")


def test_fixture_exports_slurm_conf(slurm_cluster):
    assert os.environ["SLURM_CONF"] == slurm_cluster
    assert Path(slurm_cluster).is_file()
