"""Folders the project's tools write: owned, replaced atomically, never somebody else's.

Every tool that writes a folder (``preprocess/*.sh``, ``rxf-report``, ``rxf-demo``, ``rxf-import-hf``) builds it
in a temporary folder beside the destination and renames it into place, with a marker file naming the tool and
the kind of output. An existing non-empty destination is replaced only if its marker names the same tool and
kind, or with the tool's ``--overwrite``. Replacement renames the old folder aside, renames the new one in, then
deletes the old one, so a crash at any point leaves the old or the new folder whole; the leftovers of a killed
run (its temporary folder, or an old folder renamed aside) are cleaned up, or put back, by the next run.

Standard library only: imported by commands that must not import fairseq or torch.
"""

import contextlib
import json
import os
import shutil
import tempfile
import time
from typing import Any, Dict, Iterator, Optional, Sequence

MARKER = ".rxf-output.json"
_TMP, _OLD = ".tmp-", ".old-"


class OutputError(Exception):
    """A destination that must not or cannot be written; the message names it and says what to do."""


def owner(folder: str) -> Optional[Dict[str, Any]]:
    """The marker of a folder written by one of our tools (``tool``, ``kind``, ...), or None."""
    try:
        with open(os.path.join(folder, MARKER), encoding="utf-8") as f:
            marker = json.load(f)
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and "tool" in marker and "kind" in marker else None


def pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _leftover_pid(name: str, base: str) -> Optional[int]:
    """The pid in ``.BASE.tmp-PID-xxxx`` / ``.BASE.old-PID-xxxx``, or None for any other name."""
    for kind in (_TMP, _OLD):
        prefix = f".{base}{kind}"
        if name.startswith(prefix):
            pid = name[len(prefix) :].split("-", 1)[0]
            return int(pid) if pid.isdigit() else None
    return None


def clean_leftovers(dest: str) -> None:
    """Remove what killed runs left beside ``dest``: their temporary folders, and old folders renamed aside
    (put back in place when the kill came before the new folder was renamed in)."""
    dest = os.path.abspath(dest)
    parent, base = os.path.split(dest)
    try:
        names = sorted(os.listdir(parent))
    except OSError:
        return
    for name in names:
        pid = _leftover_pid(name, base)
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
    """Refuse, before any work, a destination that would destroy something or could not be written:
    a link, a file, a folder that is or holds an input, a non-empty folder that is not ``tool``'s own earlier
    ``kind`` output (unless ``overwrite``), or a parent folder we cannot write in."""
    where = f"{flag} {dest}"
    if os.path.islink(dest):
        raise OutputError(
            f"{where}: is a symbolic link (to {os.readlink(dest)}); give the folder itself, "
            "since replacing it would replace the link"
        )
    if os.path.lexists(dest) and not os.path.isdir(dest):
        raise OutputError(f"{where}: exists and is not a folder")
    real = os.path.realpath(dest)
    for path in inputs:
        inside = os.path.realpath(path)
        if inside == real or inside.startswith(real.rstrip(os.sep) + os.sep):
            raise OutputError(
                f"{where}: is or contains the input {path}, which replacing it would delete; choose another folder"
            )
    if os.path.isdir(dest) and os.listdir(dest) and not overwrite:
        mark = owner(dest)
        if mark is None or (mark.get("tool"), mark.get("kind")) != (tool, kind):
            found = (
                f"it was written by {mark['tool']} ({mark['kind']})" if mark else f"it has no {MARKER} naming {tool}"
            )
            raise OutputError(
                f"{where}: exists and is not an earlier {kind} output of {tool} ({found}); "
                "choose another folder, or pass --overwrite to replace it"
            )
    parent = os.path.dirname(os.path.abspath(dest))
    existing = parent
    while not os.path.isdir(existing):
        existing = os.path.dirname(existing)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"{where}: cannot write in {existing} (permission denied)")


def _mode_for_umask() -> int:
    """0o777 without the process's umask, read from /proc where it can be (``os.umask`` sets it to read it: a thread
    creating a file meanwhile would get mode 0777 or 0666)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            umask = next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        umask = os.umask(0)
        os.umask(umask)
    return 0o777 & ~umask


def file_mode() -> int:
    """The mode ``open`` gives a new file under the current umask (``mkstemp`` gives 0600, which would hide a record
    or a download from the group sharing the folder)."""
    return 0o666 & _mode_for_umask()


def replace_folder(tmp: str, dest: str) -> None:
    """Put the finished folder ``tmp`` at ``dest``: old one aside, new one in, old one deleted."""
    dest = os.path.abspath(dest)
    parent, base = os.path.split(dest)
    old = None
    if os.path.lexists(dest):
        old = tempfile.mkdtemp(prefix=f".{base}{_OLD}{os.getpid()}-", dir=parent)
        os.rmdir(old)
        os.rename(dest, old)
    try:
        os.rename(tmp, dest)
    except OSError:
        if old is not None:
            os.rename(old, dest)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)  # what cannot be deleted now, the next run cleans up


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
    """A temporary folder beside ``dest`` that becomes ``dest`` (with the marker) only if the block succeeds.

    Checks the destination first (``check_destination``) and cleans up after killed runs. Any exception,
    Ctrl-C or SIGTERM (see ``rxf_repro.process``) inside the block leaves ``dest`` as it was and no
    temporary folder behind.
    """
    check_destination(dest, tool, kind, inputs=inputs, overwrite=overwrite, flag=flag)
    dest = os.path.abspath(dest)
    parent, base = os.path.split(dest)
    try:
        os.makedirs(parent, exist_ok=True)
        clean_leftovers(dest)
        tmp = tempfile.mkdtemp(prefix=f".{base}{_TMP}{os.getpid()}-", dir=parent)
    except OSError as error:
        raise OutputError(f"{flag} {dest}: cannot create it ({error.strerror})") from None
    try:
        yield tmp
        marker = dict(info or {}, tool=tool, kind=kind, created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        with open(os.path.join(tmp, MARKER), "w", encoding="utf-8") as f:
            json.dump(marker, f, indent=2, sort_keys=True)
            f.write("\n")
        os.chmod(tmp, _mode_for_umask())  # mkdtemp's 0700 would hide the output from the group
        replace_folder(tmp, dest)
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
