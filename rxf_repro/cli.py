"""What the project's command lines share (standard library only): one error type, one way to run a tool's body,
and argparse's number types."""

import argparse
import functools
import sys
import threading
from typing import Callable, Optional

from rxf_repro import process


class UserError(Exception):
    """A mistake the user can fix (a flag, a file, a folder): the tool prints ``TOOL: error: MESSAGE`` and exits 1."""


def tool_main(tool: str, body: Callable[[], Optional[int]], interrupted: str = "interrupted") -> int:
    """The exit status of ``body()`` (None is 0): a ``UserError`` is one line on stderr and 1, Ctrl-C 130; SIGTERM
    raises ``SystemExit(143)`` (``process.exit_on_sigterm``), so ``finally`` blocks run as on Ctrl-C."""
    if threading.current_thread() is threading.main_thread():  # signal handlers can only be set there
        process.exit_on_sigterm()
    try:
        return body() or 0
    except UserError as error:
        print(f"{tool}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{tool}: {interrupted}", file=sys.stderr)
        return 130


def _whole_number(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"{text!r}: must be >= {low}")
    return value


# argparse types for counts: workers, GPUs, seeds per method, cycles, batch sizes; GPUs per Slurm job may be 0
positive_int = functools.partial(_whole_number, low=1)
non_negative_int = functools.partial(_whole_number, low=0)
