"""What a training run tells its user: TensorBoard scalars and images, and a JSON-lines log beside them.

Only the main process (rank 0) writes; the others get a logger that does nothing.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from sgdepth_ros.colorize import colorize_depth, colorize_labels
from sgdepth_ros.labels import IGNORE_ID, NUM_CLASSES

LOG = logging.getLogger(__name__)


def _hwc_u8(image: torch.Tensor) -> np.ndarray:
    """[3,H,W] float in [0,1] → HxWx3 uint8."""
    return (image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)


def visualisations(images: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """The step's logging tensors (batch element 0) → named HxWx3 uint8 pictures: input | disparity | warped
    source | moving mask, and segmentation input | prediction | target."""
    out = {}
    if "color" in images:
        rows = [_hwc_u8(images["color"][0])]
        disp = images["disparity"][0, 0].cpu().numpy()
        rows.append(colorize_depth(1.0 / np.maximum(disp, 1e-6)))
        if "warped" in images:
            rows.append(_hwc_u8(images["warped"][0]))
        if "moving_mask" in images:
            rows.append(np.repeat((images["moving_mask"][0, 0].cpu().numpy() * 255).astype(np.uint8)[..., None],
                                  3, 2))
        out["depth"] = np.concatenate(rows, 0)
    if "seg_pred" in images:
        pred = images["seg_pred"][0].cpu().numpy().astype(np.uint8)
        target = images["seg_target"][0].cpu().numpy()
        target = np.where((target >= 0) & (target < NUM_CLASSES), target, IGNORE_ID).astype(np.uint8)
        out["segmentation"] = np.concatenate(
            [_hwc_u8(images["seg_color"][0]), colorize_labels(pred), colorize_labels(target)], 0)
    return out


class RunLogger:
    """TensorBoard (``<run>/tensorboard``) + ``<run>/log.jsonl``. ``enabled=False`` makes every call a no-op."""

    def __init__(self, run_dir: str | Path, enabled: bool = True):
        self.enabled = enabled
        self.writer = None
        self._jsonl = None
        if not enabled:
            return
        run_dir = Path(run_dir)
        try:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(str(run_dir / "tensorboard"))
        except ImportError:  # tensorboard is a declared requirement; keep training if it went missing
            LOG.warning("tensorboard is not installed: no TensorBoard logs (pip install tensorboard)")
        self._jsonl = open(run_dir / "log.jsonl", "a", encoding="utf-8")

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        if self.writer is not None:
            for name, value in values.items():
                self.writer.add_scalar(name, value, step)
        self._jsonl.write(json.dumps({"step": step, "time": time.time(), **values}) + "\n")
        self._jsonl.flush()

    def pictures(self, step: int, images: dict[str, torch.Tensor], prefix: str = "train") -> None:
        if not self.enabled or self.writer is None or not images:
            return
        for name, picture in visualisations(images).items():
            self.writer.add_image(f"{prefix}/{name}", picture, step, dataformats="HWC")

    def text(self, tag: str, text: str) -> None:
        if self.enabled and self.writer is not None:
            self.writer.add_text(tag, text)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self._jsonl is not None:
            self._jsonl.close()
