#!/usr/bin/env bash
# CNN/DailyMail, Gigaword, Reddit TIFU -> fairseq binaries (BART recipe layout), validated and atomic.
# See rxf_repro/data/summarization.py.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-$HERE/../.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
# the repository on the path, so that this works from a source checkout before (or without) installing; --help and
# usage errors are argparse's
exec env PYTHONPATH="$HERE/..${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m rxf_repro.data.summarization "$@"
