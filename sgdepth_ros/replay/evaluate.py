"""Accuracy of predictions against a bag's ground truth, accumulated frame by frame (pure numpy).

Depth follows the trainer's evaluator (:func:`sgdepth_training.evaluation.runner.evaluate_depth`) pixel for pixel:
the mask of ``protocol`` on the ground truth, then per-image median scaling (and, when the depth is metric, the
configured scale), clamping to [min_depth_eval, max_depth_eval], and the 7 errors averaged over images. The
prediction must be at the ground truth's size (the replay runs the predictor and the node with
``output_resolution: input``, which upsamples the disparity before converting it to depth, as the trainer does).
Segmentation accumulates one confusion matrix over all frames (mIoU over the 19 classes).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..metrics.depth import MAX_DEPTH_EVAL, MIN_DEPTH_EVAL, PROTOCOLS, evaluation_mask, image_metrics, mean_metrics, \
    ratio_summary
from ..metrics.distance_bins import DEFAULT_EDGES_M, DistanceBins
from ..metrics.segmentation import SegConfusion, seg_scores


@dataclass(frozen=True)
class EvalSettings:
    """protocol: "eigen" | "kitti" | "capped" (see :func:`sgdepth_ros.metrics.depth.evaluation_mask`).

    scale: metres per model unit of the prediction's configured scale, or None for relative depth (then only
    median scaling is reported). ``pred_is_metric``: the predictions arrive already multiplied by ``scale``.
    """

    protocol: str = "capped"
    min_depth_eval: float = MIN_DEPTH_EVAL
    max_depth_eval: float = MAX_DEPTH_EVAL
    scale: float | None = None
    pred_is_metric: bool = False
    bin_edges: tuple[float, ...] = DEFAULT_EDGES_M

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}")
        if not 0 < self.min_depth_eval < self.max_depth_eval:
            raise ValueError(f"need 0 < min depth < max depth, got {self.min_depth_eval}, {self.max_depth_eval}")
        if self.scale is not None and not (np.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"scale must be a positive finite number or None, got {self.scale}")
        if self.pred_is_metric and self.scale is None:
            raise ValueError("metric predictions need the scale that made them")


@dataclass
class ReplayEvaluator:
    """Add frames with :meth:`add`; :meth:`summary` gives the report's ``depth`` and ``segmentation`` sections."""

    settings: EvalSettings = field(default_factory=EvalSettings)
    ground_truth: str | None = None  # "dense" / "lidar", from the first frame with depth ground truth

    def __post_init__(self) -> None:
        self._median: list[dict] = []
        self._fixed: list[dict] = []
        self._ratios: list[float] = []
        self._bins = DistanceBins(self.settings.bin_edges)
        self._confusion = SegConfusion()
        self.evaluated_depth = 0
        self.evaluated_semantic = 0
        self.skipped_depth = 0  # frames with ground truth but no valid pixel under the protocol

    def add(self, depth_gt: np.ndarray | None, depth_pred: np.ndarray | None, labels_gt: np.ndarray | None,
            labels_pred: np.ndarray | None, gt_source: str | None = None) -> dict:
        """One frame. depth_gt: HxW metres (0 = none); depth_pred: HxW (metres when ``pred_is_metric``, else model
        units; NaN/≤0 = invalid) at the same size; labels: HxW uint8 trainIds at the same size.

        Returns this frame's numbers: ``abs_rel``/``a1`` (median scaling), ``ratio``, ``abs_rel_fixed``, ``miou``
        (of this frame alone) — keys present only for what was evaluated.
        """
        record: dict = {}
        if depth_gt is not None and depth_pred is not None:
            record.update(self._add_depth(depth_gt, depth_pred))
            self.ground_truth = self.ground_truth or gt_source
        if labels_gt is not None and labels_pred is not None:
            if labels_gt.shape != labels_pred.shape:
                raise ValueError(f"labels {labels_pred.shape} and ground truth {labels_gt.shape} differ in size")
            frame = SegConfusion()
            frame.update(labels_gt, labels_pred)
            self._confusion.merge(frame)
            self.evaluated_semantic += 1
            record["miou"] = seg_scores(frame)["miou"]
        return record

    def _add_depth(self, gt: np.ndarray, pred: np.ndarray) -> dict:
        s = self.settings
        if gt.shape != pred.shape:
            raise ValueError(f"depth {pred.shape} and ground truth {gt.shape} differ in size")
        mask = evaluation_mask(gt, s.protocol, s.min_depth_eval, s.max_depth_eval) & np.isfinite(pred) & (pred > 0)
        if not mask.any():
            self.skipped_depth += 1
            return {}
        self.evaluated_depth += 1
        median, ratio = image_metrics(gt, pred, mask, scale=None, min_depth=s.min_depth_eval,
                                      max_depth=s.max_depth_eval)
        self._median.append(median)
        self._ratios.append(ratio * (s.scale if s.pred_is_metric else 1.0))  # always per model unit
        record = {"abs_rel": median["abs_rel"], "a1": median["a1"], "ratio": self._ratios[-1]}
        binned_scale = ratio
        if s.scale is not None:
            fixed_scale = 1.0 if s.pred_is_metric else s.scale
            fixed, _ = image_metrics(gt, pred, mask, scale=fixed_scale, min_depth=s.min_depth_eval,
                                     max_depth=s.max_depth_eval)
            self._fixed.append(fixed)
            record["abs_rel_fixed"] = fixed["abs_rel"]
            binned_scale = fixed_scale
        g = gt[mask].astype(np.float64)
        self._bins.update(g, np.clip(pred[mask].astype(np.float64) * binned_scale, s.min_depth_eval,
                                     s.max_depth_eval))
        return record

    def summary(self) -> dict:
        """``{"depth": … or None, "segmentation": … or None}`` in the report's layout."""
        s = self.settings
        depth = None
        if self._median:
            depth = {"ground_truth": self.ground_truth, "protocol": s.protocol,
                     "min_depth_eval": s.min_depth_eval, "max_depth_eval": s.max_depth_eval,
                     "frames": len(self._median), "frames_without_valid_pixels": self.skipped_depth,
                     "median": {"metrics": mean_metrics(self._median), "ratio": ratio_summary(self._ratios)},
                     "fixed": ({"scale": s.scale, "metrics": mean_metrics(self._fixed)} if self._fixed else None),
                     "bins_scaling": "fixed" if self._fixed else "median",
                     "bins": self._bins.rows()}
        segmentation = None
        if self.evaluated_semantic:
            scores = seg_scores(self._confusion)
            segmentation = {key: scores[key] for key in ("miou", "pixel_acc", "mean_acc", "pixels", "iou",
                                                         "class_names")}
            segmentation["frames"] = self.evaluated_semantic
        return {"depth": depth, "segmentation": segmentation}
