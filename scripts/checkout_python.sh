# Sourced by the scripts meant for a lent GPU machine (gpu_check.sh, gpu_default_model.sh): run the package from this
# checkout without installing it. A temporary folder linking sgdepth_ros and training/ as sgdepth_training goes first
# on PYTHONPATH; PY is the Python to use (SGDEPTH_PYTHON, else python3), which must already have the dependencies.
#   source scripts/checkout_python.sh; require_modules torch:torch cv2:opencv-python-headless || exit 2
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${SGDEPTH_PYTHON:-python3}"
SITE="$(mktemp -d "${TMPDIR:-/tmp}/sgdepth-checkout.XXXXXX")"
trap 'rm -rf "$SITE"' EXIT
ln -s "$ROOT/sgdepth_ros" "$SITE/sgdepth_ros"
ln -s "$ROOT/training" "$SITE/sgdepth_training"
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

# require_modules MODULE:PIP_NAME ... → status 1 (and a message naming them) when PY lacks any of them
require_modules() {
  "$PY" - "$@" <<'PYEOF'
import importlib.util, sys
missing = [pkg for mod, pkg in (a.split(":") for a in sys.argv[1:]) if importlib.util.find_spec(mod) is None]
if missing:
    print(f"error: {sys.executable} lacks {', '.join(missing)} (pip install {' '.join(missing)}, or point "
          "SGDEPTH_PYTHON at a Python that has them)", file=sys.stderr)
    sys.exit(1)
PYEOF
}
