#!/usr/bin/env bash
# The GPU check in one command (README, "GPU check"): CUDA tests, then throughput side by side.
#
#   bench/gpu_check.sh [--dry] [--out DIR] [--models NAME,…] [--budget SECONDS]
#
# On a bare GPU machine it first makes the project importable offline: the wheels that
# bench/gpu_prepare.sh put in .gpu/wheels are installed into /tmp/sefa-render-site when the
# machine's Python lacks one of the project's packages, and the model cache .gpu/cache (the
# default model's weights) is used unless SEFA_RENDER_CACHE is set. Then bench/gpu_check.py
# writes gpu_check.md, gpu_check.json and cuda_tests.log to --out (default: $OUT, which the
# device tool brings back). --dry: the same on the CPU, tiny (CI runs it).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
SITE=/tmp/sefa-render-site

if ! "$PYTHON" -c 'import torch, numpy, imageio, imageio_ffmpeg, PIL, pydantic, yaml, tqdm' 2>/dev/null; then
    if ! compgen -G '.gpu/wheels/*.whl' >/dev/null; then
        echo "gpu_check: this Python lacks some of the project's packages and no wheels were carried (bench/gpu_prepare.sh)" >&2
        exit 2
    fi
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .gpu/wheels/*.whl
    export PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH}
fi
if [[ -z ${SEFA_RENDER_CACHE:-} && -d .gpu/cache ]]; then
    export SEFA_RENDER_CACHE=$PWD/.gpu/cache
fi
if command -v nvidia-smi >/dev/null && [[ -n ${OUT:-} ]]; then
    nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1 || true
fi
export PYTHONUNBUFFERED=1
exec "$PYTHON" bench/gpu_check.py "$@"
