"""One run, one trainer: a file lock per run folder (``filelock``), held from before its record is looked at until it
is written, by local runs and Slurm jobs alike; another call skips the run naming the holder (``.rxf-run.owner``). The
kernel drops the lock when its holder ends: no stale lock. Across nodes it needs a file system with locks."""

import contextlib
import logging
import os
import socket
import sys
import time
from typing import Any, Dict, Iterator, Optional

import filelock

from rxf_repro import outputs
from rxf_repro.cli import UserError

# filelock logs every acquire and release at DEBUG, and importing fairseq's models sets the root logger to DEBUG on
# stderr (fairseq/models/wav2vec/wav2vec2_classification.py calls logging.basicConfig(level=logging.DEBUG)): rxf-run's
# output and its Slurm jobs' logs would carry two lines per lock and per status probe.
logging.getLogger("filelock").setLevel(logging.WARNING)

LOCK_NAME = ".rxf-run.lock"
OWNER_NAME = ".rxf-run.owner"
JOB_NAME = "slurm-job.json"  # the Slurm job a unit was submitted as, or is trained by (rxf_repro/slurm.py)
FORCED_NAME = ".rxf-run.forced"  # the Slurm job whose --force emptied the unit (execution.Executor.start_afresh)
KEPT = (LOCK_NAME, OWNER_NAME, JOB_NAME)  # what ``--force`` keeps when it empties a run folder
NO_LOCKS = "rxf-run needs a file system with locks (NFS v4, Lustre with -o flock, GPFS)"
WAIT_S = 5.0  # how long a trainer waits for a lock: a status probe holds it for an instant


def slurm_job() -> Optional[str]:
    """This process's Slurm job (``123_4`` for an array task), or None outside Slurm."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{task}" if array and task else os.environ.get("SLURM_JOB_ID")


def owner_text(owner: Dict[str, Any]) -> str:
    """``pid 123 on HOST (Slurm job 45_1) since 14:02:11``, or ``another process`` when the holder left no note."""
    if not owner:
        return "another process"
    job = f" (Slurm job {owner['slurm_job']})" if owner.get("slurm_job") else ""
    return f"pid {owner.get('pid')} on {owner.get('host')}{job} since {owner.get('since')}"


def _lock(folder: str, timeout: float = 0) -> filelock.FileLock:
    # fallback_to_soft=False: on a file system without locks, an error rather than a marker file a crash leaves behind
    path = os.path.join(folder, LOCK_NAME)
    return filelock.FileLock(path, timeout=timeout, mode=outputs.file_mode(), fallback_to_soft=False)


@contextlib.contextmanager
def holding(folder: str) -> Iterator[bool]:
    """The folder's lock for the block: True when this process holds it, False when another does (leave it alone)."""
    os.makedirs(folder, exist_ok=True)
    try:
        acquired = _lock(folder, WAIT_S).acquire()
    except filelock.Timeout:
        yield False
        return
    except OSError as error:
        why = "the folder is someone else's" if isinstance(error, PermissionError) else NO_LOCKS
        raise UserError(f"{folder}: cannot lock {LOCK_NAME} ({error.strerror}): {why}") from None
    with acquired:  # released on leaving the block
        owner = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "slurm_job": slurm_job(),
            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": None if slurm_job() else " ".join(["rxf-run", *sys.argv[1:]]),  # a job's argv: submitit's
        }
        outputs.write_note(folder, OWNER_NAME, owner)
        yield True


def held_by_another(folder: str) -> Optional[Dict[str, Any]]:
    """None when nobody holds the folder's lock, else its holder's note ({} before the holder writes it). Probing
    takes the lock for an instant."""
    if not os.path.exists(os.path.join(folder, LOCK_NAME)):
        return None
    try:
        with _lock(folder):
            return None
    except filelock.Timeout:
        return outputs.read_note(folder, OWNER_NAME)
    except OSError:
        return None
