#!/usr/bin/env bash
# XNLI zero-shot, the paper's Table 3: XLM-R large fine-tuned on English MNLI, tested on 15 languages, over seeds
# (default 1-5: the paper's average of 5 runs). --sweep: the method's grid (Table 9) for each seed.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
XNLI_BIN="${XNLI_BIN:-}"   # preprocess/xnli.sh MNLI_DIR XNLI_DIR $XNLI_BIN ...
XLMR="${XLMR:-}"           # xlmr.large/model.pt
USAGE="run_scripts/xnli.sh METHOD [SEED ...] [OPTIONS] [-- FAIRSEQ_ARGS]"
ENVIRONMENT="XNLI_BIN, XLMR (model.pt), $SHARED"
usage xnli 1 "$@"
require XNLI_BIN "the folder preprocess/xnli.sh wrote"
require XLMR "path of xlmr.large/model.pt"
INPUTS=(--data "$XNLI_BIN" --checkpoint "$XLMR")
rxf_run xnli 1 "$@"
