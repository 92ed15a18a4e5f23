"""``rxf-run status SAVE_ROOT``: one line per run folder, its state first, read from the folders themselves.

``done`` (its record is there), ``running`` (a process holds its lock, or its Slurm job has started), ``queued`` (its
Slurm job waits), ``failed`` (the last error line and the log follow) or ``interrupted`` (killed, cancelled, out of
time). Slurm's view comes from the job id in the unit's ``slurm-job.json``, asked of ``squeue`` then ``sacct``: it
works after the submitting process has gone, without accounting, and for local runs, which have no job."""

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

from rxf_repro import attempts, outputs, records, runlock
from rxf_repro.cli import UserError

STATES = ("done", "running", "queued", "failed", "interrupted")
# Slurm's job states (squeue -o %T, sacct's State) -> ours; a state not listed is "ended"
SLURM_STATES = {
    **dict.fromkeys(["PENDING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "CONFIGURING", "RESV_DEL_HOLD"], "queued"),
    **dict.fromkeys(["RUNNING", "COMPLETING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT", "RESIZING"], "running"),
    **dict.fromkeys(["CANCELLED", "TIMEOUT", "PREEMPTED", "DEADLINE", "NODE_FAIL", "BOOT_FAIL"], "interrupted"),
    **dict.fromkeys(["FAILED", "OUT_OF_MEMORY"], "failed"),
}
LOGS = ("train.log", "test.log", "generate.log")  # a run's logs, by the step that writes them
STOPPED_EXITS = {130, 143, -2, -9, -15, 137}  # Ctrl-C, SIGTERM, SIGKILL: the attempt was stopped, not failed
EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b")  # a traceback's last line: "ValueError: ..."


def job_of(unit: str) -> Optional[str]:
    """The Slurm job id a unit was last submitted as (``12_3`` for an array task), or None."""
    return outputs.read_note(unit, runlock.JOB_NAME).get("job_id")


def _expand(job_id: str) -> List[str]:
    """``12_[0-3%2]`` / ``12_[1,4]`` (an array's tasks not yet started, as sacct shows them) -> ``12_0`` ..."""
    found = re.fullmatch(r"(\d+)_\[([0-9,\-]+)(?:%\d+)?\]", job_id)
    if not found:
        return [job_id]
    ranges = re.findall(r"(\d+)(?:-(\d+))?", found.group(2))
    return [f"{found.group(1)}_{task}" for first, last in ranges for task in range(int(first), int(last or first) + 1)]


def _query(command: List[str]) -> Optional[Dict[str, str]]:
    """``JOB|STATE`` lines of squeue or sacct as a dict (``CANCELLED by 0`` -> ``CANCELLED``); None when the command
    could not answer (missing, timed out, slurmctld or slurmdbd unreachable). A job id it does not know: no line."""
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return {} if "Invalid job id" in result.stderr else None
    lines = [line.strip().split("|", 1) for line in result.stdout.splitlines() if "|" in line]
    return {one: state.split()[0] for job, state in lines if job and state for one in _expand(job)}


def job_states(jobs: Iterable[str]) -> Optional[Dict[str, str]]:
    """Slurm's state of each job (``12`` or ``12_3``) that ``squeue`` (queued, running and recently ended jobs) or else
    ``sacct`` knows; None when squeue could not answer (no Slurm here, or slurmctld unreachable)."""
    jobs = sorted(set(jobs))
    states: Dict[str, str] = {}
    for array in sorted({job.split("_")[0] for job in jobs}):
        answer = _query(["squeue", "-h", "-r", "-t", "all", "-j", array, "-o", "%i|%T"])
        if answer is None:
            return None
        states.update(answer)
    unknown = [job for job in jobs if job not in states]
    if unknown:
        arrays = ",".join(sorted({job.split("_")[0] for job in unknown}))
        states.update(_query(["sacct", "-n", "-P", "-X", "-j", arrays, "-o", "JobID,State"]) or {})
    return {job: states[job] for job in jobs if job in states}


def _last_attempt(folder: str) -> Tuple[Optional[str], Optional[attempts.Attempt]]:
    """The run's most recently written log and its last attempt."""
    logs = [os.path.join(folder, name) for name in LOGS if os.path.isfile(os.path.join(folder, name))]
    if not logs:
        return None, None
    path = max(logs, key=os.path.getmtime)
    found = attempts.read_log(path)
    return path, (found[-1] if found else None)


def _error_line(lines: Iterable[str]) -> str:
    """What a log says went wrong: rxf-run's own error line, else the last exception line (a traceback ends with it,
    its message may go on below), else its last line."""
    text = [line.rstrip() for line in lines if line.strip() and not line.startswith("# rxf-run")]
    ours = [line for line in text if line.startswith("rxf-run: error: ")]
    errors = [line for line in text if EXCEPTION.match(line)]
    line = (ours or errors or text or ["(no output)"])[-1]
    return line if len(line) <= 300 else line[:297] + "..."


def _last_update(attempt: Optional[attempts.Attempt]) -> str:
    trained = [r for r in attempts.json_log(attempt.lines, "train_inner") if "num_updates" in r] if attempt else []
    return f"; update {trained[-1]['num_updates']}" if trained else ""


def _job_failed(unit: str, why: str) -> Tuple[str, str]:
    stderr = outputs.read_note(unit, runlock.JOB_NAME).get("stderr")  # the job's own log (submitit's)
    error = "(no log)"
    if stderr and os.path.isfile(stderr):
        error = _error_line(Path(stderr).read_text(encoding="utf-8", errors="replace").splitlines()[-200:])
    return "failed", f"{error} ({why}; log: {stderr})"


def state_of(folder: str, unit: str, done: bool, jobs: Dict[str, str], job: Optional[str]) -> Tuple[str, str]:
    """(state, detail) of ``folder``, a run folder or a whole unit (``done``: its record(s) are there); its lock and
    Slurm job are ``unit``'s (``jobs``: ``job_states``; ``job``: ``job_of(unit)``, read once by the caller). A
    holder or a live job outranks a record: ``--force`` replaces the record of a run it trains again."""
    holder = runlock.held_by_another(unit)
    if holder is not None:
        return "running", f"({runlock.owner_text(holder)}{_last_update(_last_attempt(folder)[1])})"
    slurm = jobs.get(job, "") if job else ""
    ours = SLURM_STATES.get(slurm, "ended" if slurm else "")
    if ours in ("queued", "running"):
        return ours, f"(Slurm job {job}: {slurm})"
    if done:
        return "done", ""
    log_path, last = _last_attempt(folder)
    if ours == "interrupted":
        return "interrupted", f"(Slurm job {job}: {slurm}; run the same rxf-run again to resume it)"
    if last is not None and last.exit_code not in (None, 0, *STOPPED_EXITS):  # the run's own error first
        where = f"Slurm job {job}: {slurm}; " if ours == "failed" else ""
        return "failed", f"{_error_line(line for _, line in last.lines)} ({where}log: {log_path})"
    if ours == "failed":  # FAILED, OUT_OF_MEMORY of a job whose run did not fail: the job's own error
        return _job_failed(unit, f"Slurm job {job}: {slurm}")
    if last is not None and last.exit_code != 0:
        how = "killed" if last.exit_code is None else f"stopped, exit {last.exit_code}"
        return "interrupted", f"(attempt {last.number} {how}; log: {log_path})"
    if job:
        why = f"Slurm job {job}: {slurm}" if slurm else f"Slurm job {job}, unknown to squeue and sacct"
        return _job_failed(unit, why)
    if last is not None:
        return "failed", f"ended without a record (log: {log_path})"
    return "interrupted", "(stopped before its first attempt)"


def run_folders(save_root: str) -> List[Tuple[str, str]]:
    """(folder, unit) of every run folder under ``save_root``: a folder with a log, a record, a lock or a Slurm job
    and no such folder below it (a queued protocol shows as its own folder until its steps start)."""
    marks = set(LOGS) | set(records.RECORD_NAMES) | {runlock.LOCK_NAME, runlock.JOB_NAME}
    found, units = [], []
    for folder, subfolders, files in os.walk(save_root):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith(".") and d != "slurm-logs")
        if marks & set(files):
            found.append(folder)
        if {runlock.LOCK_NAME, runlock.JOB_NAME} & set(files):
            units.append(folder)

    def unit_of(folder: str) -> str:  # the nearest folder up with a lock or a job: a protocol's steps are its unit's
        return max((u for u in units if folder == u or folder.startswith(u + os.sep)), key=len, default=folder)

    return [(f, unit_of(f)) for f in found if not any(g.startswith(f + os.sep) for g in found)]


def main(save_root: str) -> int:
    if not os.path.isdir(save_root):
        raise UserError(f"status: {save_root}: no such folder")
    folders = run_folders(save_root)
    submitted = {unit: job_of(unit) for unit in {unit for _, unit in folders}}  # each unit's marker read once
    asked = [job for job in submitted.values() if job]
    jobs = job_states(asked)
    if jobs is None and asked:
        print("rxf-run status: squeue did not answer: Slurm's view left out", file=sys.stderr)
    tally: Counter = Counter()
    for folder, unit in folders:
        done = any(os.path.exists(os.path.join(folder, name)) for name in records.RECORD_NAMES)
        state, detail = state_of(folder, unit, done, jobs or {}, submitted[unit])
        tally[state] += 1
        print(f"{state:<11} {folder}{'  ' + detail if detail else ''}", flush=True)
    summary = ", ".join(f"{tally[s]} {s}" for s in STATES if s in tally) or "no run folders"
    print(f"rxf-run status: {summary} under {save_root}", file=sys.stderr)
    return 0
