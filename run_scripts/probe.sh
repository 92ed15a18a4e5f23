#!/usr/bin/env bash
# Representational collapse (the paper's Section 4, Figures 3-5): fine-tune with one method, then linear
# probes of the frozen encoder (--task sentence_prediction_probe), one record per probe.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
GLUE_BIN="${GLUE_BIN:-}"   # preprocess/glue.sh GLUE_DIR ALL $GLUE_BIN  ->  $GLUE_BIN/SST-2-bin, ...
ROBERTA="${ROBERTA:-}"     # roberta.large/model.pt

usage() {
  cat <<USAGE
usage: run_scripts/probe.sh PROTOCOL METHOD [SEED ...] [--sweep] [--dry-run] [--set KEY=VALUE] [--probe-set KEY=VALUE]
                            [-- FAIRSEQ_ARGS]
  PROTOCOL: generalisation (Fig. 3: fine-tune SST-2, probe MNLI QNLI QQP RTE MRPC CoLA)
            degradation    (Fig. 4: SST-2 -> QNLI -> QQP -> RTE, probe SST-2 after each step)
            retention      (Fig. 5: that chain for 3 cycles, probe each task before it is fine-tuned again)
  METHOD:   std std++ r3f r4f fast-r3f smart; none (generalisation: probe the pretrained model)   SEED: default 1 2 3
  --set: fine-tuning and probes (criterion.*: fine-tuning only); --probe-set: probes only
  environment: GLUE_BIN (folder of TASK-bin/), ROBERTA (model.pt), SAVE_ROOT (runs), NUM_GPUS (1), FP16 (1), CPU (0)
USAGE
}
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then usage; exit 0; fi
if [ $# -lt 2 ]; then usage >&2; exit 2; fi
PROTOCOL="$1"; METHOD="$2"; shift 2
SEEDS=()
while [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]]; do SEEDS+=("$1"); shift; done
[ ${#SEEDS[@]} -gt 0 ] || SEEDS=(1 2 3)
require GLUE_BIN "the folder preprocess/glue.sh ALL wrote"
require ROBERTA "path of roberta.large/model.pt"
rxf_run probe "$PROTOCOL" "$METHOD" --data "$GLUE_BIN" --checkpoint "$ROBERTA" --seeds "$(seed_list "${SEEDS[@]}")" "$@"
