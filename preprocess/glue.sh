#!/usr/bin/env bash
# GLUE -> fairseq binaries (RoBERTa recipe layout), validated and atomic. See rxf_repro/data/glue.py.
set -euo pipefail

usage() {
  cat <<USAGE
usage: preprocess/glue.sh GLUE_DIR TASK|ALL OUT_DIR --encoder-json FILE --vocab-bpe FILE --dict FILE
                          [--workers N] [--skip-malformed] [--overwrite]
       preprocess/glue.sh GLUE_DIR TASK|ALL OUT_DIR --wordpiece-vocab FILE --dict FILE [...]
  TASK: CoLA SST-2 MRPC QQP MNLI QNLI RTE STS-B (ALL: each into OUT_DIR/TASK-bin, OUT_DIR replaced as one)
        or make demo's WN-POS WN-LEX WN-DEF WN-BSHIFT (their TSVs: preprocess/wordnet.sh)
  --encoder-json, --vocab-bpe  GPT-2 BPE's encoder.json and vocab.bpe
  --wordpiece-vocab   instead of GPT-2 BPE: vocab.txt of a BERT checkpoint imported with rxf-import-hf
  --dict              the model's dict.txt (RoBERTa's: preprocess/download.sh fetches these three; or rxf-import-hf's)
  --workers N         processes for encoding and binarizing (default 1)
  --skip-malformed    skip rows with the wrong number of fields and empty lines, counted
  --overwrite         replace OUT_DIR even if it is not an earlier output of this script (default: refuse)
USAGE
}
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then usage; exit 0; fi
if [ $# -lt 3 ]; then usage >&2; exit 2; fi

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-$HERE/../.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
# the repository on the path, so that this works from a source checkout before (or without) installing
exec env PYTHONPATH="$HERE/..${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m rxf_repro.data.glue "$@"
