#!/usr/bin/env bash
# Once on a GPU machine (no ROS needed, ≤ 5 minutes): CUDA outputs against fp32 on the CPU (fp32/fp16/bf16, eager and
# CUDA graphs), forward / 4-camera batch / end-to-end / training speed against the targets, written with the GPU's
# name into docs/benchmarks.md (section "GPU check"). See `sgdepth-ros gpu-check --help` for the options, e.g.
#
#   bash scripts/gpu_check.sh                      # CUDA device 0, writes docs/benchmarks.md
#   bash scripts/gpu_check.sh --device cuda:1 --skip-compile
#   bash scripts/gpu_check.sh --device cpu --quick --output -    # plumbing only, on a machine without a GPU
#   bash scripts/gpu_check.sh 2>&1 | tee $OUT/gpu_check.log; cp docs/benchmarks.md $OUT/   # on a lent device machine
#
# Nothing is installed or downloaded: the package runs from this checkout (a temporary folder linking sgdepth_ros and
# training/ as sgdepth_training goes first on PYTHONPATH) with a Python that already has the package's own
# dependencies (torch, torchvision, numpy, opencv-python-headless, pillow, safetensors, tqdm): SGDEPTH_PYTHON, else
# python3. Exit status: that of gpu-check (1 when an accuracy gate fails), 2 when a dependency is missing.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/checkout_python.sh"
require_modules torch:torch torchvision:torchvision numpy:numpy cv2:opencv-python-headless PIL:pillow \
  safetensors:safetensors tqdm:tqdm || exit 2

cd "$ROOT"
status=0
"$PY" -m sgdepth_ros.cli gpu-check "$@" || status=$?
exit "$status"  # (not exec: the trap removes the temporary folder of links)
