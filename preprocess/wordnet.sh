#!/usr/bin/env bash
# WordNet 3.0 -> GLUE-shaped tasks (TSVs) for make demo, deterministic and atomic. See rxf_repro/data/wordnet.py.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-$HERE/../.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
# the repository on the path, so that this works from a source checkout before (or without) installing
exec env PYTHONPATH="$HERE/..${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m rxf_repro.data.wordnet "$@"
