"""``rxf-run ... --launcher slurm``: one submitit job array, one array task per unit (``execution.Executor.unit``) not
recorded, trained elsewhere or queued already. Each task runs ``rxf-run`` again restricted to its unit, so Slurm's runs
are trained, resumed and recorded by the local code, under the same lock. A time-limit warning or a preemption requeues
the job (``RunJob.checkpoint``), which then resumes; ``--wait`` follows the jobs until they have ended for good.
docs/cluster.md tells the whole story."""

import argparse
import datetime
import os
import re
import shutil
import subprocess
import time
from typing import Any, Dict, List, Sequence

from rxf_repro import outputs, runlock, status
from rxf_repro.cli import UserError
from rxf_repro.execution import Planned, log

LOG_FOLDER = "slurm-logs"  # under SAVE_ROOT: submitit's scripts, pickles and each array task's stdout/stderr
MAX_PARALLEL, TIME_MIN, CPUS_PER_RUN = 64, 1440, 8  # --max-parallel, --time-min, --cpus-per-run by default
MAX_TIMEOUTS = 20  # requeues after a time-limit warning before submitit gives up (preemptions do not count)
QUERY_RETRIES = 30  # --wait's polls in a row that may fail to reach Slurm before it judges the runs without it
OWN_OPTIONS = {  # sbatch options that rxf-run's own flags set: --slurm-set must not set them behind their back
    **dict.fromkeys(["gpus-per-node", "gpus", "gpus-per-task", "gres"], "--gpus-per-run"),
    **dict.fromkeys(["mem", "mem-per-cpu", "mem-per-gpu"], "--mem-gb"),
    "partition": "--partition",
    "time": "--time-min",
    "cpus-per-task": "--cpus-per-run",
    "array": "--max-parallel",
}
# sbatch options the launcher itself depends on: one job, one node, its log files, its signal
SET_BY_RXF_RUN = ("nodes", "ntasks", "ntasks-per-node", "output", "error", "signal", "job-name", "wrap")


def import_submitit() -> Any:
    """submitit without its import-time ``logging.config.dictConfig``, which would shut down every logging handler of
    this process (``SUBMITIT_LOG_LEVEL=NOCONFIG`` for the import only: the jobs inherit the environment at sbatch)."""
    previous = os.environ.get("SUBMITIT_LOG_LEVEL")
    os.environ["SUBMITIT_LOG_LEVEL"] = "NOCONFIG"
    try:
        import submitit
    finally:
        os.environ.pop("SUBMITIT_LOG_LEVEL")
        if previous is not None:
            os.environ["SUBMITIT_LOG_LEVEL"] = previous
    return submitit


class RunJob:
    """What an array task executes: ``rxf-run`` with the submitted arguments, in the submitting folder, restricted to
    one unit. On a time-limit warning or a preemption signal submitit calls ``checkpoint`` and requeues the job."""

    def __call__(self, argv: Sequence[str], cwd: str, unit: str) -> str:
        from rxf_repro import runs

        os.chdir(cwd)
        code = runs.main(list(argv), only=unit)  # with --force: afresh once per job (Executor.start_afresh)
        if code != 0:
            raise UserError(f"rxf-run exited {code} for {unit}: see this job's log")
        return unit

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        return import_submitit().helpers.DelayedSubmission(self, *args, **kwargs)


def write_job(unit: str, job: Any, event: str, **extra: Any) -> None:
    """The unit's ``slurm-job.json``: its job (submitit's), when it was ``event`` (submitted, claimed), its logs."""
    now = datetime.datetime.now().isoformat(timespec="seconds")
    paths = {"stdout": str(job.paths.stdout), "stderr": str(job.paths.stderr)}
    outputs.write_note(unit, runlock.JOB_NAME, {"job_id": job.job_id, event: now, **extra, **paths})


def claim(unit: str) -> None:
    """In an array task that has just taken its unit's lock: the unit's ``slurm-job.json`` names this job (it may name
    another submission's, queued for the same unit by a concurrent rxf-run, whose task then skips it)."""
    job = import_submitit().JobEnvironment()
    if status.job_of(unit) != job.job_id:
        write_job(unit, job, "claimed")


def slurm_set(text: str) -> Dict[str, Any]:
    """argparse type of ``--slurm-set KEY=VALUE``: one more ``#SBATCH --KEY=VALUE`` (``requeue=`` for a flag)."""
    key, eq, value = text.partition("=")
    key = key.strip().lstrip("-")
    if not eq or not re.fullmatch(r"[a-z][a-z0-9_-]*", key):
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE with KEY an sbatch option, e.g. account=myproj")
    name = key.replace("_", "-")
    if name in OWN_OPTIONS:
        raise argparse.ArgumentTypeError(f"{text!r}: use {OWN_OPTIONS[name]} instead")
    if name in SET_BY_RXF_RUN:
        raise argparse.ArgumentTypeError(f"{text!r}: rxf-run sets --{name} itself (one job, its logs, its signal)")
    return {key.replace("-", "_"): value if value else True}  # requeue= -> #SBATCH --requeue


def sbatch_parameters(args: Any, count: int) -> Dict[str, Any]:
    """submitit's parameters for an array of ``count`` units under rxf-run's options."""
    gpus = args.gpus_per_run if args.gpus_per_run is not None else (0 if args.cpu else args.num_gpus)
    extra: Dict[str, Any] = {"requeue": True}  # a preempted job goes back to the queue rather than failing
    for item in args.slurm_set or []:
        extra.update(item)
    parameters: Dict[str, Any] = dict(
        name=f"rxf-{args.family}",
        timeout_min=args.time_min or TIME_MIN,
        nodes=1,
        tasks_per_node=1,  # fairseq spawns one worker per GPU itself (--distributed-world-size)
        cpus_per_task=args.cpus_per_run or CPUS_PER_RUN,
        slurm_array_parallelism=min(args.max_parallel or MAX_PARALLEL, count),
        slurm_additional_parameters=extra,
    )
    optional = {"gpus_per_node": gpus or None, "slurm_partition": args.partition or None, "mem_gb": args.mem_gb}
    return dict(parameters, **{key: value for key, value in optional.items() if value is not None})


def units_of(planned: Sequence[Planned]) -> Dict[str, List[Planned]]:
    """The planned runs by unit, in plan order."""
    units: Dict[str, List[Planned]] = {}
    for item in planned:
        units.setdefault(os.path.abspath(item.unit), []).append(item)
    return units


def to_submit(units: Dict[str, List[Planned]]) -> List[str]:
    """The units that need a job: some run without its record, nobody training it, no live job queued for it."""
    pending = [unit for unit, runs in units.items() if not all(item.done for item in runs)]
    jobs = {unit: status.job_of(unit) for unit in pending}
    live = status.job_states([job for job in jobs.values() if job]) or {}
    chosen = []
    for unit in units:
        job = jobs.get(unit)
        if unit not in pending:
            log(f"  done already: {unit} (--force re-runs)")
        elif (holder := runlock.held_by_another(unit)) is not None:
            log(f"  skipped: {unit} is being trained by {runlock.owner_text(holder)}")
        elif job and status.SLURM_STATES.get(live.get(job, ""), "") in ("queued", "running"):
            log(f"  skipped: {unit} is in Slurm job {job} already ({live[job]})")
        else:
            chosen.append(unit)
    return chosen


def submit(args: Any, argv: Sequence[str], planned: Sequence[Planned]) -> int:
    """Submit the planned units that need it as one job array; with ``--wait`` follow them to the end."""
    units = units_of(planned)
    chosen = to_submit(units)
    if args.dry_run:
        log(f"rxf-run: --dry-run: would submit {len(chosen)} unit(s) as one Slurm job array")
        return 0
    if not chosen:
        log("rxf-run: nothing to submit")
        return wait(args, units) if args.wait else 0
    if shutil.which("sbatch") is None:
        raise UserError(
            "--launcher slurm: sbatch is not on PATH; run rxf-run where Slurm's commands are (a login node)"
        )
    submitit = import_submitit()
    folder = os.path.join(os.path.abspath(args.save_root), LOG_FOLDER, "%j")
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm", slurm_max_num_timeout=MAX_TIMEOUTS)
    parameters = sbatch_parameters(args, len(chosen))
    executor.update_parameters(**parameters)
    started = time.time()
    try:
        jobs = executor.map_array(RunJob(), [list(argv)] * len(chosen), [os.getcwd()] * len(chosen), chosen)
    except (subprocess.CalledProcessError, submitit.core.utils.FailedJobError) as error:
        raise UserError(f"sbatch refused the job array: {str(error).strip().splitlines()[-1]}") from None
    for unit, job in zip(chosen, jobs):
        write_job(unit, job, "submitted", runs=[item.spec.run_dir for item in units[unit]])
    array, parallel = jobs[0].job_id.split("_")[0], parameters["slurm_array_parallelism"]
    print(
        f"rxf-run: submitted {len(chosen)} unit(s) as Slurm job array {array} ({parallel} at a time) in "
        f"{time.time() - started:.2f} s\n  logs: {os.path.dirname(folder)}/{array}_*/\n"
        f"  follow: rxf-run status {args.save_root}",
        flush=True,
    )
    return wait(args, units) if args.wait else 0


def wait(args: Any, units: Dict[str, List[Planned]]) -> int:
    """Until no asked unit is queued or running (a requeued job's later executions included), printing each unit's
    state changes; 0 if every asked run then has its record."""
    records = {unit: [item.spec.record_path for item in runs] for unit, runs in sorted(units.items())}
    seen: Dict[str, str] = {}
    failures = 0
    while True:
        submitted = {unit: status.job_of(unit) for unit in records}
        jobs = status.job_states([job for job in submitted.values() if job])
        if jobs is None and failures < QUERY_RETRIES:  # squeue failed (slurmctld busy?): ask again
            failures += 1
            time.sleep(args.poll_every)
            continue
        jobs, failures = jobs or {}, 0
        states = {
            unit: status.state_of(unit, unit, all(map(os.path.exists, paths)), jobs, submitted[unit])
            for unit, paths in records.items()
        }
        for unit, (state, detail) in states.items():
            if seen.get(unit) != state:
                print(f"rxf-run: {state:<11} {unit}{'  ' + detail if detail else ''}", flush=True)
                seen[unit] = state
        if not any(state in ("queued", "running") for state, _ in states.values()):
            break
        time.sleep(args.poll_every)
    asked = [path for paths in records.values() for path in paths]
    missing = [path for path in asked if not os.path.exists(path)]
    if missing:
        log(f"rxf-run: {len(missing)} of {len(asked)} run(s) have no record: rxf-run status {args.save_root}")
        return 1
    print(f"rxf-run: all {len(asked)} run(s) have their record under {args.save_root}", flush=True)
    return 0
