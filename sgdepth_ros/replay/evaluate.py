"""Accuracy of predictions against a bag's ground truth, accumulated frame by frame (pure numpy).

Depth follows the trainer's evaluator (:func:`sgdepth_training.evaluation.runner.evaluate_depth`) pixel for pixel:
the mask of ``protocol`` on the ground truth, then per-image median scaling (and, when the depth is metric, the
configured scale), clamping to [min_depth_eval, max_depth_eval], and the 7 errors averaged over images. The
prediction must be at the ground truth's size (the replay runs the predictor and the node with
``output_resolution: input``, which upsamples the disparity before converting it to depth, as the trainer does).
Segmentation accumulates one confusion matrix over all frames (mIoU over the 19 classes).

Scale from the camera height (scale_mode ``camera_height``): each frame comes with its :class:`FrameScale` (the factor
already applied to its depth, the frame's own estimate, the filtered scale). The depth is taken back to model units,
so the median and fixed rows are the same as in any other mode, and a third row scores the depth with the filtered
scale. Per frame the report keeps the estimate, the filtered scale, the ground truth's scale (median of
ground truth / prediction in model units over the evaluated pixels, :func:`ground_truth_scale`) and their errors.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..metrics.depth import MAX_DEPTH_EVAL, MIN_DEPTH_EVAL, PROTOCOLS, evaluation_mask, image_metrics, mean_metrics, \
    ratio_summary
from ..metrics.distance_bins import DEFAULT_EDGES_M, DistanceBins
from ..metrics.segmentation import SegConfusion, seg_scores


@dataclass(frozen=True)
class FrameScale:
    """A frame's scale in camera_height mode (metres per model unit).

    applied: the factor already applied to the depth handed to the evaluator (None: the depth is in model units).
    estimate: this frame's own estimate from its road plane (None: no usable road).
    filtered: the temporal filter's scale after this frame (None: not enough estimates yet).
    """

    applied: float | None = None
    estimate: float | None = None
    filtered: float | None = None


def ground_truth_scale(gt: np.ndarray, pred: np.ndarray) -> float:
    """The scale the ground truth gives one frame: median of gt / pred over matching 1-D arrays of evaluated pixels
    (gt in metres, pred in model units, all > 0) → metres per model unit."""
    return float(np.median(np.asarray(gt, np.float64) / np.asarray(pred, np.float64)))


def _error_summary(errors: list[float]) -> dict:
    """Relative errors (estimate / truth − 1) → median and p95 of their magnitude, signed median, count."""
    e = np.asarray(errors, np.float64)
    if e.size == 0:
        return {"median_abs": None, "p95_abs": None, "max_abs": None, "median": None, "count": 0}
    return {"median_abs": float(np.median(np.abs(e))), "p95_abs": float(np.percentile(np.abs(e), 95)),
            "max_abs": float(np.abs(e).max()), "median": float(np.median(e)), "count": int(e.size)}


@dataclass(frozen=True)
class EvalSettings:
    """protocol: "eigen" | "kitti" | "capped" (see :func:`sgdepth_ros.metrics.depth.evaluation_mask`).

    scale: metres per model unit of the prediction's configured scale, or None for relative depth (then only
    median scaling is reported). ``pred_is_metric``: the predictions arrive already multiplied by ``scale`` (frames
    given with a :class:`FrameScale` say their own factor instead).
    camera_height_m / camera_height_source: the camera height of scale_mode camera_height and where it came from
    (for the report; None in the other modes).
    """

    protocol: str = "capped"
    min_depth_eval: float = MIN_DEPTH_EVAL
    max_depth_eval: float = MAX_DEPTH_EVAL
    scale: float | None = None
    pred_is_metric: bool = False
    bin_edges: tuple[float, ...] = DEFAULT_EDGES_M
    camera_height_m: float | None = None
    camera_height_source: str | None = None

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
        self._height: list[dict] = []          # metrics with the camera-height scale (frames that had one)
        self._median_with_height: list[dict] = []  # median-scaling metrics of the same frames
        self._scales: list[dict] = []          # per frame with a FrameScale: estimate, filtered, truth
        self.frames_with_scale = 0             # frames given a FrameScale
        self._bins = DistanceBins(self.settings.bin_edges)
        self._confusion = SegConfusion()
        self.evaluated_depth = 0
        self.evaluated_semantic = 0
        self.skipped_depth = 0  # frames with ground truth but no valid pixel under the protocol

    def add(self, depth_gt: np.ndarray | None, depth_pred: np.ndarray | None, labels_gt: np.ndarray | None,
            labels_pred: np.ndarray | None, gt_source: str | None = None, scale: FrameScale | None = None) -> dict:
        """One frame. depth_gt: HxW metres (0 = none); depth_pred: HxW (metres when ``pred_is_metric``, else model
        units; NaN/≤0 = invalid) at the same size; labels: HxW uint8 trainIds at the same size.
        scale: the frame's camera-height scale (camera_height mode; its ``applied`` factor replaces
        ``pred_is_metric`` for this frame).

        Returns this frame's numbers: ``abs_rel``/``a1`` (median scaling), ``ratio``, ``abs_rel_fixed``, ``miou``
        (of this frame alone), and with ``scale``: ``scale_estimate``, ``scale_filtered``, ``scale_gt``,
        ``scale_error`` (filtered / gt − 1), ``scale_estimate_error``, ``abs_rel_camera_height`` — keys present only
        for what was evaluated.
        """
        record: dict = {}
        if scale is not None:
            self.frames_with_scale += 1
            self._scales.append({"estimate": scale.estimate, "filtered": scale.filtered})
            record.update(scale_estimate=scale.estimate, scale_filtered=scale.filtered)
            if depth_pred is not None and scale.applied is not None:
                depth_pred = depth_pred / np.float32(scale.applied)  # back to model units
        if depth_gt is not None and depth_pred is not None:
            record.update(self._add_depth(depth_gt, depth_pred, scale))
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

    def _add_depth(self, gt: np.ndarray, pred: np.ndarray, frame_scale: FrameScale | None = None) -> dict:
        s = self.settings
        pred_is_metric = s.pred_is_metric and frame_scale is None  # a FrameScale gives model units
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
        self._ratios.append(ratio * (s.scale if pred_is_metric else 1.0))  # always per model unit
        record = {"abs_rel": median["abs_rel"], "a1": median["a1"], "ratio": self._ratios[-1]}
        if frame_scale is not None:
            record.update(self._add_camera_height(gt, pred, mask, frame_scale, median))
        binned_scale = ratio
        if s.scale is not None:
            fixed_scale = 1.0 if pred_is_metric else s.scale
            fixed, _ = image_metrics(gt, pred, mask, scale=fixed_scale, min_depth=s.min_depth_eval,
                                     max_depth=s.max_depth_eval)
            self._fixed.append(fixed)
            record["abs_rel_fixed"] = fixed["abs_rel"]
            binned_scale = fixed_scale
        g = gt[mask].astype(np.float64)
        self._bins.update(g, np.clip(pred[mask].astype(np.float64) * binned_scale, s.min_depth_eval,
                                     s.max_depth_eval))
        return record

    def _add_camera_height(self, gt: np.ndarray, pred: np.ndarray, mask: np.ndarray, frame_scale: FrameScale,
                           median: dict) -> dict:
        """The camera-height row and the scale errors of one frame (pred in model units)."""
        s = self.settings
        truth = ground_truth_scale(gt[mask], pred[mask])
        row = self._scales[-1]
        row["gt"] = truth
        record = {"scale_gt": truth}
        if frame_scale.estimate is not None:
            record["scale_estimate_error"] = row["estimate_error"] = frame_scale.estimate / truth - 1.0
        if frame_scale.filtered is not None:
            record["scale_error"] = row["error"] = frame_scale.filtered / truth - 1.0
            metrics, _ = image_metrics(gt, pred, mask, scale=frame_scale.filtered, min_depth=s.min_depth_eval,
                                       max_depth=s.max_depth_eval)
            self._height.append(metrics)
            self._median_with_height.append(median)
            record["abs_rel_camera_height"] = metrics["abs_rel"]
        return record

    def camera_height_summary(self) -> dict | None:
        """The report's ``camera_height`` section (None when no frame came with a :class:`FrameScale`).

        frames: frames given a scale; frames_with_estimate / frames_with_scale: of those, with an own estimate /
        a filtered scale; frames_with_ground_truth: with depth ground truth (their ``gt`` scale known);
        frames_scored: with both (the camera-height row). metrics: that row (Eigen metrics, mean over frames);
        median_same_frames: median scaling on the same frames. scale_error / estimate_error: filtered / own
        estimate vs the ground truth's scale (relative). jitter: std / mean of the filtered scale over the frames
        that had one.
        """
        s = self.settings
        if not self.frames_with_scale:
            return None
        filtered = np.asarray([r["filtered"] for r in self._scales if r["filtered"] is not None], np.float64)
        jitter = float(filtered.std() / filtered.mean()) if filtered.size >= 2 else None
        truths = [r["gt"] for r in self._scales if "gt" in r]
        return {
            "height_m": s.camera_height_m, "height_source": s.camera_height_source,
            "frames": self.frames_with_scale,
            "frames_with_estimate": sum(r["estimate"] is not None for r in self._scales),
            "frames_with_scale": int(filtered.size),
            "frames_with_ground_truth": len(truths),
            "frames_scored": len(self._height),
            "metrics": mean_metrics(self._height) if self._height else None,
            "median_same_frames": mean_metrics(self._median_with_height) if self._median_with_height else None,
            "scale_error": _error_summary([r["error"] for r in self._scales if "error" in r]),
            "estimate_error": _error_summary([r["estimate_error"] for r in self._scales if "estimate_error" in r]),
            "jitter": jitter,
            "filtered_scale": ({"mean": float(filtered.mean()), "min": float(filtered.min()),
                                "max": float(filtered.max())} if filtered.size else None),
            "gt_scale_median": float(np.median(truths)) if truths else None,
        }

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
        return {"depth": depth, "segmentation": segmentation, "camera_height": self.camera_height_summary()}
