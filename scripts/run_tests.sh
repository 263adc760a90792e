#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite; fails when no test ran.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh --test
export SGDEPTH_COLCON="$PWD/.venv-colcon/bin/colcon"
report=$(mktemp)
set +e
.venv/bin/python -m pytest test "$@" --junitxml="$report"
code=$?
set -e
if [ "$code" -eq 5 ]; then echo "no tests were collected: failing" >&2; exit 1; fi
[ "$code" -eq 0 ] || exit "$code"
.venv/bin/python - "$report" <<'PY'
import sys, xml.etree.ElementTree as ET
suite = ET.parse(sys.argv[1]).getroot()
suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
ran = int(suite.get("tests")) - int(suite.get("skipped"))
print(f"{ran} tests executed")
sys.exit(0 if ran > 0 else 1)
PY
