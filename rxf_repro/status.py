"""``rxf-run status SAVE_ROOT``: one line per run folder, its state first, read from the folders themselves.

A run folder is ``done`` (its record is there), ``running`` (a process holds its lock: ``rxf_repro/runlock.py``;
or its Slurm job has started), ``queued`` (its Slurm job waits, a requeued one included), ``failed`` (its last
attempt or its job ended in an error: the last error line and the log follow) or ``interrupted`` (killed,
cancelled, out of time, or stopped before its record). Slurm's view comes from the job id a submission wrote into
the unit's folder (``slurm-job.json``), asked of ``squeue`` (which needs no accounting) and then ``sacct``; so it
works after the submitting process has gone, and for local runs, which have no job.
"""

import json
import os
import re
import subprocess
import sys
from typing import Dict, Iterable, List, Optional, Tuple

from rxf_repro import attempts, records, runlock

STATES = ("done", "running", "queued", "failed", "interrupted")
# Slurm's job states (squeue -o %T, sacct's State) -> ours; a state not listed is "ended"
SLURM_STATES = {
    "PENDING": "queued",
    "REQUEUED": "queued",
    "REQUEUE_FED": "queued",
    "REQUEUE_HOLD": "queued",
    "CONFIGURING": "queued",
    "RESV_DEL_HOLD": "queued",
    "RUNNING": "running",
    "COMPLETING": "running",
    "SUSPENDED": "running",
    "STOPPED": "running",
    "SIGNALING": "running",
    "STAGE_OUT": "running",
    "RESIZING": "running",
    "CANCELLED": "interrupted",
    "TIMEOUT": "interrupted",
    "PREEMPTED": "interrupted",
    "DEADLINE": "interrupted",
    "NODE_FAIL": "interrupted",
    "BOOT_FAIL": "interrupted",
    "FAILED": "failed",
    "OUT_OF_MEMORY": "failed",
    "COMPLETED": "ended",
}
LOGS = ("train.log", "test.log", "generate.log")  # a run's logs, by the step that writes them
STOPPED_EXITS = {130, 143, -2, -9, -15, 137}  # Ctrl-C, SIGTERM, SIGKILL: the attempt was stopped, not failed


def _job_field(unit: str, key: str) -> Optional[str]:
    """A field of the unit's ``slurm-job.json`` (the Slurm job it was last submitted as), or None."""
    try:
        with open(os.path.join(unit, runlock.JOB_NAME), encoding="utf-8") as f:
            return str(json.load(f)[key])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def job_of(unit: str) -> Optional[str]:
    """The Slurm job id a unit was last submitted as (``12_3`` for an array task), or None."""
    return _job_field(unit, "job_id")


def job_log(unit: str) -> Optional[str]:
    """The stderr file of the unit's Slurm job (submitit's), or None."""
    return _job_field(unit, "stderr")


def _expand(job_id: str) -> List[str]:
    """``12_[0-3%2]`` / ``12_[1,4]`` (an array's tasks not yet started, as sacct shows them) -> ``12_0`` ..."""
    found = re.fullmatch(r"(\d+)_\[([0-9,\-]+)(?:%\d+)?\]", job_id)
    if not found:
        return [job_id]
    out = []
    for part in found.group(2).split(","):
        first, _, last = part.partition("-")
        out += [f"{found.group(1)}_{task}" for task in range(int(first), int(last or first) + 1)]
    return out


def _query(command: List[str]) -> Optional[Dict[str, str]]:
    """``JOB|STATE`` lines of squeue or sacct as a dict; None when the command could not answer (missing, timed out,
    slurmctld or slurmdbd unreachable). A job id the command does not know is an answer: no line for it."""
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return {} if "Invalid job id" in result.stderr else None
    states = {}
    for line in result.stdout.splitlines():
        job, _, state = line.strip().partition("|")
        if job and state:
            for one in _expand(job):
                states[one] = state.split()[0]  # "CANCELLED by 0" -> CANCELLED
    return states


def job_states(jobs: Iterable[str]) -> Optional[Dict[str, str]]:
    """Slurm's state of each job (``12`` or ``12_3``): ``squeue`` first (it knows every job that is queued or
    running, and recently ended ones, without accounting), then ``sacct`` for the rest. A job neither knows (no
    accounting, and ended long ago) is left out. None when squeue could not answer (no Slurm here, or slurmctld
    unreachable): nothing is known."""
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
    with open(path, encoding="utf-8", errors="replace") as f:
        found = attempts.read_attempts(f.read())
    return path, (found[-1] if found else None)


EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b")  # a traceback's last line: "ValueError: ..."


def _error_line(lines: Iterable[str]) -> str:
    """What a log says went wrong: rxf-run's own error line, else the last exception line (a traceback ends with it,
    its message may go on below), else its last line."""
    text = [line.rstrip() for line in lines if line.strip() and not line.startswith("# rxf-run")]
    ours = [line for line in text if line.startswith("rxf-run: error: ")]
    errors = [line for line in text if EXCEPTION.match(line)]
    line = (ours or errors or text or ["(no output)"])[-1]
    return line if len(line) <= 300 else line[:297] + "..."


def _tail(path: Optional[str]) -> str:
    if not path or not os.path.isfile(path):
        return "(no log)"
    with open(path, encoding="utf-8", errors="replace") as f:
        return _error_line(f.read().splitlines()[-200:])


def _last_update(attempt: attempts.Attempt) -> str:
    for _, line in reversed(attempt.lines):
        found = re.search(r'"num_updates": "?(\d+)', line)
        if found:
            return f"; update {found.group(1)}"
    return ""


UNREAD = "\0unread"  # state_of's ``job`` when the caller has not read the unit's slurm-job.json


def state_of(folder: str, unit: str, done: bool, jobs: Dict[str, str], job: Optional[str] = UNREAD) -> Tuple[str, str]:
    """(state, detail) of ``folder``, a run folder or a whole unit (``done``: its record(s) are there); its lock and
    Slurm job are ``unit``'s (``jobs``: ``job_states``; ``job``: ``job_of(unit)`` when the caller has read it). A
    holder or a live job outranks a record: ``--force`` replaces the record of a run it trains again."""
    holder = runlock.held_by_another(unit)
    if holder is not None:
        _, last = _last_attempt(folder)
        return "running", f"({runlock.owner_text(holder)}{_last_update(last) if last else ''})"
    job = job_of(unit) if job == UNREAD else job
    slurm = jobs.get(job, "") if job else ""
    ours = SLURM_STATES.get(slurm, "ended" if slurm else "")
    if ours in ("queued", "running"):
        return ours, f"(Slurm job {job}: {slurm})"
    if done:
        return "done", ""
    log_path, last = _last_attempt(folder)
    if ours == "interrupted":
        return "interrupted", f"(Slurm job {job}: {slurm}; run the same rxf-run again to resume it)"
    if ours == "failed":  # FAILED, OUT_OF_MEMORY: the run's own error if its last attempt failed, else the job's
        if last is not None and last.exit_code not in (None, 0, *STOPPED_EXITS):
            return (
                "failed",
                f"{_error_line(line for _, line in last.lines)} (Slurm job {job}: {slurm}; log: {log_path})",
            )
        stderr = job_log(unit)
        return "failed", f"{_tail(stderr)} (Slurm job {job}: {slurm}; log: {stderr})"
    if last is not None:
        if last.exit_code is None or last.exit_code in STOPPED_EXITS:
            how = "killed" if last.exit_code is None else f"stopped, exit {last.exit_code}"
            return "interrupted", f"(attempt {last.number} {how}; log: {log_path})"
        if last.exit_code != 0:
            return "failed", f"{_error_line(line for _, line in last.lines)} (log: {log_path})"
    if job:
        why = f"Slurm job {job}: {slurm}" if slurm else f"Slurm job {job}, unknown to squeue and sacct"
        stderr = job_log(unit)
        return "failed", f"{_tail(stderr)} ({why}; log: {stderr})"
    if last is not None:
        return "failed", f"ended without a record (log: {log_path})"
    return "interrupted", "(stopped before its first attempt)"


def run_folders(save_root: str) -> List[Tuple[str, str]]:
    """(folder, unit) of every run folder under ``save_root``: a folder with a log, a record, a lock or a Slurm job
    and no such folder below it (a queued protocol shows as its own folder until its steps start)."""
    marks = set(LOGS) | set(records.RECORD_NAMES) | {runlock.LOCK_NAME, runlock.JOB_NAME}
    found = []
    for folder, subfolders, files in os.walk(save_root):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith(".") and d != "slurm-logs")
        if marks & set(files):
            found.append(folder)
    leaves = [f for f in found if not any(g.startswith(f + os.sep) for g in found)]
    out = []
    for folder in leaves:
        probe = folder  # the nearest folder up with a lock or a job: a protocol's steps are its unit's
        while not any(os.path.exists(os.path.join(probe, n)) for n in (runlock.LOCK_NAME, runlock.JOB_NAME)):
            if os.path.samefile(probe, save_root) or os.path.dirname(probe) == probe:
                probe = folder
                break
            probe = os.path.dirname(probe)
        out.append((folder, probe))
    return out


def main(save_root: str) -> int:
    if not os.path.isdir(save_root):
        print(f"rxf-run: error: status: {save_root}: no such folder", file=sys.stderr)
        return 1
    folders = run_folders(save_root)
    submitted = {unit: job_of(unit) for unit in {unit for _, unit in folders}}  # each unit's marker read once
    asked = [job for job in submitted.values() if job]
    jobs = job_states(asked)
    if jobs is None:
        if asked:
            print("rxf-run status: squeue did not answer: Slurm's view left out", file=sys.stderr)
        jobs = {}
    tally: Dict[str, int] = {}
    for folder, unit in folders:
        done = any(os.path.exists(os.path.join(folder, name)) for name in records.RECORD_NAMES)
        state, detail = state_of(folder, unit, done, jobs, submitted[unit])
        tally[state] = tally.get(state, 0) + 1
        print(f"{state:<11} {folder}{'  ' + detail if detail else ''}", flush=True)
    summary = ", ".join(f"{tally[s]} {s}" for s in STATES if s in tally) or "no run folders"
    print(f"rxf-run status: {summary} under {save_root}", file=sys.stderr)
    return 0
