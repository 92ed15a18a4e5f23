#!/usr/bin/env bash
# The device check, one command: benchmarks/gpu_check.sh [--device cuda|cpu] [--tiny] [OUT_DIR]
#
#   benchmarks/gpu_check.sh                          # on a GPU machine: OUT_DIR defaults to $OUT
#   benchmarks/gpu_check.sh --device cpu --tiny out  # anywhere (make test runs this)
#
# 1. Set-up: if fairseq (with hydra-core, omegaconf, bitarray, sacremoses) does not import, installs what
#    benchmarks/gpu_wheels.sh put in benchmarks/offline/ (prepared on a machine with network, carried with the
#    checkout), offline, into OUT_DIR/site (on PYTHONPATH: nothing of the machine's own installation changes), and
#    says what it installed and how long that took.
# 2. benchmarks/gpu_check.py: training runs, cost, host reads; OUT_DIR/gpu_check.json and gpu_check.md.
# Exit status: 0 when every check passed, 1 when one failed (each named), 2 for bad arguments.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
device=cuda
tiny=()
out="${OUT:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --device)
      [ $# -ge 2 ] || { echo "gpu_check.sh: --device needs cuda or cpu" >&2; exit 2; }
      case "$2" in cuda | cpu) device=$2 ;; *) echo "gpu_check.sh: --device $2: expected cuda or cpu" >&2; exit 2 ;; esac
      shift 2
      ;;
    --tiny) tiny=(--tiny); shift ;;
    -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "gpu_check.sh: unknown option $1" >&2; exit 2 ;;
    *) out=$1; shift ;;
  esac
done
[ -n "$out" ] || { echo "gpu_check.sh: no OUT_DIR given and \$OUT is not set" >&2; exit 2; }
mkdir -p "$out"
out=$(cd "$out" && pwd)
python=${PYTHON:-python3}
if [ -x "$repo/.venv/bin/python" ] && [ -z "${PYTHON:-}" ]; then python="$repo/.venv/bin/python"; fi

started=$(date +%s)
if "$python" -c "import fairseq, hydra, omegaconf, bitarray, sacremoses" 2>/dev/null; then
  echo "gpu_check.sh: set-up: fairseq $("$python" -c 'import fairseq; print(fairseq.__version__)') already imports; nothing installed"
else
  offline="$here/offline"
  if ! ls "$offline"/*.whl > /dev/null 2>&1; then
    echo "gpu_check.sh: fairseq does not import and $offline holds no wheels: run benchmarks/gpu_wheels.sh where pip reaches a registry, and carry benchmarks/offline with the checkout" >&2
    exit 1
  fi
  echo "gpu_check.sh: set-up: installing $(ls "$offline"/*.whl | wc -l) wheels from $offline into $out/site (offline, no dependencies resolved) ..."
  "$python" -m pip install --quiet --no-index --no-deps --target "$out/site" "$offline"/*.whl
  export PYTHONPATH="$out/site${PYTHONPATH:+:$PYTHONPATH}"
  "$python" -c "import fairseq, hydra, omegaconf, bitarray, sacremoses" || {
    echo "gpu_check.sh: set-up: fairseq still does not import after installing $offline" >&2
    exit 1
  }
  echo "gpu_check.sh: set-up: installed $(ls "$offline"/*.whl | xargs -n1 basename | tr '\n' ' ')in $(($(date +%s) - started)) s"
fi
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" "$here/gpu_check.py" --device "$device" "${tiny[@]}" --out "$out"
