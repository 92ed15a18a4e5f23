#!/usr/bin/env bash
# GLUE, the paper's Table 2: RoBERTa-large fine-tuned on one task with one method, over seeds (default 1-10: the
# paper's best hyper-parameters, then 10 seeds; max and median). --sweep: the method's grid for each seed.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
GLUE_BIN="${GLUE_BIN:-}"   # preprocess/glue.sh GLUE_DIR ALL $GLUE_BIN  ->  $GLUE_BIN/RTE-bin, ...
ROBERTA="${ROBERTA:-}"     # roberta.large/model.pt
USAGE="run_scripts/glue.sh TASK METHOD [SEED ...] [OPTIONS] [-- FAIRSEQ_ARGS]"
ENVIRONMENT="GLUE_BIN (folder of TASK-bin/), ROBERTA (model.pt), $SHARED"
usage glue 2 "$@"
require GLUE_BIN "the folder preprocess/glue.sh ALL wrote"
require ROBERTA "path of roberta.large/model.pt"
INPUTS=(--data "$GLUE_BIN" --checkpoint "$ROBERTA")
rxf_run glue 2 "$@"
