"""Depth metrics of the KITTI protocols (spec §6.1): masks, disparity → depth, scaling, clamping, the 7 errors.

All functions are pure numpy (float64 arithmetic) except :func:`disp_to_depth`, which also accepts torch tensors.
Depths are in metres (ground truth) or model units (prediction before scaling); 0 in ground truth means "no value".
"""
from __future__ import annotations

import math
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..postprocess import disparity_to_depth as disp_to_depth

__all__ = [
    "GARG_CROP", "METRIC_NAMES", "PROTOCOLS", "MIN_DEPTH_EVAL", "MAX_DEPTH_EVAL", "garg_crop", "evaluation_mask",
    "disp_to_depth", "compute_errors", "median_ratio", "image_metrics", "mean_metrics", "ratio_summary",
    "HOLE_FACTOR", "hole_mask", "hole_fraction",
]

#: Order of the metrics in tables and JSON (monodepth2 / SGDepth order).
METRIC_NAMES = ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")
#: Garg et al. crop as fractions of the image: (top, bottom, left, right).
GARG_CROP = (0.40810811, 0.99189189, 0.03594771, 0.96405229)
#: "eigen": 1e-3 < gt < max and the Garg crop (Eigen/Zhou test); "kitti": gt > 0 only (KITTI split, KITTI 2015).
PROTOCOLS = ("eigen", "kitti", "capped")
MIN_DEPTH_EVAL, MAX_DEPTH_EVAL = 1e-3, 80.0
#: A "hole": a pixel predicted more than this many times farther than its ground truth (SGDepth's failure case: an
#: object moving with the camera looks static and is learned as (nearly) infinitely far).
HOLE_FACTOR = 2.0


def garg_crop(height: int, width: int) -> tuple[int, int, int, int]:
    """Garg crop of an ``height`` x ``width`` image → ``(top, bottom, left, right)`` in pixels.

    The crop keeps rows ``[top, bottom)`` and columns ``[left, right)``, each bound ⌊fraction·size⌋
    (for KITTI's 375x1242: rows [153, 371), columns [44, 1197)).
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {height}x{width} (HxW)")
    top, bottom, left, right = GARG_CROP
    return (int(math.floor(top * height)), int(math.floor(bottom * height)),
            int(math.floor(left * width)), int(math.floor(right * width)))


def evaluation_mask(gt: np.ndarray, protocol: str = "eigen", min_depth: float = MIN_DEPTH_EVAL,
                    max_depth: float = MAX_DEPTH_EVAL) -> np.ndarray:
    """Pixels that count in the evaluation.

    Args:
        gt: HxW ground-truth depth in metres, 0 (or any non-positive / non-finite value) = no ground truth.
        protocol: ``"eigen"``: ``min_depth < gt < max_depth`` inside the Garg crop; ``"kitti"``: ``gt > 0`` anywhere
            (no crop, no upper bound; the prediction is still clamped later); ``"capped"``: Eigen's depth range
            without the Garg crop (the crop fits KITTI's velodyne coverage; the synthetic world has depth everywhere
            but the sky, up to 150 m, which the 80 m clamp would otherwise count as errors).
    Returns: HxW bool.
    """
    gt = np.asarray(gt)
    if gt.ndim != 2:
        raise ValueError(f"gt must be HxW, got shape {gt.shape}")
    finite = np.isfinite(gt)
    if protocol == "kitti":
        return finite & (gt > 0)
    if protocol == "capped":
        return finite & (gt > min_depth) & (gt < max_depth)
    if protocol != "eigen":
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    mask = finite & (gt > min_depth) & (gt < max_depth)
    crop = np.zeros_like(mask)
    top, bottom, left, right = garg_crop(*gt.shape)
    crop[top:bottom, left:right] = True
    return mask & crop


def compute_errors(gt: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """The 7 depth metrics over matching 1-D arrays of valid pixels (metres, all > 0).

    abs_rel = mean(|g−p|/g); sq_rel = mean((g−p)²/g); rmse = √mean((g−p)²); rmse_log = √mean((ln g − ln p)²);
    a_k = fraction with max(g/p, p/g) < 1.25^k, k = 1, 2, 3. Returns floats keyed by :data:`METRIC_NAMES`.
    """
    gt = np.asarray(gt, dtype=np.float64).ravel()
    pred = np.asarray(pred, dtype=np.float64).ravel()
    if gt.shape != pred.shape or gt.size == 0:
        raise ValueError(f"need two non-empty arrays of equal size, got {gt.size} and {pred.size} values")
    thresh = np.maximum(gt / pred, pred / gt)
    diff = gt - pred
    return {
        "abs_rel": float(np.mean(np.abs(diff) / gt)),
        "sq_rel": float(np.mean(diff ** 2 / gt)),
        "rmse": float(np.sqrt(np.mean(diff ** 2))),
        "rmse_log": float(np.sqrt(np.mean((np.log(gt) - np.log(pred)) ** 2))),
        "a1": float(np.mean(thresh < 1.25)),
        "a2": float(np.mean(thresh < 1.25 ** 2)),
        "a3": float(np.mean(thresh < 1.25 ** 3)),
    }


def median_ratio(gt: np.ndarray, pred: np.ndarray) -> float:
    """Per-image median scaling factor median(gt)/median(pred) over 1-D arrays of valid pixels (numpy median)."""
    gt, pred = np.asarray(gt, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    if gt.size == 0 or pred.size == 0:
        raise ValueError("median scaling needs at least one valid pixel")
    return float(np.median(gt) / np.median(pred))


def image_metrics(gt: np.ndarray, pred: np.ndarray, mask: np.ndarray, *, scale: float | None = None,
                  min_depth: float = MIN_DEPTH_EVAL, max_depth: float = MAX_DEPTH_EVAL
                  ) -> tuple[dict[str, float], float]:
    """Metrics of one image, as SGDepth's validation does it.

    Args:
        gt: HxW ground truth (metres). pred: HxW predicted depth (model units) at the ground-truth size.
        mask: HxW bool of the pixels to evaluate (see :func:`evaluation_mask`); must select at least one pixel.
        scale: ``None`` = per-image median scaling on the masked pixels; a number = that fixed factor.
        min_depth, max_depth: the scaled prediction is clamped to [min_depth, max_depth].
    Returns: (metrics dict, the scale factor that was applied).
    """
    gt, pred, mask = np.asarray(gt), np.asarray(pred), np.asarray(mask, dtype=bool)
    if not gt.shape == pred.shape == mask.shape:
        raise ValueError(f"gt {gt.shape}, pred {pred.shape} and mask {mask.shape} must have the same shape")
    g = gt[mask].astype(np.float64)
    p = pred[mask].astype(np.float64)
    if g.size == 0:
        raise ValueError("no valid ground-truth pixel in the evaluation mask")
    ratio = median_ratio(g, p) if scale is None else float(scale)
    p = np.clip(p * ratio, min_depth, max_depth)
    return compute_errors(g, p), ratio


def mean_metrics(per_image: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Mean of each metric over images (each image weighs the same, whatever its number of valid pixels)."""
    if not per_image:
        raise ValueError("no image was evaluated")
    return {name: float(np.mean([m[name] for m in per_image])) for name in METRIC_NAMES}


def ratio_summary(ratios: Iterable[float]) -> dict[str, float]:
    """``{"median": med, "std": std(ratios / med), "count": n}`` as printed by the reference ("Scaling ratios")."""
    r = np.asarray(list(ratios), dtype=np.float64)
    if r.size == 0:
        return {"median": float("nan"), "std": float("nan"), "count": 0}
    med = float(np.median(r))
    return {"median": med, "std": float(np.std(r / med)), "count": int(r.size)}


def hole_mask(gt: np.ndarray, pred: np.ndarray, factor: float = HOLE_FACTOR) -> np.ndarray:
    """True where ``pred > factor · gt``: the pixel is predicted more than ``factor`` times farther than it is.

    gt, pred: arrays of one shape, metres (pred already scaled, e.g. median-scaled, and not clamped to the evaluation
    cap, so a hole stays a hole however far the ground truth is); gt > 0. Returns bool of that shape.
    """
    gt, pred = np.asarray(gt, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    if gt.shape != pred.shape:
        raise ValueError(f"gt {gt.shape} and pred {pred.shape} must have the same shape")
    if not factor > 1.0:
        raise ValueError(f"the hole factor must be > 1, got {factor}")
    return pred > factor * gt


def hole_fraction(gt: np.ndarray, pred: np.ndarray, factor: float = HOLE_FACTOR) -> float:
    """Fraction of the given pixels that are holes (:func:`hole_mask`); e.g. over one image's moving-object pixels.
    Raises ValueError for no pixels."""
    holes = hole_mask(gt, pred, factor)
    if holes.size == 0:
        raise ValueError("the hole fraction needs at least one pixel")
    return float(holes.mean())
