#!/usr/bin/env bash
# Create or update .venv with everything sgdepth_ros needs (idempotent; re-runs are quick).
#   scripts/setup_env.sh          runtime (torch, torchvision, OpenVINO, OpenCV, …) + the package
#   scripts/setup_env.sh --test   also pytest deps and a separate .venv-colcon for the colcon build test
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
pip_quiet() { "$@" 2>&1 | grep -vE "^WARNING: Location .* is ignored" || true; }

if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.sgdepth-ros-installed
want=$(cat requirements.txt requirements-ros.txt setup.py | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "installing requirements into .venv (first time: a few minutes, torch is large)"
  pip_quiet .venv/bin/python -m pip install -q -r requirements.txt -r requirements-ros.txt
  pip_quiet .venv/bin/python -m pip install -q --no-deps -e .
  .venv/bin/python -c "import torch, torchvision, cv2, safetensors, openvino, rclpy, sensor_msgs.msg, sgdepth_ros" \
    || { echo "setup failed: the packages above did not import" >&2; exit 1; }
  echo "$want" > "$stamp"
fi

if [ "${1:-}" = "--test" ] && [ ! -x .venv-colcon/bin/colcon ]; then
  # colcon pins setuptools<80, so it lives in its own small venv
  "$PYTHON" -m venv .venv-colcon
  pip_quiet .venv-colcon/bin/python -m pip install -q colcon-core colcon-python-setup-py colcon-ros colcon-package-information
fi
