#!/usr/bin/env bash
# CNN/DailyMail, Gigaword, Reddit TIFU -> fairseq binaries (BART recipe layout), validated and atomic.
# See rxf_repro/data/summarization.py.
set -euo pipefail

usage() {
  cat <<USAGE
usage: preprocess/summarization.sh DATASET RAW_DIR OUT_DIR --encoder-json FILE --vocab-bpe FILE --dict FILE
                                   [--workers N] [--skip-empty] [--tifu-split pegasus|hash] [--overwrite]
  DATASET: cnn_dm (train/val/test.source/.target), gigaword (org_data or sumdata),
           reddit_tifu (tifu_all_tokenized_and_filtered.json [+ reddit_tifu_long_splits.json])
  --encoder-json, --vocab-bpe  GPT-2 BPE's encoder.json and vocab.bpe
  --dict              BART's dict.txt (preprocess/download.sh fetches these three)
  --workers N         processes for encoding and binarizing (default 1)
  --skip-empty        leave out examples whose source or target is empty, counted (default: an error)
  --tifu-split        reddit_tifu: pegasus (PEGASUS's released split, the default) or hash (of the post id)
  --overwrite         replace OUT_DIR even if it is not an earlier output of this script (default: refuse)
USAGE
}
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then usage; exit 0; fi
if [ $# -lt 3 ]; then usage >&2; exit 2; fi

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-$HERE/../.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
# the repository on the path, so that this works from a source checkout before (or without) installing
exec env PYTHONPATH="$HERE/..${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m rxf_repro.data.summarization "$@"
