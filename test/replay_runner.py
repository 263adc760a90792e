"""Test helper: run ``sgdepth-ros replay`` as its own process (as a user does) and read the report it writes."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def replay(*args, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m sgdepth_ros.cli replay ARGS`` with this interpreter; stdout and stderr captured as text."""
    return subprocess.run([sys.executable, "-m", "sgdepth_ros.cli", "replay", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env)


def report(out: Path) -> dict:
    """The ``report.json`` a replay wrote under ``out``."""
    return json.loads((Path(out) / "report.json").read_text())
