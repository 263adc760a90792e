"""Helpers that several commands share (runtime and ``sgdepth_training`` ones alike).

Command modules import from here (and from :mod:`.arg_types`), never from each other: a command is a thin layer of
argument parsing and printing, and one command importing another made them load in a loop (bench → demo → replay →
bench).
"""
from __future__ import annotations

import os
import platform
from pathlib import Path


def machine_description() -> str:
    """One line naming the CPU, core count, GPU, Python, torch and OpenVINO versions (for benchmark tables)."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    try:
        import openvino
        ov = f", OpenVINO {openvino.__version__.split('-')[0]}"
    except ImportError:
        ov = ""
    return (f"{cpu}, {os.cpu_count()} logical cores{gpu}; Python {platform.python_version()}, "
            f"torch {torch.__version__}{ov}")


def update_markdown(path: Path, section: str, key: str = "inference") -> None:
    """Replace the block between ``<!-- bench:KEY:start -->`` and ``…:end -->`` (appended if absent)."""
    start, end = f"<!-- bench:{key}:start -->", f"<!-- bench:{key}:end -->"
    text = path.read_text() if path.is_file() else "# Benchmarks\n"
    block = f"{start}\n{section}\n{end}"
    if start in text and end in text:
        text = text[:text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def make_untrained_checkpoint(path: Path, seed: int = 0) -> Path:
    """Write a randomly initialised SGDepth in our format, marked untrained in its metadata → ``path``.

    For benchmarks (speed does not depend on the weights) and for a checkout without the default model.
    """
    import torch

    from ..model import SGDepth, save_checkpoint

    torch.manual_seed(seed)
    model = SGDepth(pose_layers=None)
    meta = {"trained": False,
            "provenance": {"source": f"random initialisation (torch seed {seed})",
                           "note": "not a depth or segmentation result"}}
    return save_checkpoint(model, path, meta)
