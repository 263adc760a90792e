"""Semantic masking of dynamic-class (DC) objects (SGDepth, spec §4.7).

Frames t−1 and t+1 are segmented, their labels warped into frame t; where the warped DC objects do not overlap the
DC objects of frame t (low IoU), they moved, and all their pixels are left out of the photometric loss. The IoU
threshold follows the reference schedule: from ``from_epoch`` on, the IoUs of an epoch are logged and, at its end, the
threshold becomes a percentile of them that falls linearly from ~75 % to 0 % (or a constant fraction).
``always`` (config ``masking_always``, the ablation's run d) drops that static-frame detection: in the masking epochs
every DC pixel of every frame is masked, whatever its IoU.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from sgdepth_ros.labels import DYNAMIC_TRAIN_IDS


def dynamic_pixels(labels: torch.Tensor) -> torch.Tensor:
    """labels [N,H,W] trainIds → bool [N,H,W], True on the dynamic classes 11..18 person … bicycle (the reference's
    "> 10" criterion without the void channel; 255 = ignore is not dynamic)."""
    return (labels >= DYNAMIC_TRAIN_IDS[0]) & (labels <= DYNAMIC_TRAIN_IDS[-1])


def dynamic_iou(current: torch.Tensor, warped: list[torch.Tensor]) -> torch.Tensor:
    """Per-image IoU of the DC class between the current frame's DC mask (prediction) and the warped neighbours'
    DC masks (ground truth), counts accumulated over all neighbours.

    current [N,H,W] bool, warped: list of [N,H,W] bool → [N] float64, NaN where no frame has a DC pixel."""
    tp = fp = fn = 0
    for w in warped:
        tp = tp + (current & w).sum((1, 2))
        fp = fp + (current & ~w).sum((1, 2))
        fn = fn + (~current & w).sum((1, 2))
    union = (tp + fp + fn).double()
    return torch.where(union > 0, tp.double() / union.clamp(min=1), torch.full_like(union, math.nan))


def moving_mask(current: torch.Tensor, warped: list[torch.Tensor], iou: torch.Tensor,
                threshold: float) -> torch.Tensor:
    """{0,1} float mask [N,1,H,W]: 0 on every DC pixel of the current and the warped frames of images whose
    IoU is below ``threshold`` (moving objects), 1 elsewhere. current/warped bool [N,H,W], iou [N]."""
    flagged = current.clone()
    for w in warped:
        flagged |= w
    moving = (iou < threshold).to(current.device)  # NaN < t is False: no DC pixels, nothing masked
    masked = flagged & moving.view(-1, 1, 1)
    return (~masked).float()[:, None]


def masking_fraction(epoch: int, from_epoch: int, num_epochs: int, linear: bool, constant: float) -> float:
    """Fraction p of the epoch's IoU distribution used as next threshold (percentile 100·p), reference formula
    p = 1 − (e + 1 − from)/(num_epochs − 1 − from) under linear increase, clamped to [0, 1]."""
    if not linear:
        return constant
    span = num_epochs - 1 - from_epoch
    if span <= 0:
        return 0.0
    return float(min(1.0, max(0.0, 1.0 - (epoch + 1 - from_epoch) / span)))


@dataclass
class MaskingSchedule:
    """State of the DC masking across epochs: active from ``from_epoch``, threshold updated at each epoch end."""

    from_epoch: int = 15
    num_epochs: int = 20
    linear: bool = True
    constant_fraction: float = 0.1
    threshold: float = 0.0
    iou_log: list[float] = field(default_factory=list)
    always: bool = False  # no static-frame detection: every image's DC pixels are masked (mask_threshold = inf)

    def active(self, epoch: int) -> bool:
        return epoch >= self.from_epoch

    @property
    def mask_threshold(self) -> float:
        """The IoU below which an image's DC objects are masked now: ``threshold``, or +inf with ``always`` (every
        image with a DC pixel; the IoUs are still logged and the schedule's threshold still follows them)."""
        return math.inf if self.always else self.threshold

    def start_epoch(self) -> None:
        self.iou_log.clear()

    def record(self, iou: torch.Tensor) -> None:
        """Log the finite IoUs of a batch ([N])."""
        self.iou_log.extend(float(v) for v in iou.detach().cpu().tolist() if not math.isnan(v))

    def end_epoch(self, epoch: int, all_ious: list[float] | None = None) -> None:
        """Set the threshold for the next epoch from this epoch's IoUs (``all_ious``: gathered from every process
        under DDP, default the local log). Nothing changes before ``from_epoch`` or when no IoU was logged."""
        ious = self.iou_log if all_ious is None else all_ious
        if not self.active(epoch) or not ious:
            return
        p = masking_fraction(epoch, self.from_epoch, self.num_epochs, self.linear, self.constant_fraction)
        self.threshold = float(np.percentile(np.asarray(ious, np.float64), 100.0 * p))

    def state_dict(self) -> dict:
        return {"threshold": self.threshold, "iou_log": list(self.iou_log)}

    def load_state_dict(self, state: dict) -> None:
        self.threshold = float(state["threshold"])
        self.iou_log = [float(v) for v in state["iou_log"]]
