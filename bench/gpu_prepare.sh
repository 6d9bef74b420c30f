#!/usr/bin/env bash
# Prepare, on a machine with network, what bench/gpu_check.sh needs on a bare GPU machine that has none:
#
#   bench/gpu_prepare.sh            # → .gpu/ (ignored by git): wheels/ and cache/zoo/
#
# - wheels/: the project's runtime packages that the device image lacks (pydantic and its own needs,
#   imageio-ffmpeg with its ffmpeg binary), for Linux x86-64 and the device's Python (3.12 by default:
#   DEVICE_PYTHON=3.11 for another), at the versions this venv tests with, except imageio-ffmpeg: 0.6.0,
#   whose wheel is 29 MB (0.8's is 68 MB, over the device's 64 MiB limit). torch, numpy, pillow, pyyaml,
#   tqdm and imageio are already on the device image, so no CUDA wheel is ever downloaded here.
# - cache/zoo/: the default model's weights (zoo:dcgan-digiface), copied from the model cache
#   ($SEFA_RENDER_CACHE or ~/.cache/sefa-render; fetched there first if missing).
#
# The benchmark's StyleGAN2s (random weights, 256 and 1024 px, about 120 MB each) are not carried:
# gpu_check.py writes them on the device with the tests' own writer, in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
DEVICE_PYTHON=${DEVICE_PYTHON:-3.12}
DEST=.gpu
PACKAGES=(pydantic pydantic-core annotated-types typing-inspection typing-extensions)
IMAGEIO_FFMPEG=imageio-ffmpeg==0.6.0

mkdir -p "$DEST/wheels" "$DEST/cache/zoo"
rm -f "$DEST"/wheels/*.whl  # one version of each package, or the offline install stops
pins=$("$PYTHON" -c 'import importlib.metadata as m, sys; print(" ".join(f"{p}=={m.version(p)}" for p in sys.argv[1:]))' \
       "${PACKAGES[@]}")
platforms=()
for tag in manylinux_2_28 manylinux_2_17 manylinux2014; do
    platforms+=(--platform "${tag}_x86_64")
done
# shellcheck disable=SC2086  # $pins: one word per package
"$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version "$DEVICE_PYTHON" --implementation cp "${platforms[@]}" -d "$DEST/wheels" $pins "$IMAGEIO_FFMPEG"

weights=$(PYTHONPATH=$PWD "$PYTHON" -c 'from render.models import zoo; print(zoo.fetch("dcgan-digiface"))')
cp "$weights" "$DEST/cache/zoo/"

du -sh "$DEST"/wheels "$DEST"/cache
echo "carry $DEST in the device run (see README, 'GPU check'); the whole tree that travels must stay under 64 MiB"
