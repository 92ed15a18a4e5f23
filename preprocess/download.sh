#!/usr/bin/env bash
# Fetch the public files of rxf_repro/data/downloads.tsv, each verified by SHA-256. See rxf_repro/data/download.py.
set -euo pipefail

usage() {
  cat <<USAGE
usage: preprocess/download.sh DEST_DIR WHAT... [--dry-run] [--allow-unverified] [--workers N] [--manifest FILE]
  WHAT: all, a group (gpt2_bpe roberta bart xlmr glue xnli cnn_dm gigaword reddit_tifu) or an entry name
  Files without a published checksum (model archives, GPT-2 dict.txt) need --allow-unverified.
USAGE
}
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then usage; exit 0; fi
if [ $# -lt 2 ]; then usage >&2; exit 2; fi

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-$HERE/../.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
# the repository on the path, so that this works from a source checkout before (or without) installing
exec env PYTHONPATH="$HERE/..${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m rxf_repro.data.download "$@"
