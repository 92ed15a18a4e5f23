#!/usr/bin/env bash
# Summarisation, the paper's Table 4: BART-large (+ R3F) on CNN/DailyMail, Gigaword or Reddit TIFU (seed 1 unless
# given; --sweep: the method's grid, Table 8); then fairseq-generate with the dataset's decoding settings and
# rxf-rouge (references first).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
SUMM_BIN="${SUMM_BIN:-}"     # preprocess/summarization.sh DATASET RAW $SUMM_BIN/DATASET-bin ...
BART="${BART:-}"             # bart.large/model.pt
BPE_DIR="${BPE_DIR:-}"       # folder with GPT-2's encoder.json and vocab.bpe (to decode the generations)
USAGE="run_scripts/summarization.sh DATASET METHOD [SEED ...] [OPTIONS] [-- FAIRSEQ_ARGS]"
ENVIRONMENT="SUMM_BIN (folder of DATASET-bin/), BART (model.pt), BPE_DIR, $SHARED"
usage summarization 2 "$@"
require SUMM_BIN "the folder holding DATASET-bin/ from preprocess/summarization.sh"
require BART "path of bart.large/model.pt"
require BPE_DIR "folder with GPT-2's encoder.json and vocab.bpe"
INPUTS=(--data "$SUMM_BIN/$1-bin" --checkpoint "$BART")
INPUTS+=(--encoder-json "$BPE_DIR/encoder.json" --vocab-bpe "$BPE_DIR/vocab.bpe")
rxf_run summarization 2 "$@"
