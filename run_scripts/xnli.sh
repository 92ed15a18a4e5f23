#!/usr/bin/env bash
# XNLI zero-shot, the paper's Table 3: XLM-R large fine-tuned on English MNLI, tested on 15 languages, 5 runs.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
XNLI_BIN="${XNLI_BIN:-}"   # preprocess/xnli.sh MNLI_DIR XNLI_DIR $XNLI_BIN ...
XLMR="${XLMR:-}"           # xlmr.large/model.pt

usage() {
  cat <<USAGE
usage: run_scripts/xnli.sh METHOD [SEED ...] [--sweep] [--dry-run] [--set KEY=VALUE] [--languages en fr ...] [-- FAIRSEQ_ARGS]
  METHOD: std r3f r4f     SEED: default 1 2 3 4 5 (the paper: average of 5 runs)
  --sweep: lambda in {0.5, 1, 3, 5} x noise {U, N} (Table 9)
  environment: XNLI_BIN, XLMR (model.pt), SAVE_ROOT (runs), NUM_GPUS (1), FP16 (1), CPU (0)
USAGE
}
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then usage; exit 0; fi
if [ $# -lt 1 ]; then usage >&2; exit 2; fi
METHOD="$1"; shift
SEEDS=()
while [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]]; do SEEDS+=("$1"); shift; done
[ ${#SEEDS[@]} -gt 0 ] || SEEDS=(1 2 3 4 5)
require XNLI_BIN "the folder preprocess/xnli.sh wrote"
require XLMR "path of xlmr.large/model.pt"
rxf_run xnli "$METHOD" --data "$XNLI_BIN" --checkpoint "$XLMR" --seeds "$(seed_list "${SEEDS[@]}")" "$@"
