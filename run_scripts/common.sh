# Shared by run_scripts/*.sh: where things are, and the call into rxf-run (rxf_repro/runs.py), which
# composes configs/ exactly as fairseq-hydra-train does and writes one record.json per run.
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-$HERE/../.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
SAVE_ROOT="${SAVE_ROOT:-runs}"   # run folders and records: $SAVE_ROOT/FAMILY/TASK/METHOD/SETTING/seedN
NUM_GPUS="${NUM_GPUS:-1}"        # GPUs per run (fairseq's --distributed-world-size)
FP16="${FP16:-1}"                # 0: fp32 (the configs train in fp16, as fairseq's RoBERTa and BART recipes do)
CPU="${CPU:-0}"                  # 1: on the CPU (tests, tiny models)
SHARED="SAVE_ROOT (runs), NUM_GPUS (1), FP16 (1), CPU (0)"

usage() {  # usage FAMILY N ARGS...: --help is the script's usage, then rxf-run FAMILY's options; < N arguments: exit 2
  local family="$1" need="$2"; shift 2
  if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
    echo "usage: $USAGE"
    echo "environment: $ENVIRONMENT"
    echo "SEED: plain numbers, for --seeds; OPTIONS: rxf-run $family's (the environment gives --data and --checkpoint):"
    echo
    exec "$PYTHON" -m rxf_repro.runs "$family" --help
  fi
  if [ $# -lt "$need" ]; then echo "usage: $USAGE  (--help: the options)" >&2; exit 2; fi
}

rxf_run() {  # rxf_run FAMILY N ARGS...: ARGS' first N, "${INPUTS[@]}", the seeds given after them (plain numbers;
             # none: rxf-run's default), ARGS' other options, the shared flags, and "-- FAIRSEQ_ARGS" last
  local family="$1" need="$2"; shift 2
  local positional=("${@:1:$need}") seeds=() before=() after=() seen=0
  shift "$need"
  while [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]]; do seeds+=("$1"); shift; done
  [ ${#seeds[@]} -eq 0 ] || INPUTS+=(--seeds "$(IFS=,; echo "${seeds[*]}")")
  local flags=(--save-root "$SAVE_ROOT" --num-gpus "$NUM_GPUS")
  [ "$FP16" = 1 ] || flags+=(--no-fp16)
  [ "$CPU" = 0 ] || flags+=(--cpu)
  for a in "$@"; do  # keep "-- FAIRSEQ_ARGS" last
    if [ "$seen" = 1 ]; then after+=("$a"); elif [ "$a" = "--" ]; then seen=1; else before+=("$a"); fi
  done
  exec "$PYTHON" -m rxf_repro.runs "$family" "${positional[@]}" "${INPUTS[@]}" "${before[@]}" "${flags[@]}" \
    ${after[@]+-- "${after[@]}"}
}

require() {  # require VAR "what it is"
  if [ -z "${!1:-}" ]; then echo "error: set $1 ($2)" >&2; exit 2; fi
}
