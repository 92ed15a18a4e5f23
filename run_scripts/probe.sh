#!/usr/bin/env bash
# Representational collapse (the paper's Section 4, Figures 3-5; rxf_repro/protocols.py): fine-tune with one method,
# then linear probes of the frozen encoder (--task sentence_prediction_probe), one record per probe; seeds default
# 1-3. PROTOCOL: generalisation (fine-tune SST-2, probe the other tasks), degradation (SST-2 -> QNLI -> QQP -> RTE,
# probing SST-2 after each step) or retention (that chain for 3 cycles, probing each task before it is fine-tuned
# again). METHOD none: the generalisation probes of the pretrained model itself.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
GLUE_BIN="${GLUE_BIN:-}"   # preprocess/glue.sh GLUE_DIR ALL $GLUE_BIN  ->  $GLUE_BIN/SST-2-bin, ...
ROBERTA="${ROBERTA:-}"     # roberta.large/model.pt
USAGE="run_scripts/probe.sh PROTOCOL METHOD [SEED ...] [OPTIONS] [-- FAIRSEQ_ARGS]"
ENVIRONMENT="GLUE_BIN (folder of TASK-bin/), ROBERTA (model.pt), $SHARED"
usage probe 2 "$@"
require GLUE_BIN "the folder preprocess/glue.sh ALL wrote"
require ROBERTA "path of roberta.large/model.pt"
INPUTS=(--data "$GLUE_BIN" --checkpoint "$ROBERTA")
rxf_run probe 2 "$@"
