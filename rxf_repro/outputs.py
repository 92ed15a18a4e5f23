"""Folders the project's tools write: owned, replaced atomically, never somebody else's.

A tool builds its output in a temporary folder beside the destination, with a marker naming the tool and the kind of
output, and renames it into place; an existing folder is replaced only if its marker names the same tool and kind (or
with ``--overwrite``), and a crash leaves the old or the new folder whole. Standard library only.
"""

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
from typing import Any, Dict, Iterator, Optional, Sequence

from rxf_repro import process
from rxf_repro.cli import UserError

MARKER = ".rxf-output.json"
_TMP, _OLD = ".tmp-", ".old-"


def read_note(folder: str, name: str) -> Dict[str, Any]:
    """A json object a folder holds (its marker, its lock's holder, its Slurm job); {} if missing or unreadable."""
    try:
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            note = json.load(f)
    except (OSError, ValueError):
        return {}
    return note if isinstance(note, dict) else {}


def write_note(folder: str, name: str, note: Dict[str, Any]) -> None:
    write_file_atomically(os.path.join(folder, name), json.dumps(note, indent=1) + "\n")


def owner(folder: str) -> Optional[Dict[str, Any]]:
    """The marker of a folder written by one of our tools (``tool``, ``kind``, ...), or None."""
    marker = read_note(folder, MARKER)
    return marker if "tool" in marker and "kind" in marker else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        pass
    return True


def leftover_pid(name: str, base: str) -> Optional[int]:
    """The pid in ``.BASE.tmp-PID-xxxx`` / ``.BASE.old-PID-xxxx``, or None for any other name."""
    found = re.match(rf"\.{re.escape(base)}(?:{re.escape(_TMP)}|{re.escape(_OLD)})(\d+)-", name)
    return int(found.group(1)) if found else None


def clean_leftovers(dest: str) -> None:
    """Remove what killed runs left beside ``dest``; an old folder renamed aside is put back if ``dest`` is missing."""
    dest = os.path.abspath(dest)
    parent, base = os.path.split(dest)
    try:
        names = sorted(os.listdir(parent))
    except OSError:
        return
    for name in names:
        pid = leftover_pid(name, base)
        if pid is None or pid_alive(pid):
            continue
        path = os.path.join(parent, name)
        if name.startswith(f".{base}{_OLD}") and not os.path.lexists(dest):
            os.rename(path, dest)  # the previous output, whole: the kill came between the two renames
        else:
            shutil.rmtree(path, ignore_errors=True)


def check_destination(
    dest: str, tool: str, kind: str, *, inputs: Sequence[str] = (), overwrite: bool = False, flag: str = "output folder"
) -> None:
    """Restore or remove what killed runs left (a failing rerun still leaves the earlier output), then refuse, before
    any work, a destination that would destroy something or could not be written. A mount point (a Docker bind mount)
    cannot be renamed over (``EBUSY``), only written into: it must be empty or an earlier output, --overwrite or not."""
    where = f"{flag} {dest}"
    mount, base = os.path.ismount(dest), os.path.basename(os.path.abspath(dest))
    try:
        clean_leftovers(os.path.join(dest, base) if mount else dest)  # inside a mount point, its leftovers too
    except OSError as error:
        raise UserError(
            f"{where}: cannot restore or remove a killed run's leftovers beside it ({error.strerror}: "
            f"{error.filename}); remove them by hand"
        ) from None
    if os.path.islink(dest):
        raise UserError(
            f"{where}: is a symbolic link (to {os.readlink(dest)}); give the folder itself, "
            "since replacing it would replace the link"
        )
    if os.path.lexists(dest) and not os.path.isdir(dest):
        raise UserError(f"{where}: exists and is not a folder")
    real = os.path.realpath(dest)
    for path in inputs:
        if os.path.commonpath([real, os.path.realpath(path)]) == real:
            raise UserError(
                f"{where}: is or contains the input {path}, which replacing it would delete; choose another folder"
            )
    held = [n for n in os.listdir(dest) if leftover_pid(n, base) is None] if os.path.isdir(dest) else []
    mark = owner(dest)
    if held and (mount or not overwrite) and (mark is None or (mark["tool"], mark["kind"]) != (tool, kind)):
        found = f"it was written by {mark['tool']} ({mark['kind']})" if mark else f"it has no {MARKER} naming {tool}"
        state, fix = "exists and", "choose another folder, or pass --overwrite to replace it"
        if mount:
            state = "is a mount point, which cannot be replaced, only written into, and"
            fix = "empty it (--overwrite does not), or give a folder inside it"
        raise UserError(f"{where}: {state} is not an earlier {kind} output of {tool} ({found}); {fix}")
    existing = os.path.abspath(dest) if mount else os.path.dirname(os.path.abspath(dest))
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        what = "a file" if os.path.isfile(existing) else "not a folder"
        raise UserError(f"{where}: {existing} is {what}, so no folder can be made under it")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{where}: cannot write in {existing} (permission denied)")


def file_mode(new: int = 0o666) -> int:
    """The mode ``open`` (0o666) or ``mkdir`` (0o777) gives, where ``mkstemp``'s 0600 would hide a file from the group;
    the umask read from /proc where it can be (``os.umask`` sets it to read it, racing threads that create files)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            umask = next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        umask = os.umask(0)
        os.umask(umask)
    return new & ~umask


def replace_folder(tmp: str, dest: str) -> None:
    """Put the finished folder ``tmp`` at ``dest`` (absolute): old one aside, new one in, old one deleted."""
    if not os.path.lexists(dest):
        os.rename(tmp, dest)
        return
    old = tempfile.mkdtemp(prefix=f".{os.path.basename(dest)}{_OLD}{os.getpid()}-", dir=os.path.dirname(dest))
    os.rmdir(old)
    os.rename(dest, old)
    try:
        os.rename(tmp, dest)
    except OSError:
        os.rename(old, dest)
        raise
    shutil.rmtree(old, ignore_errors=True)  # what cannot be deleted now, the next run cleans up


def move_into(tmp: str, dest: str) -> None:
    """``replace_folder`` for a mount point: the new marker first (a run killed during the moves leaves an earlier
    output, which the next run replaces), the old entries out into a leftover, the new ones in."""
    base = os.path.basename(dest)
    with process.interrupts_deferred():
        os.replace(os.path.join(tmp, MARKER), os.path.join(dest, MARKER))
        old = tempfile.mkdtemp(prefix=f".{base}{_TMP}{os.getpid()}-", dir=dest)
        for name in os.listdir(dest):
            if name != MARKER and leftover_pid(name, base) is None:
                os.rename(os.path.join(dest, name), os.path.join(old, name))
        for name in os.listdir(tmp):
            os.rename(os.path.join(tmp, name), os.path.join(dest, name))
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def output_folder(
    dest: str,
    tool: str,
    kind: str,
    *,
    inputs: Sequence[str] = (),
    overwrite: bool = False,
    flag: str = "output folder",
    info: Optional[Dict[str, Any]] = None,
) -> Iterator[str]:
    """A temporary folder beside ``dest`` (inside a mount point) that becomes ``dest``, marked, only if the block
    succeeds: an exception, Ctrl-C or SIGTERM leaves ``dest`` as it was and no temporary folder."""
    check_destination(dest, tool, kind, inputs=inputs, overwrite=overwrite, flag=flag)
    dest = os.path.abspath(dest)
    parent = dest if os.path.ismount(dest) else os.path.dirname(dest)
    try:
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(dest)}{_TMP}{os.getpid()}-", dir=parent)
    except OSError as error:
        raise UserError(f"{flag} {dest}: cannot create it ({error.strerror})") from None
    try:
        yield tmp
        write_note(tmp, MARKER, dict(info or {}, tool=tool, kind=kind, created=time.strftime("%Y-%m-%dT%H:%M:%S%z")))
        os.chmod(tmp, file_mode(0o777))
        (move_into if parent == dest else replace_folder)(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_file_atomically(path: str, text: str) -> None:
    """A text file written beside ``path`` and renamed over it: readers see the old or the new file, whole."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.tmp-", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
