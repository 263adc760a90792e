"""The checkpoint that ships with the package: SGDepth trained on the synthetic world only (fp16, inference weights).

It makes the demo and the node's default runnable without a download. It is **not** a model for real cameras: use
the released SGDepth weights or a KITTI-trained model there. Its provenance and measured accuracy are in its metadata
(``sgdepth_ros.model.checkpoint.read_metadata``).
"""
from __future__ import annotations

from pathlib import Path

DEFAULT_MODEL_FILE = Path(__file__).parent / "models" / "sgdepth_synthetic_320x96_fp16.safetensors"


def default_model_path() -> Path | None:
    """The shipped checkpoint's path, or None in a checkout without it."""
    return DEFAULT_MODEL_FILE if DEFAULT_MODEL_FILE.is_file() else None
