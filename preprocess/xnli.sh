#!/usr/bin/env bash
# XNLI zero-shot (MNLI train + XNLI dev/test in 15 languages) -> fairseq binaries. See rxf_repro/data/xnli.py.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-$HERE/../.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
# the repository on the path, so that this works from a source checkout before (or without) installing; --help and
# usage errors are argparse's
exec env PYTHONPATH="$HERE/..${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m rxf_repro.data.xnli "$@"
