#!/usr/bin/env bash
# Fetch the public files of rxf_repro/data/downloads.tsv, each verified by SHA-256; --help says how (argparse, in
# rxf_repro/data/download.py, which this execs).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-$HERE/../.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
# the repository on the path, so that this works from a source checkout before (or without) installing
exec env PYTHONPATH="$HERE/..${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m rxf_repro.data.download "$@"
