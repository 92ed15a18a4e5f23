#!/usr/bin/env bash
# GLUE, the paper's Table 2: RoBERTa-large fine-tuned on one task with one method, over seeds.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
GLUE_BIN="${GLUE_BIN:-}"   # preprocess/glue.sh GLUE_DIR ALL $GLUE_BIN  ->  $GLUE_BIN/RTE-bin, ...
ROBERTA="${ROBERTA:-}"     # roberta.large/model.pt

usage() {
  cat <<USAGE
usage: run_scripts/glue.sh TASK METHOD [SEED ...] [--sweep] [--dry-run] [--set KEY=VALUE] [-- FAIRSEQ_ARGS]
  TASK:   MNLI QNLI QQP SST-2 RTE MRPC CoLA STS-B      METHOD: std std++ r3f r4f fast-r3f smart
  SEED:   default 1 2 ... 10 (the paper: best hyper-parameters, then 10 seeds; max and median)
  --sweep: every setting of the method's grid (lambda in {0.1, 0.5, 1, 5} x noise {U, N}) for each seed
  environment: GLUE_BIN (folder of TASK-bin/), ROBERTA (model.pt), SAVE_ROOT (runs), NUM_GPUS (1), FP16 (1), CPU (0)
  example: GLUE_BIN=glue-bin ROBERTA=roberta.large/model.pt run_scripts/glue.sh RTE r3f 1 2 3 --dry-run
USAGE
}
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then usage; exit 0; fi
if [ $# -lt 2 ]; then usage >&2; exit 2; fi
TASK="$1"; METHOD="$2"; shift 2
SEEDS=()
while [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]]; do SEEDS+=("$1"); shift; done
[ ${#SEEDS[@]} -gt 0 ] || SEEDS=(1 2 3 4 5 6 7 8 9 10)
require GLUE_BIN "the folder preprocess/glue.sh ALL wrote"
require ROBERTA "path of roberta.large/model.pt"
rxf_run glue "$TASK" "$METHOD" --data "$GLUE_BIN" --checkpoint "$ROBERTA" --seeds "$(seed_list "${SEEDS[@]}")" "$@"
