# Shared by run_scripts/*.sh: where things are, and the call into rxf-run (rxf_repro/runs.py), which
# composes configs/ exactly as fairseq-hydra-train does and writes one record.json per run.
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-$HERE/../.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
SAVE_ROOT="${SAVE_ROOT:-runs}"   # run folders and records: $SAVE_ROOT/FAMILY/TASK/METHOD/SETTING/seedN
NUM_GPUS="${NUM_GPUS:-1}"        # GPUs per run (fairseq's --distributed-world-size)
FP16="${FP16:-1}"                # 0: fp32 (the configs train in fp16, as fairseq's RoBERTa and BART recipes do)
CPU="${CPU:-0}"                  # 1: on the CPU (tests, tiny models)

rxf_run() {  # rxf_run FAMILY ARGS...: the shared flags, extended with "$@"
  local flags=(--save-root "$SAVE_ROOT" --num-gpus "$NUM_GPUS")
  [ "$FP16" = 1 ] || flags+=(--no-fp16)
  [ "$CPU" = 0 ] || flags+=(--cpu)
  local family="$1"; shift
  local before=() after=() seen=0
  for a in "$@"; do  # keep "-- FAIRSEQ_ARGS" last
    if [ "$seen" = 1 ]; then after+=("$a"); elif [ "$a" = "--" ]; then seen=1; else before+=("$a"); fi
  done
  exec "$PYTHON" -m rxf_repro.runs "$family" "${before[@]}" "${flags[@]}" ${after[@]+-- "${after[@]}"}
}

seed_list() {  # "1 2 3" -> "1,2,3"
  local IFS=,; echo "$*"
}

require() {  # require VAR "what it is"
  if [ -z "${!1:-}" ]; then echo "error: set $1 ($2)" >&2; exit 2; fi
}
