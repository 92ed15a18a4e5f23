#!/usr/bin/env bash
# Summarisation, the paper's Table 4: BART-large (+ R3F) on CNN/DailyMail, Gigaword or Reddit TIFU;
# then fairseq-generate with the dataset's decoding settings and rxf-rouge (references first).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
SUMM_BIN="${SUMM_BIN:-}"     # preprocess/summarization.sh DATASET RAW $SUMM_BIN/DATASET-bin ...
BART="${BART:-}"             # bart.large/model.pt
BPE_DIR="${BPE_DIR:-}"       # folder with GPT-2's encoder.json and vocab.bpe (to decode the generations)

usage() {
  cat <<USAGE
usage: run_scripts/summarization.sh DATASET METHOD [SEED ...] [--sweep] [--dry-run] [--set KEY=VALUE] [-- FAIRSEQ_ARGS]
  DATASET: cnn_dm gigaword reddit_tifu      METHOD: std r3f      SEED: default 1
  --sweep: lambda in {0.001, 0.01, 0.1} x noise {U, N} (Table 8)
  environment: SUMM_BIN (folder of DATASET-bin/), BART (model.pt), BPE_DIR, SAVE_ROOT (runs), NUM_GPUS (1), FP16 (1), CPU (0)
USAGE
}
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then usage; exit 0; fi
if [ $# -lt 2 ]; then usage >&2; exit 2; fi
DATASET="$1"; METHOD="$2"; shift 2
SEEDS=()
while [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]]; do SEEDS+=("$1"); shift; done
[ ${#SEEDS[@]} -gt 0 ] || SEEDS=(1)
require SUMM_BIN "the folder holding DATASET-bin/ from preprocess/summarization.sh"
require BART "path of bart.large/model.pt"
require BPE_DIR "folder with GPT-2's encoder.json and vocab.bpe"
rxf_run summarization "$DATASET" "$METHOD" --data "$SUMM_BIN/$DATASET-bin" --checkpoint "$BART" \
  --encoder-json "$BPE_DIR/encoder.json" --vocab-bpe "$BPE_DIR/vocab.bpe" --seeds "$(seed_list "${SEEDS[@]}")" "$@"
