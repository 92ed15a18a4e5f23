"""The one error of the plugin: a bad option or an unusable model/task, as one line ``TOOL: error: ...``."""

import os
import sys

from hydra.errors import CompactHydraException


def fairseq_tool() -> str:
    """The command the user ran, for error lines: ``fairseq-train`` for both ``fairseq-train`` and
    ``python -m fairseq_cli.train``."""
    argv0 = sys.argv[0] if sys.argv else ""
    stem = os.path.splitext(os.path.basename(argv0))[0]
    if os.path.basename(os.path.dirname(argv0)) == "fairseq_cli":
        return "fairseq-" + stem.replace("_", "-")
    return stem if stem.startswith("fairseq-") else "fairseq"


class OptionError(ValueError, SystemExit, CompactHydraException):
    """A bad option or an unusable model/task, as one line ``TOOL: error: FLAG ...`` and exit 1. fairseq-train has no
    handler for start-up errors, so the bases do the work: the interpreter prints a ``SystemExit`` alone, hydra a
    ``CompactHydraException`` without a traceback; Python callers catch the ``ValueError``."""

    def __init__(self, message: str):
        line = f"{fairseq_tool()}: error: {message}"
        self.message = message  # without the tool's name, for callers that report it under their own
        ValueError.__init__(self, line)
        self.code = line  # what SystemExit prints; ValueError's __init__ leaves it None (exit status 0)
