#!/usr/bin/env bash
# Usage: benchmarks/gpu_wheels.sh [DEST]        (DEST defaults to benchmarks/offline, which git ignores)
#
# Run on a machine WITH network access (PyPI through pip) and Python 3.12 (PY312, default `python3.12`; under pyenv
# PYENV_VERSION=3.12.1 is set when unset). Fills DEST with the wheels that a bare GPU machine (Python 3.12, torch with
# CUDA, transformers, sentencepiece and numpy installed; no network) lacks to run fairseq-fixed 0.12.3.1's text tasks:
#
#   * cp312 / py3-none-any manylinux x86_64 wheels, pinned, without dependencies (`pip download --no-deps`), of what
#     `import fairseq` and fairseq-train's sentence_prediction / translation tasks import: hydra-core, omegaconf,
#     antlr4-python3-runtime (an sdist only: built into a wheel here with Python 3.12), bitarray, sacrebleu (and
#     portalocker, tabulate, colorama, lxml), scikit-learn (fairseq/tasks/audio_classification.py imports it whenever
#     fairseq.tasks is imported; and scipy, joblib, cloudpickle, threadpoolctl, narwhals), sacremoses (and click);
#   * a cp312 wheel of fairseq-fixed 0.12.3.1 built here in a throw-away Python 3.12 venv WITHOUT torch: its Cython
#     extensions (fairseq.data.data_utils_fast, fairseq.data.token_block_utils_fast) and fairseq.libbleu are compiled;
#     its torch C++ extensions (libbase, libnat, libnat_cuda, ngram_repeat_block_cuda, alignment_train_*) are not:
#     they serve non-autoregressive translation, base layers and alignment only, and built against another torch
#     they would not load. setup.py imports torch.utils.cpp_extension unconditionally and has no switch to skip them,
#     so the build sees a stand-in `torch` package that offers CppExtension/BuildExtension and drops the CppExtension
#     modules before build_ext; the sdist itself is not modified. The wheel is repacked without fairseq/examples'
#     non-code assets (*.npy test fixtures, *.png, *.ipynb, *.flac: 9 of its 12 MB); its Python files stay;
#   * DEST/README (what is there, the offline install commands) and DEST/SHA256SUMS (`sha256sum -c SHA256SUMS`).
#
# Not included: torch, torchaudio (fairseq-fixed declares it; install fairseq-fixed with --no-deps), numpy, and what
# transformers itself requires (regex, tqdm, packaging, PyYAML, ...); cffi and cython (declared by fairseq-fixed,
# imported by none of its modules at run time). Idempotent: a wheel already in DEST is kept. Fails, naming the package,
# when a wheel would take DEST past 64 MiB.
set -euo pipefail

case "${1:-}" in
    -h | --help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "gpu_wheels.sh: unknown option $1 (usage: benchmarks/gpu_wheels.sh [DEST])" >&2; exit 2 ;;
esac

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEST=${1:-$REPO/benchmarks/offline}
LIMIT=$((64 * 1024 * 1024))
PY312=${PY312:-python3.12}
export PYENV_VERSION=${PYENV_VERSION:-3.12.1}

FAIRSEQ=fairseq-fixed==0.12.3.1
# Pinned to the versions this repository's development venv (Python 3.11) runs its tests with.
BINARY=(
    hydra-core==1.3.2 omegaconf==2.3.0 bitarray==3.12.3
    sacrebleu==2.6.0 portalocker==4.4.2 tabulate==0.10.0 colorama==0.4.6 lxml==6.1.3
    scikit-learn==1.9.1 scipy==1.17.1 joblib==1.6.0 cloudpickle==3.1.3 threadpoolctl==3.8.0 narwhals==2.29.0
    sacremoses==0.2.0 click==8.5.1
)
SDIST_ONLY=(antlr4-python3-runtime==4.9.3)   # no wheel on PyPI: built here (pure Python) with Python 3.12
BUILD_DEPS=(setuptools wheel cython==3.3.1 numpy==2.4.6)   # numpy 2 headers: the extensions load with numpy 1.x and 2.x
# The GPU machine's torch 2.11 wheels are manylinux_2_28, so its glibc is at least 2.28.
PLATFORM=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)

mkdir -p "$DEST"
DEST=$(cd "$DEST" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_wheels.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
START=$SECONDS

log() { printf '[gpu_wheels] %s\n' "$*"; }

# A wheel of NAME==VERSION already in DEST? (wheel names: lower case, runs of -_. as one _; some keep capitals)
have_wheel() {
    local norm
    norm=$(printf '%s' "$1" | tr 'A-Z' 'a-z' | sed -E 's/[-_.]+/_/g')
    shopt -s nocaseglob nullglob
    local hits=("$DEST/$norm-$2-"*.whl)
    shopt -u nocaseglob nullglob
    ((${#hits[@]} > 0))
}

bundle_bytes() { find "$DEST" -maxdepth 1 -type f -name '*.whl' -printf '%s\n' | awk '{s += $1} END {print s + 0}'; }

# Move the one wheel in $WORK/out into DEST unless it would take DEST past LIMIT.
admit() {
    local spec=$1 file
    file=$(find "$WORK/out" -maxdepth 1 -name '*.whl' | head -n 1)
    [[ -n $file ]] || { echo "gpu_wheels.sh: no wheel obtained for $spec" >&2; exit 1; }
    local size total
    size=$(stat -c %s "$file")
    total=$(($(bundle_bytes) + size))
    if ((total > LIMIT)); then
        echo "gpu_wheels.sh: $spec ($(basename "$file"), $size bytes) would take $DEST to $total bytes, past 64 MiB" >&2
        exit 1
    fi
    mv "$file" "$DEST/"
    log "  -> $(basename "$file") ($(numfmt --to=iec-i --suffix=B "$size"))"
}

VENV=""
ensure_venv() {   # the throw-away Python 3.12 venv: pip for the downloads, the builds (no torch in it)
    [[ -n $VENV ]] && return
    VENV=$WORK/venv
    local t0=$SECONDS
    log "creating a Python 3.12 venv in $VENV ($("$PY312" -V 2>&1))"
    "$PY312" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${BUILD_DEPS[@]}"
    log "  venv ready ($((SECONDS - t0)) s)"
}
pip312() { "$VENV/bin/python" -m pip --disable-pip-version-check "$@"; }

# 1. binary wheels
for spec in "${BINARY[@]}"; do
    name=${spec%%==*} version=${spec##*==}
    if have_wheel "$name" "$version"; then log "have      $spec"; continue; fi
    ensure_venv
    rm -rf "$WORK/out" && mkdir -p "$WORK/out"
    t0=$SECONDS
    log "download  $spec"
    pip312 download -q --no-deps --only-binary=:all: --python-version 3.12 "${PLATFORM[@]}" -d "$WORK/out" "$spec"
    admit "$spec"
    log "  ($((SECONDS - t0)) s)"
done

# 2. pure-Python sdists built into wheels with Python 3.12
for spec in "${SDIST_ONLY[@]}"; do
    name=${spec%%==*} version=${spec##*==}
    if have_wheel "$name" "$version"; then log "have      $spec"; continue; fi
    ensure_venv
    rm -rf "$WORK/out" && mkdir -p "$WORK/out"
    t0=$SECONDS
    log "build     $spec (sdist -> wheel, Python 3.12)"
    pip312 wheel -q --no-deps -w "$WORK/out" "$spec"
    case $(basename "$(find "$WORK/out" -name '*.whl' | head -n 1)") in
        *-py3-none-any.whl | *-py2.py3-none-any.whl) ;;
        *) echo "gpu_wheels.sh: $spec did not build into a pure-Python wheel" >&2; exit 1 ;;
    esac
    admit "$spec"
    log "  ($((SECONDS - t0)) s)"
done

# 3. fairseq-fixed, built with Python 3.12 against no torch
if have_wheel "${FAIRSEQ%%==*}" "${FAIRSEQ##*==}"; then
    log "have      $FAIRSEQ"
else
    ensure_venv
    rm -rf "$WORK/out" "$WORK/src" "$WORK/built" "$WORK/unpacked"
    mkdir -p "$WORK/out" "$WORK/src" "$WORK/built" "$WORK/notorch/torch/utils"
    # The stand-in torch: only what fairseq's setup.py touches. Its CppExtension modules are dropped by build_ext.
    : > "$WORK/notorch/torch/__init__.py"
    : > "$WORK/notorch/torch/utils/__init__.py"
    cat > "$WORK/notorch/torch/utils/cpp_extension.py" <<'EOF'
"""Stand-in for torch.utils.cpp_extension while building fairseq without torch: no torch C++ extension is built."""
from setuptools import Extension
from setuptools.command.build_ext import build_ext


def CppExtension(name, sources, *args, **kwargs):
    ext = Extension(name, sources)
    ext.needs_torch = True
    return ext


class BuildExtension(build_ext):
    def finalize_options(self):
        super().finalize_options()
        skipped = [e.name for e in self.extensions if getattr(e, "needs_torch", False)]
        self.extensions = [e for e in self.extensions if not getattr(e, "needs_torch", False)]
        if skipped:
            print("gpu_wheels.sh: not building the torch extensions " + ", ".join(skipped))
EOF
    t0=$SECONDS
    log "download  $FAIRSEQ (sdist)"
    env -u CUDA_HOME PYTHONPATH="$WORK/notorch" \
        "$VENV/bin/python" -m pip --disable-pip-version-check download -q --no-deps --no-binary fairseq-fixed \
        --no-build-isolation -d "$WORK/src" "$FAIRSEQ"
    log "build     $FAIRSEQ (cp312 wheel: Cython extensions and libbleu, no torch extensions)"
    t1=$SECONDS
    # -g0: no debug information in the extensions (1.4 MB each with it, a few hundred kB without)
    env -u CUDA_HOME PYTHONPATH="$WORK/notorch" CFLAGS=-g0 CXXFLAGS=-g0 \
        "$VENV/bin/python" -m pip --disable-pip-version-check wheel -q --no-deps --no-build-isolation \
        -w "$WORK/built" "$WORK/src"/fairseq_fixed-*.tar.gz
    log "  built in $((SECONDS - t1)) s"
    whl=$(find "$WORK/built" -name 'fairseq_fixed-*-cp312-*.whl' | head -n 1)
    [[ -n $whl ]] || { echo "gpu_wheels.sh: $FAIRSEQ: no cp312 wheel built" >&2; exit 1; }
    # Repack without the examples' non-code assets (about 9 MB compressed of a 12 MB wheel: hubert's test .npy
    # fixtures, figures, notebooks, one .flac); every .py/.yaml/.md/.sh of fairseq/examples (examples/rxf included)
    # stays. `wheel pack` rewrites RECORD.
    "$VENV/bin/python" -m wheel unpack -d "$WORK/unpacked" "$whl" > /dev/null
    tree=$(find "$WORK/unpacked" -mindepth 1 -maxdepth 1 -type d | head -n 1)
    dropped=$(find "$tree/fairseq/examples" -type f \( -name '*.npy' -o -name '*.png' -o -name '*.ipynb' -o -name '*.flac' \) \
        -printf '%s\n' -delete | awk '{n++; s += $1} END {printf "%d files, %d bytes", n, s}')
    log "  dropped from fairseq/examples: $dropped (*.npy *.png *.ipynb *.flac)"
    "$VENV/bin/python" -m wheel pack -d "$WORK/out" "$tree" > /dev/null
    whl=$(find "$WORK/out" -name 'fairseq_fixed-*-cp312-*.whl' | head -n 1)
    # The wheel must hold the three extensions fairseq needs and none of the torch ones.
    "$VENV/bin/python" - "$whl" <<'EOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
sos = sorted(n for n in names if n.endswith(".so"))
need = ["fairseq/data/data_utils_fast.", "fairseq/data/token_block_utils_fast.", "fairseq/libbleu."]
missing = [m for m in need if not any(s.startswith(m) for s in sos)]
extra = [s for s in sos if not any(s.startswith(m) for m in need)]
print("[gpu_wheels]   extensions in the wheel: " + ", ".join(sos))
if missing or extra:
    sys.exit(f"gpu_wheels.sh: fairseq-fixed wheel: missing {missing}, unexpected {extra}")
EOF
    admit "$FAIRSEQ"
    log "  ($((SECONDS - t0)) s in all)"
fi

# 4. README and SHA256SUMS
(cd "$DEST" && sha256sum -- *.whl > SHA256SUMS)
{
    echo "Offline wheels for a GPU machine with Python 3.12, torch (CUDA), transformers, sentencepiece and numpy."
    echo "Written by benchmarks/gpu_wheels.sh on $(date -u +%Y-%m-%dT%H:%MZ); check with: sha256sum -c SHA256SUMS"
    echo
    echo "Install (no network; from the repository root). Dependencies resolve from this folder or what is installed;"
    echo "fairseq-fixed goes in with --no-deps, so that pip neither wants torchaudio nor touches torch:"
    echo
    echo "  python -m pip install --no-index --find-links benchmarks/offline \\"
    echo "      hydra-core omegaconf antlr4-python3-runtime bitarray sacrebleu scikit-learn sacremoses"
    echo "  python -m pip install --no-index --no-deps benchmarks/offline/fairseq_fixed-0.12.3.1-cp312-*.whl"
    echo
    echo "Expected there already (transformers' own dependencies): numpy>=1.26.4 (scipy 1.17.1), PyYAML, packaging,"
    echo "regex>=2021.8.3, tqdm>=4.66.3 (sacremoses). torchaudio is not needed and must not be installed."
    echo
    echo "Check: python -c 'import fairseq, hydra, omegaconf, bitarray, sacremoses; from fairseq.data import data_utils_fast'"
    echo
    printf '%-72s %10s  %s\n' file bytes sha256
    while read -r sum file; do
        printf '%-72s %10s  %s\n' "$file" "$(stat -c %s "$DEST/$file")" "$sum"
    done < "$DEST/SHA256SUMS"
} > "$DEST/README"

total=$(bundle_bytes)
log "$(find "$DEST" -maxdepth 1 -name '*.whl' | wc -l) wheels in $DEST: $total bytes ($(numfmt --to=iec-i --suffix=B "$total")) of 64 MiB; $((SECONDS - START)) s"
