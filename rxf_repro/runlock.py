"""One run, one trainer: a file lock per run folder, held while the run trains.

``rxf-run`` takes the lock of a run's folder (or of a protocol's folder, whose steps depend on each other) before it
looks at the run's record, and keeps it until the record is written. Local runs and Slurm jobs take the same lock,
so two ``rxf-run`` calls, on one machine or on a cluster's nodes sharing ``SAVE_ROOT``, never train the same run:
the second skips it with one line naming the holder (``.rxf-run.owner``, written by the holder once it has the
lock). The lock is the kernel's (``filelock``): it goes when its holder ends, whatever ended it, so a crashed
run leaves no stale lock. One case it does not cover: a fairseq child that outlives an ``rxf-run`` killed with
SIGKILL (SIGTERM and Ctrl-C stop the child first; a Slurm job's processes end together). Across a cluster's nodes
it needs a shared file system with locks (NFS v4, Lustre and GPFS have them).
"""

import contextlib
import errno
import json
import logging
import os
import socket
import sys
import time
from typing import Any, Dict, Iterator, Optional

import filelock

from rxf_repro import outputs

# filelock logs every acquire and release at DEBUG, and importing fairseq's models sets the root logger to DEBUG on
# stderr (fairseq/models/wav2vec/wav2vec2_classification.py calls logging.basicConfig(level=logging.DEBUG)): rxf-run's
# output and its Slurm jobs' logs would carry two lines per lock and per status probe.
logging.getLogger("filelock").setLevel(logging.WARNING)

LOCK_NAME = ".rxf-run.lock"
OWNER_NAME = ".rxf-run.owner"
JOB_NAME = "slurm-job.json"  # the Slurm job a unit was submitted as, or is trained by (rxf_repro/slurm.py)
FORCED_NAME = ".rxf-run.forced"  # the Slurm job whose --force emptied the unit (execution.Executor.start_afresh)
KEPT = (LOCK_NAME, OWNER_NAME, JOB_NAME)  # what ``--force`` keeps when it empties a run folder
WAIT_S = 5.0  # how long a trainer waits for a lock: a status probe holds it for an instant


class LockError(Exception):
    """A lock that cannot be taken for another reason than a holder (no locks on that file system)."""


def slurm_job() -> Optional[str]:
    """This process's Slurm job (``123_4`` for an array task), or None outside Slurm."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID")


def owner_text(owner: Optional[Dict[str, Any]]) -> str:
    """``pid 123 on HOST (Slurm job 45_1) since 14:02:11``, or ``another process`` when the holder left no note."""
    if not owner:
        return "another process"
    job = f" (Slurm job {owner['slurm_job']})" if owner.get("slurm_job") else ""
    return f"pid {owner.get('pid')} on {owner.get('host')}{job} since {owner.get('since')}"


def read_owner(folder: str) -> Optional[Dict[str, Any]]:
    try:
        with open(os.path.join(folder, OWNER_NAME), encoding="utf-8") as f:
            owner = json.load(f)
        return owner if isinstance(owner, dict) else None
    except (OSError, ValueError):
        return None


def _lock(folder: str, timeout: float = 0) -> filelock.FileLock:
    # fallback_to_soft=False: on a file system without locks, an error rather than a marker file a crash leaves behind
    path = os.path.join(folder, LOCK_NAME)
    return filelock.FileLock(path, timeout=timeout, mode=outputs.file_mode(), fallback_to_soft=False)


@contextlib.contextmanager
def holding(folder: str) -> Iterator[bool]:
    """The folder's lock for the block: yields True when this process holds it, False when another does (the
    block must then leave the folder alone)."""
    os.makedirs(folder, exist_ok=True)
    lock = _lock(folder, WAIT_S)
    try:
        lock.acquire()
    except filelock.Timeout:
        yield False
        return
    except OSError as error:
        why = (
            "the folder is someone else's"
            if error.errno in (errno.EACCES, errno.EPERM)
            else "rxf-run needs a file system with locks (NFS v4, Lustre with -o flock, GPFS)"
        )
        raise LockError(f"{folder}: cannot lock {LOCK_NAME} ({error.strerror}): {why}") from None
    try:
        owner = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "slurm_job": slurm_job(),
            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": None if slurm_job() else " ".join(["rxf-run", *sys.argv[1:]]),  # a job's argv: submitit's
        }
        outputs.write_file_atomically(os.path.join(folder, OWNER_NAME), json.dumps(owner) + "\n")
        yield True
    finally:
        lock.release()


def held_by_another(folder: str) -> Optional[Dict[str, Any]]:
    """None when nobody holds the folder's lock (or the folder has none), else what its holder wrote (``{}`` when
    it has not written it yet). Probing takes the lock for an instant."""
    if not os.path.exists(os.path.join(folder, LOCK_NAME)):
        return None
    lock = _lock(folder)
    try:
        lock.acquire()
    except filelock.Timeout:
        return read_owner(folder) or {}
    except OSError:
        return None
    lock.release()
    return None
