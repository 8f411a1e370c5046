#!/usr/bin/env bash
# The GPU suite on one GPU machine without network: python -m bench --device cuda -> docs/benchmarks-gpu.md.
#
#   bench/gpu.sh --download [DIR]   # on a machine with network: fetch the wheels the GPU machine lacks (default .whl/)
#   bench/gpu.sh [BENCH ARGS...]    # on the GPU machine, in the repository root: install them offline, run, write the page
#
# The GPU machine is expected to have python3 with CUDA torch, transformers, accelerate, safetensors,
# tokenizers, huggingface_hub, pluggy, pyyaml, numpy, pandas, pyarrow, matplotlib and setuptools (a
# usual CUDA PyTorch image); the wheels add what swiftune and the comparison need beyond that, at the
# versions they were tested with. Nothing is installed into the system: all goes to $SITE.
# Environment: WHEELS (wheel folder, default .whl), SITE (install target, default /tmp/swiftune-site),
# PYTHON (default python3), PAGE (default docs/benchmarks-gpu.md).
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=${WHEELS:-.whl}
PY=${PYTHON:-python3}
SITE=${SITE:-/tmp/swiftune-site}
PAGE=${PAGE:-docs/benchmarks-gpu.md}
# Pure-Python wheels and manylinux x86_64 / CPython 3.12 binaries; one version of each.
PACKAGES=(peft==0.21.2 bitsandbytes==0.50.2 pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0
          typing-inspection==0.4.5 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19)

if [ "${1:-}" = "--download" ]; then
    dest=${2:-$WHEELS}
    mkdir -p "$dest"
    "$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d "$dest" "${PACKAGES[@]}"
    exit 0
fi

start=$(date +%s)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHEELS"/*.whl
# swiftune itself from this checkout (a regular install: its entry points register the built-in tuners).
"$PY" -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --no-cache-dir --upgrade --target "$SITE" .
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
"$PY" -c "import torch, transformers, peft, bitsandbytes, swiftune; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'| transformers', transformers.__version__, '| peft', peft.__version__, '| bitsandbytes', bitsandbytes.__version__)"
echo "set-up took $(( $(date +%s) - start )) s"
"$PY" -m bench --device cuda --write "$PAGE" "$@"
echo "bench/gpu.sh took $(( $(date +%s) - start )) s in all"
