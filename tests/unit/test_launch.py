"""What `--launcher slurm` and `rxf-run status` decide, without a cluster: the run lock, each state `status` reads from a
run folder (Slurm's answers from a stand-in `squeue` on PATH), the units a plan submits, the sbatch options, and the
modes of what rxf-run writes. The same against a real Slurm: tests/slurm/."""

import json
import multiprocessing
import os
import stat
import time

import pytest

from rxf_repro import attempts, records, runlock, runs, slurm, status
from rxf_repro.execution import Executor, Planned, RunSpec
from tests.helpers import call_main

ATTEMPT_FAILED = (
    attempts.header(1, time.time(), "python -m fairseq_cli.train ...", resumed=False)
    + "2026-12-06 10:00:00 | INFO | fairseq_cli.train | start\n"
    + "RuntimeError: Error(s) in loading state_dict for RobertaModel\n"
    + attempts.footer(1, 1, 3.0)
)
ATTEMPT_KILLED = attempts.header(1, time.time(), "python -m fairseq_cli.train ...", resumed=False) + "| epoch 001 |\n"


def hold_for(folder, seconds, ready):
    with runlock.holding(folder) as held:
        assert held
        ready.set()
        time.sleep(seconds)


@pytest.fixture
def held(tmp_path):
    """A run folder whose lock another process holds for 30 s (stopped at the end of the test)."""
    folder = tmp_path / "runs" / "glue" / "rte" / "r3f" / "default" / "seed1"
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    holder = context.Process(target=hold_for, args=(str(folder), 30, ready))
    holder.start()
    assert ready.wait(20)
    yield folder, holder.pid
    holder.kill()
    holder.join()


def test_a_held_run_is_skipped_with_its_holder_named_and_free_once_the_holder_is_gone(held):
    folder, pid = held
    with runlock.holding(str(folder)) as mine:
        assert mine is False
    owner = runlock.held_by_another(str(folder))
    assert owner["pid"] == pid and f"pid {pid} on " in runlock.owner_text(owner)
    executor = Executor()
    spec = RunSpec("[glue] RTE r3f seed 1", str(folder), ["python", "-m", "fairseq_cli.train"], {}, {}, None)
    assert executor.run(spec) is None and executor.tally["trained elsewhere"] == 1
    os.kill(pid, 9)
    deadline = time.time() + 10
    while runlock.held_by_another(str(folder)) is not None and time.time() < deadline:
        time.sleep(0.05)
    assert runlock.held_by_another(str(folder)) is None  # the kernel let go with the process: no stale lock


def fake_squeue(tmp_path, monkeypatch, states, sacct=None):
    """``squeue`` (and ``sacct``) on PATH answering ``JOB|STATE`` lines for the job ids given."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    lines = "\n".join(f"{job}|{state}" for job, state in states.items())
    (bin_dir / "squeue").write_text(f"#!/bin/sh\nprintf '%s\\n' '{lines}'\n")
    (bin_dir / "sacct").write_text("#!/bin/sh\nexit 1\n" if sacct is None else f"#!/bin/sh\nprintf '%s\\n' '{sacct}'\n")
    for tool in ("squeue", "sacct"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")


def job_marker(folder, job, stderr=None):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / runlock.JOB_NAME).write_text(json.dumps({"job_id": job, "stderr": str(stderr)}))


def status_lines(save_root):
    proc = call_main(runs.main, ["status", save_root], "rxf-run")
    assert proc.returncode == 0, proc.stderr
    return {line.split()[1]: line for line in proc.stdout.splitlines()}, proc.stderr


def test_status_reads_every_state_from_the_folders_and_slurm(tmp_path, monkeypatch, held):
    root = tmp_path / "runs"
    done = root / "glue" / "rte" / "r3f" / "default" / "seed2"
    done.mkdir(parents=True)
    records.write_record(  # a minimal valid record
        str(done / "record.json"),
        dict(kind="glue", task="RTE", method="r3f", seed=2, hparams={}, metrics={"accuracy": 60.0}, best_update=3),
    )
    failed = root / "glue" / "rte" / "r3f" / "default" / "seed3"
    failed.mkdir()
    (failed / "train.log").write_text(ATTEMPT_FAILED)
    killed = root / "glue" / "rte" / "r3f" / "default" / "seed4"
    killed.mkdir()
    (killed / "train.log").write_text(ATTEMPT_KILLED)
    queued, cancelled = (
        root / "glue" / "rte" / "r3f" / "default" / "seed5",
        root / "glue" / "rte" / "r3f" / "default" / "seed6",
    )
    job_marker(queued, "41_0")
    job_marker(cancelled, "41_1")
    (cancelled / "train.log").write_text(ATTEMPT_KILLED)
    crashed_log = tmp_path / "41_2_log.err"
    crashed_log.write_text(  # as a submitit job's log ends when rxf-run failed before its run
        "rxf-run: error: --data x/RTE-bin: no input0/dict.txt there; make the data with preprocess/glue.sh\n"
        "submitit ERROR (2026-12-06 15:32:31,016) - Submitted job triggered an exception\n"
        "Traceback (most recent call last):\n"
        '  File "<frozen runpy>", line 198, in _run_module_as_main\n'
        "rxf_repro.cli.UserError: rxf-run exited 1 for /runs/x: see this job's log\n"
    )
    crashed = root / "glue" / "rte" / "r3f" / "default" / "seed7"
    job_marker(crashed, "41_2", crashed_log)
    # a protocol whose job runs: its steps are one unit, the root's (lock and job)
    protocol = root / "probing" / "degradation" / "r3f" / "default" / "seed1"
    job_marker(protocol, "42_0")
    (protocol / "step0-SST-2").mkdir()
    (protocol / "step0-SST-2" / "train.log").write_text(ATTEMPT_KILLED)
    fake_squeue(tmp_path, monkeypatch, {"41_0": "PENDING", "41_1": "CANCELLED", "41_2": "FAILED", "42_0": "RUNNING"})

    lines, summary = status_lines(str(root))
    folder, _ = held
    assert lines[str(folder)].startswith("running ") and "pid " in lines[str(folder)]
    assert lines[str(done)].split() == ["done", str(done)]
    assert (
        lines[str(failed)].startswith("failed ")
        and "RuntimeError: Error(s) in loading state_dict" in lines[str(failed)]
    )
    assert f"(log: {failed / 'train.log'})" in lines[str(failed)]
    assert lines[str(killed)].startswith("interrupted ") and "attempt 1 killed" in lines[str(killed)]
    assert lines[str(queued)].startswith("queued ") and "Slurm job 41_0: PENDING" in lines[str(queued)]
    assert lines[str(cancelled)].startswith("interrupted ") and "41_1: CANCELLED" in lines[str(cancelled)]
    assert lines[str(crashed)].startswith("failed ") and "rxf-run: error: --data x/RTE-bin" in lines[str(crashed)]
    assert str(crashed_log) in lines[str(crashed)]
    step = protocol / "step0-SST-2"
    assert lines[str(step)].startswith("running ") and "Slurm job 42_0: RUNNING" in lines[str(step)]
    assert str(protocol) not in lines  # its step folder stands for it
    assert "1 done, 2 running, 1 queued, 2 failed, 2 interrupted" in summary


def test_status_without_slurm_accounting_falls_back_to_the_logs(tmp_path, monkeypatch):
    """squeue no longer knows the job and sacct fails (no slurmdbd): the run's own log says what happened."""
    root = tmp_path / "runs"
    run = root / "glue" / "rte" / "r3f" / "default" / "seed1"
    job_marker(run, "7_0")
    (run / "train.log").write_text(ATTEMPT_FAILED)
    fake_squeue(tmp_path, monkeypatch, {})
    lines, _ = status_lines(str(root))
    assert lines[str(run)].startswith("failed ") and "loading state_dict" in lines[str(run)]
    assert status.job_states(["7_0"]) == {}
    fake_squeue(tmp_path, monkeypatch, {}, sacct="7_[0-2%1]|PENDING")  # an array's tasks not yet started
    assert status.job_states(["7_0", "7_2"]) == {"7_0": "PENDING", "7_2": "PENDING"}


def spec_at(folder, name=records.RECORD_NAME):
    return RunSpec("label", str(folder), ["python", "-m", "fairseq_cli.train"], {}, {}, None, record_name=name)


def test_only_units_that_need_a_job_are_submitted(tmp_path, monkeypatch, held):
    root = tmp_path / "runs"
    done, todo, queued = (root / f"seed{i}" for i in (1, 2, 3))
    for folder in (done, todo, queued):
        folder.mkdir(parents=True)
    (done / "record.json").write_text("{}")
    job_marker(queued, "9_0")
    fake_squeue(tmp_path, monkeypatch, {"9_0": "RUNNING"})
    folder, _ = held
    plan = [Planned(str(f), spec_at(f), (f / "record.json").exists()) for f in (done, todo, queued, folder)]
    assert slurm.to_submit(slurm.units_of(plan)) == [str(todo)]


def test_a_protocol_is_planned_as_one_unit_per_seed_and_runs_are_units_of_their_own():
    common = ["--data", "/data/glue-bin", "--checkpoint", "/m.pt", "--launcher", "slurm", "--dry-run"]
    proc = call_main(runs.main, ["probe", "retention", "r3f", "--seeds", "1-2", "--cycles", "2", *common], "rxf-run")
    assert proc.returncode == 0, proc.stderr
    assert "would submit 2 unit(s) as one Slurm job array" in proc.stderr
    proc = call_main(runs.main, ["glue", "RTE", "r3f", "--seeds", "1-3", "--sweep", *common], "rxf-run")
    assert "would submit 24 unit(s)" in proc.stderr, proc.stderr


def test_sbatch_options_and_their_checks():
    parser = runs.build_parser()
    base = ["glue", "RTE", "r3f", "--data", "d", "--checkpoint", "c", "--launcher", "slurm"]
    args = parser.parse_args([*base, "--num-gpus", "2", "--max-parallel", "3", "--slurm-set", "account=nlp"])
    args.family = "glue"
    params = slurm.sbatch_parameters(args, 10)
    assert params["gpus_per_node"] == 2 and params["slurm_array_parallelism"] == 3 and params["tasks_per_node"] == 1
    assert params["slurm_additional_parameters"] == {"requeue": True, "account": "nlp"}
    assert params["timeout_min"] == slurm.TIME_MIN and "slurm_partition" not in params
    cpu = parser.parse_args([*base, "--cpu", "--partition", "debug", "--time-min", "5", "--mem-gb", "4"])
    params = slurm.sbatch_parameters(cpu, 1)
    assert "gpus_per_node" not in params and params["slurm_partition"] == "debug" and params["mem_gb"] == 4
    assert slurm.slurm_set("requeue=") == {"requeue": True} and slurm.slurm_set("qos=high") == {"qos": "high"}
    for bad, message in (
        (["--slurm-set", "partition=x"], "use --partition instead"),
        (["--slurm-set", "mem-per-cpu=4G"], "use --mem-gb instead"),
        (["--slurm-set", "signal=USR1@60"], "rxf-run sets --signal itself"),
        (["--slurm-set", "qos"], "expected KEY=VALUE"),
        (["--gpus-per-run", "-1"], "must be >= 0"),
    ):
        proc = call_main(runs.main, [*base, *bad], "rxf-run")
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    proc = call_main(runs.main, [*base[:-2], "--max-parallel", "2"], "rxf-run")
    assert proc.returncode == 2 and "--max-parallel is for --launcher slurm" in proc.stderr


def test_records_and_locks_are_as_readable_as_the_umask_says(tmp_path):
    old = os.umask(0o022)
    try:
        path = records.write_record(
            str(tmp_path / "record.json"),
            dict(kind="glue", task="RTE", method="r3f", seed=1, hparams={}, metrics={"accuracy": 60.0}, best_update=3),
        )
        with runlock.holding(str(tmp_path)):
            pass
        for name in (path, tmp_path / runlock.LOCK_NAME, tmp_path / runlock.OWNER_NAME):
            assert stat.S_IMODE(os.stat(name).st_mode) == 0o644, name
    finally:
        os.umask(old)


def test_a_validation_repeated_by_a_resumed_attempt_counts_once():
    def attempt(number, resumed, validations):
        lines = [
            (None, '| valid | {"valid_accuracy": "%s", "valid_num_updates": "%d"}' % (v, u)) for u, v in validations
        ]
        return attempts.Attempt(number, resumed, 0.0, lines)

    killed_before_its_save = attempt(1, False, [(3, 50.0), (6, 55.0)])
    resumed_from_3 = attempt(2, True, [(6, 55.0), (9, 60.0)])
    curve = attempts.validation_curve([killed_before_its_save, resumed_from_3], "accuracy")
    assert curve == [[3, 50.0], [6, 55.0], [9, 60.0]]


def test_a_live_job_outranks_a_record_that_force_will_replace(tmp_path, monkeypatch):
    run = tmp_path / "runs" / "seed1"
    job_marker(run, "8_0")
    (run / "record.json").write_text("{}")
    fake_squeue(tmp_path, monkeypatch, {"8_0": "PENDING"})
    assert status.state_of(str(run), str(run), True, status.job_states(["8_0"]), status.job_of(str(run)))[0] == "queued"
    fake_squeue(tmp_path, monkeypatch, {"8_0": "COMPLETED"})
    assert status.state_of(str(run), str(run), True, status.job_states(["8_0"]), status.job_of(str(run)))[0] == "done"
    (tmp_path / "bin" / "squeue").write_text("#!/bin/sh\necho 'slurm_load_jobs error: Socket timed out' >&2\nexit 1\n")
    assert status.job_states(["8_0"]) is None  # slurmctld unreachable: nothing known, --wait asks again


def test_force_empties_a_unit_once_per_slurm_job_and_a_requeued_execution_resumes(tmp_path, monkeypatch):
    unit = tmp_path / "probing" / "retention" / "r3f" / "default" / "seed1"
    step = unit / "cycle1-step0" / "finetune-SST-2"
    step.mkdir(parents=True)
    (step / "finetune.json").write_text("{}")
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    with Executor(force=True).unit(str(unit)) as mine:
        assert mine and not step.exists()  # the first execution: afresh
    step.mkdir(parents=True)
    (step / "finetune.json").write_text("{}")  # what it trained before Slurm requeued it
    with Executor(force=True).unit(str(unit)) as mine:
        assert mine and (step / "finetune.json").exists()  # the same job again: resumes
    monkeypatch.setenv("SLURM_JOB_ID", "78")
    with Executor(force=True).unit(str(unit)) as mine:
        assert mine and not step.exists()  # a new --force submission: afresh again
