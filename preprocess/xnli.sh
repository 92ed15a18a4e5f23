#!/usr/bin/env bash
# XNLI zero-shot (MNLI train + XNLI dev/test in 15 languages) -> fairseq binaries. See rxf_repro/data/xnli.py.
set -euo pipefail

usage() {
  cat <<USAGE
usage: preprocess/xnli.sh MNLI_DIR XNLI_DIR OUT_DIR --sentencepiece-model FILE --dict FILE [--workers N]
                          [--overwrite]
  MNLI_DIR: GLUE's MNLI folder; XNLI_DIR: XNLI-1.0 (xnli.dev.tsv, xnli.test.tsv)
  --sentencepiece-model  XLM-R's sentencepiece.bpe.model
  --dict                 XLM-R's dict.txt
  --workers N            processes for encoding and binarizing (default 1)
  --overwrite            replace OUT_DIR even if it is not an earlier output of this script (default: refuse)
USAGE
}
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then usage; exit 0; fi
if [ $# -lt 3 ]; then usage >&2; exit 2; fi

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-$HERE/../.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
# the repository on the path, so that this works from a source checkout before (or without) installing
exec env PYTHONPATH="$HERE/..${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m rxf_repro.data.xnli "$@"
