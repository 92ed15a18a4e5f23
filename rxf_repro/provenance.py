"""Where a measured number comes from: date, commit, machine. Every results JSON carries it. Standard library only
(torch and fairseq versions are read from package metadata, not imported)."""

import datetime
import os
import platform
import subprocess
from importlib import metadata
from typing import Any, Dict, Optional

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _git(*args: str) -> Optional[str]:
    try:
        return subprocess.check_output(
            ["git", *args], cwd=REPO, text=True, timeout=10, stderr=subprocess.DEVNULL
        ).strip()
    except (OSError, subprocess.SubprocessError):
        return None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def _version(package: str) -> Optional[str]:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def provenance() -> Dict[str, Any]:
    """``{"date", "commit", "dirty", "machine": {...}}`` for a results file."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "commit": _git("rev-parse", "HEAD"),
        "dirty": bool(status) if status is not None else None,
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "os": platform.platform(),
            "python": platform.python_version(),
            "torch": _version("torch"),
            "fairseq": _version("fairseq-fixed") or _version("fairseq"),
        },
    }
