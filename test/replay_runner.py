"""Test helper: the replay tests' rendered drive bag, ``sgdepth-ros replay`` run as its own process (as a user does)
and the report it writes."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

FRAMES, WIDTH, HEIGHT = 8, 416, 128  # the replay tests' drive: frames, image width and height in pixels


def render_drive_bag(out: Path) -> Path:
    """Render the replay tests' drive (seed 1, one drive of FRAMES frames at WIDTH×HEIGHT, ground-truth depth and
    labels) as a rosbag2 under ``out``. → the bag's folder."""
    from sgdepth_training.synth.generate import SynthConfig, generate

    generate(SynthConfig(out=out, drives=1, frames=FRAMES, seed=1, formats=("bag",), width=WIDTH, height=HEIGHT,
                         workers=1), progress=False)
    return next((Path(out) / "bags").iterdir())


def replay(*args, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m sgdepth_ros.cli replay ARGS`` with this interpreter; stdout and stderr captured as text."""
    return subprocess.run([sys.executable, "-m", "sgdepth_ros.cli", "replay", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env)


def report(out: Path) -> dict:
    """The ``report.json`` a replay wrote under ``out``."""
    return json.loads((Path(out) / "report.json").read_text())
