"""`rxf-run --launcher slurm` against a real single-node Slurm (tests/slurm/local_slurm.sh): a grid as one array at most
2 at a time with the local launcher's records, a requeue mid-run, a failed run, a cancelled job, two concurrent calls,
and fairseq-hydra-train's submitit launcher. Tiny RoBERTa runs on the CPU, one CPU per job."""

import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from rxf_repro import attempts, execution, outputs, process, runlock, runs, status
from tests.helpers import REPO, forked, hydra_tiny_run, rxf_run_argv

pytestmark = [pytest.mark.usefixtures("slurm_cluster"), pytest.mark.timeout(300)]
SLURM = ["--launcher", "slurm", "--cpus-per-run", "1", "--time-min", "10", "--poll-every", "0.5"]
SAME = ("metrics", "best_update", "valid_curve", "hparams", "seed", "task", "method")


def run_folder(save_root, seed=1):
    return save_root / "glue" / "rte" / "r3f" / "noise_type=uniform,r3f_lambda=1.0" / f"seed{seed}"


def rxf_run(*argv):
    """``rxf-run ARGV`` (its ``main``) in a fork of this process, as a user's own process: (exit status, stdout +
    stderr). What submitting does to its process (submitit's import, its executor) stays in the fork."""
    proc = forked(runs.main, ([str(a) for a in argv],), check=False)
    return proc.returncode, proc.stdout


def local_records(glue_bin, checkpoint, save_root, updates, seeds):
    execution.preload("fairseq_cli.train")
    proc = forked(runs.main, (rxf_run_argv(glue_bin, checkpoint, save_root, updates=updates, seeds=seeds),))
    assert proc.returncode == 0, proc.stdout[-3000:]


def record(folder):
    return json.loads((folder / "record.json").read_text())


def job_id(folder):
    return status.job_of(str(folder))


def wait_for(condition, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def slurm_state(job):
    out = subprocess.run(["squeue", "-h", "-t", "all", "-j", job, "-o", "%T"], capture_output=True, text=True).stdout
    return out.strip()


def status_of(save_root):
    code, out = rxf_run("status", str(save_root))
    assert code == 0, out
    return {line.split()[1]: line for line in out.splitlines() if not line.startswith("rxf-run status")}


def test_a_grid_runs_as_one_array_two_at_a_time_with_the_local_launchers_records(
    glue_bin, pretrained_roberta, tmp_path
):
    code, out = rxf_run(
        *rxf_run_argv(
            glue_bin,
            pretrained_roberta,
            tmp_path / "slurm",
            *SLURM,
            "--max-parallel",
            "2",
            "--wait",
            updates=6,
            seeds="1-4",
        )
    )
    assert code == 0, out[-4000:]
    assert "submitted 4 unit(s) as Slurm job array" in out and "(2 at a time)" in out
    assert "all 4 run(s) have their record" in out
    array = job_id(run_folder(tmp_path / "slurm")).split("_")[0]

    # Slurm's own account of the array (once accounting has caught up): four tasks, never more than two at once
    def accounted():
        command = ["sacct", "-n", "-P", "-X", "-j", array, "-o", "JobID,State,Start,End"]
        rows = subprocess.run(command, capture_output=True, text=True).stdout.split()
        return rows if len(rows) == 4 and all("|COMPLETED|" in r and "Unknown" not in r for r in rows) else None

    wait_for(accounted, 60, "sacct's account of the array")
    spans = [[datetime.fromisoformat(t).timestamp() for t in row.split("|")[2:]] for row in accounted()]
    assert max(sum(s <= t < e for s, e in spans) for t, _ in spans) <= 2, spans

    local_records(glue_bin, pretrained_roberta, tmp_path / "local", updates=6, seeds="1-4")
    for seed in range(1, 5):
        on_slurm, here = record(run_folder(tmp_path / "slurm", seed)), record(run_folder(tmp_path / "local", seed))
        assert {k: on_slurm[k] for k in SAME} == {k: here[k] for k in SAME}, seed
        assert len(on_slurm["attempts"]) == 1
    code, out = rxf_run(*rxf_run_argv(glue_bin, pretrained_roberta, tmp_path / "slurm", *SLURM, updates=6, seeds="1-4"))
    assert code == 0 and "nothing to submit" in out and out.count("done already") == 4, out


def test_a_job_requeued_mid_run_resumes_and_records_what_an_uninterrupted_run_records(
    glue_bin, pretrained_roberta, tmp_path
):
    argv = rxf_run_argv(glue_bin, pretrained_roberta, tmp_path / "slurm", *SLURM, updates=30)
    code, out = rxf_run(*argv)
    assert code == 0 and "follow: rxf-run status" in out, out
    folder = run_folder(tmp_path / "slurm")
    log = folder / "train.log"
    wait_for(lambda: log.exists() and "@ 6 updates" in log.read_text(), 120, "the save at update 6")
    subprocess.run(["scontrol", "requeue", job_id(folder)], check=True)
    again = rxf_run_argv(glue_bin, pretrained_roberta, tmp_path / "slurm", *SLURM, "--wait", updates=30)
    code, out = rxf_run(*again)  # the same command, with --wait: it follows the job it finds queued
    assert code == 0, out[-4000:]
    assert f"is in Slurm job {job_id(folder)} already" in out and "queued " in out and "done " in out, out
    on_slurm = record(folder)
    assert [a["resumed"] for a in on_slurm["attempts"]] == [False, True], on_slurm["attempts"]
    local_records(glue_bin, pretrained_roberta, tmp_path / "local", updates=30, seeds="1")
    here = record(run_folder(tmp_path / "local"))
    assert {k: on_slurm[k] for k in SAME} == {k: here[k] for k in SAME}
    assert len(here["valid_curve"]) >= 10 and "loss" in here["metrics"]  # every 3 updates, compared above


def test_a_job_warned_with_usr2_checkpoints_requeues_itself_and_resumes(glue_bin, pretrained_roberta, tmp_path):
    """SIGUSR2 is what submitit has Slurm send before the time limit (--signal=USR2@90), and a preemption notice:
    submitit's handler calls RunJob.checkpoint and requeues the job, whose next execution resumes the run."""
    argv = rxf_run_argv(glue_bin, pretrained_roberta, tmp_path / "slurm", *SLURM, updates=30)
    code, out = rxf_run(*argv)
    assert code == 0, out
    folder = run_folder(tmp_path / "slurm")
    log = folder / "train.log"
    wait_for(lambda: log.exists() and "@ 6 updates" in log.read_text(), 120, "the save at update 6")
    job = job_id(folder)
    subprocess.run(["scancel", "--signal=USR2", job], check=True)  # to the job's steps: submitit's python
    again = rxf_run_argv(glue_bin, pretrained_roberta, tmp_path / "slurm", *SLURM, "--wait", updates=30)
    code, out = rxf_run(*again)
    assert code == 0, out[-4000:]
    attempts_ = record(folder)["attempts"]
    assert [a["resumed"] for a in attempts_] == [False, True] and attempts_[0]["exit"] is None, attempts_
    text = Path(outputs.read_note(str(folder), runlock.JOB_NAME)["stderr"]).read_text()
    assert "Caught signal SIGUSR2" in text and "Calling checkpoint method" in text, text[-3000:]
    assert "DEBUG:filelock" not in text  # no lock chatter in a job's log


def test_a_failed_run_and_a_cancelled_job_say_so_in_status(glue_bin, pretrained_roberta, tmp_path):
    not_a_checkpoint = tmp_path / "model.pt"
    not_a_checkpoint.write_text("not a checkpoint\n")
    failing = rxf_run_argv(glue_bin, not_a_checkpoint, tmp_path / "runs", *SLURM, "--wait", updates=6, seeds="1")
    long = rxf_run_argv(glue_bin, pretrained_roberta, tmp_path / "runs", *SLURM, updates=5000, seeds="2")
    code, out = rxf_run(*long)
    assert code == 0, out
    cancelled = run_folder(tmp_path / "runs", 2)
    code, out = rxf_run(*failing)
    assert code == 1 and "1 of 1 run(s) have no record" in out, out[-3000:]
    failed = run_folder(tmp_path / "runs", 1)
    wait_for(lambda: (cancelled / "train.log").exists(), 120, "the long run to start")
    subprocess.run(["scancel", job_id(cancelled)], check=True)
    wait_for(lambda: slurm_state(job_id(cancelled)) == "CANCELLED", 60, "the cancellation")
    lines = status_of(tmp_path / "runs")
    assert lines[str(failed)].startswith("failed ") and f"log: {failed / 'train.log'}" in lines[str(failed)], lines
    assert "UnsafeCheckpointError: refused to load checkpoint" in lines[str(failed)]
    assert lines[str(cancelled)].startswith("interrupted ") and "CANCELLED" in lines[str(cancelled)], lines


def test_two_concurrent_calls_train_each_run_once(glue_bin, pretrained_roberta, tmp_path):
    argv = rxf_run_argv(glue_bin, pretrained_roberta, tmp_path / "runs", *SLURM, "--wait", updates=6, seeds="1-2")
    with process.children() as running:
        calls = [process.ForkedChild(runs.main, (argv,)) for _ in range(2)]
        running.extend(calls)
        outputs = [call.stdout.read() for call in calls]
        codes = [call.wait() for call in calls]
    assert codes == [0, 0], outputs
    for seed in (1, 2):
        text = (run_folder(tmp_path / "runs", seed) / "train.log").read_text()
        assert text.count(f"{attempts.HEADER}1 (fresh)") == 1 and f"{attempts.HEADER}2 " not in text
        assert len(record(run_folder(tmp_path / "runs", seed))["attempts"]) == 1


def test_fairseq_hydra_train_multirun_on_slurm_through_submitit(toy_data, tmp_path):
    """Hydra's own path: fairseq-hydra-train --multirun with hydra-submitit-launcher, two settings, two run folders."""
    command = [
        os.path.join(os.path.dirname(sys.executable), "fairseq-hydra-train"),
        "--multirun",
        "--config-dir",
        os.path.join(REPO, "configs", "glue"),
        "--config-name",
        "rte",
        "method=r3f",
        "hydra/launcher=submitit_slurm",
        "hydra.launcher.timeout_min=10",
        "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.gpus_per_node=0",
        "criterion.r3f_lambda=0.5,1.0",
        "criterion.noise_type=uniform",
        *hydra_tiny_run(toy_data["cls"]),
    ]
    proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    for number, value in ((0, "0.5"), (1, "1.0")):
        folder = tmp_path / "multirun" / str(number)
        assert f"criterion.r3f_lambda={value}" in (folder / ".hydra" / "overrides.yaml").read_text()
        assert (folder / "checkpoints" / "checkpoint_last.pt").exists(), sorted(os.listdir(folder))
