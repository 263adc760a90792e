"""Segmentation metrics (spec §6.2): a confusion matrix accumulated over a whole data set, IoU, mIoU, accuracies.

Choice about the void channel: the network has 20 output channels, 19 trained classes plus an untrained "void"
channel 19. The reference accumulates a 20×20 matrix and takes the nanmean over 20 IoUs, so a void prediction is a
false negative of the pixel's ground-truth class, and, if void is ever predicted, class 19 adds an IoU of 0 to the mean.
Here the matrix is 19×19 (trained classes only) plus a per-ground-truth-class ``void`` count: a void prediction is
still a false negative of its pixel's class (and a wrong pixel for the accuracies) but no class's false positive, and
the mean (a nanmean) runs over the real classes that occur in the ground truth or the prediction — all 19 on Cityscapes
val, i.e. the "mIoU over the 19 Cityscapes classes" the reference reports in
practice. Ground truth outside 0..18 (255 = ignore) is skipped.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..labels import CLASS_NAMES, NUM_CLASSES

__all__ = ["VOID_ID", "SegConfusion", "seg_scores"]

VOID_ID = NUM_CLASSES  # 19: the network's untrained channel


@dataclass
class SegConfusion:
    """Running confusion counts over a data set.

    ``matrix[g, p]``: int64 [19,19], pixels of ground-truth trainId g predicted as trainId p.
    ``void[g]``: int64 [19], pixels of ground-truth trainId g predicted as the void channel 19.
    """

    matrix: np.ndarray = field(default_factory=lambda: np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64))
    void: np.ndarray = field(default_factory=lambda: np.zeros(NUM_CLASSES, np.int64))

    def update(self, gt: np.ndarray, pred: np.ndarray) -> None:
        """Add one image (or batch). gt: trainIds (0..18; anything else is ignored), pred: 0..19, same shape."""
        gt, pred = np.asarray(gt), np.asarray(pred)
        if gt.shape != pred.shape:
            raise ValueError(f"gt {gt.shape} and prediction {pred.shape} must have the same shape")
        gt = gt.astype(np.int64).ravel()
        pred = pred.astype(np.int64).ravel()
        if pred.size and (pred.min() < 0 or pred.max() > VOID_ID):
            raise ValueError(f"predictions must be 0..{VOID_ID}, got values in [{pred.min()}, {pred.max()}]")
        keep = (gt >= 0) & (gt < NUM_CLASSES)
        counts = np.bincount(gt[keep] * (NUM_CLASSES + 1) + pred[keep], minlength=NUM_CLASSES * (NUM_CLASSES + 1))
        counts = counts.reshape(NUM_CLASSES, NUM_CLASSES + 1)
        self.matrix += counts[:, :NUM_CLASSES]
        self.void += counts[:, NUM_CLASSES]

    def merge(self, other: "SegConfusion") -> None:
        """Add another accumulator's counts (e.g. from another worker)."""
        self.matrix += other.matrix
        self.void += other.void

    @property
    def total(self) -> int:
        """Number of evaluated (non-ignored) pixels."""
        return int(self.matrix.sum() + self.void.sum())


def seg_scores(confusion: SegConfusion) -> dict:
    """Scores from accumulated counts.

    Returns a dict: ``iou`` (list of 19 floats, NaN for a class absent from both ground truth and prediction),
    ``class_acc`` (19 floats, TP / ground-truth pixels, NaN for a class without ground truth), ``miou`` (nanmean of
    ``iou``), ``mean_acc`` (nanmean of ``class_acc``), ``pixel_acc`` (correct / evaluated pixels), ``pixels``
    (evaluated pixel count), ``void_pixels`` (predicted as void), ``class_names``.
    """
    m = confusion.matrix.astype(np.float64)
    tp = np.diag(m)
    gt_total = m.sum(axis=1) + confusion.void  # void predictions are false negatives of their gt class
    pred_total = m.sum(axis=0)
    union = gt_total + pred_total - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
        class_acc = np.where(gt_total > 0, tp / np.maximum(gt_total, 1), np.nan)
    total = confusion.total
    return {
        "iou": iou.tolist(),
        "class_acc": class_acc.tolist(),
        "miou": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
        "mean_acc": float(np.nanmean(class_acc)) if np.isfinite(class_acc).any() else float("nan"),
        "pixel_acc": float(tp.sum() / total) if total else float("nan"),
        "pixels": total,
        "void_pixels": int(confusion.void.sum()),
        "class_names": list(CLASS_NAMES),
    }
