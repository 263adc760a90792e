"""Printing evaluation results like the reference / monodepth2 and writing them as JSON."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Mapping

from sgdepth_ros.labels import CLASS_NAMES

from sgdepth_ros.metrics.depth import METRIC_NAMES
from .runner import DepthEvalResult, RegionEvalResult, SegEvalResult

__all__ = ["format_ratios", "format_depth_table", "format_region_tables", "miou_classes", "miou_note",
           "format_seg_table", "checkpoint_info", "depth_report", "region_report", "seg_report", "json_safe",
           "write_json"]


def format_ratios(summary: Mapping[str, float]) -> str:
    """``" Scaling ratios | med: 1.234 | std: 0.056"``: median of the per-image factors and std of factor/median."""
    return f" Scaling ratios | med: {summary['median']:0.3f} | std: {summary['std']:0.3f}"


def format_depth_table(metrics: Mapping[str, float]) -> str:
    """Two lines in the monodepth2 / SGDepth layout: the metric names, then ``&   0.113  &   0.835 … \\\\``."""
    header = "  " + "".join(f"{name:>8} | " for name in METRIC_NAMES)
    values = "".join(f"&{metrics[name]: 8.3f}  " for name in METRIC_NAMES) + "\\\\"
    return header + "\n" + values


def format_region_tables(result: RegionEvalResult) -> str:
    """Per region a line ``region (N images):`` and its :func:`format_depth_table`, then the holes line."""
    lines = []
    for region, metrics in result.regions.items():
        if metrics is None:
            lines.append(f" {region}: no image has {region} pixels")
            continue
        lines += [f" {region} pixels ({result.counts[region]} images):", format_depth_table(metrics)]
    holes = result.holes
    if holes:
        if holes["fraction"] is None:
            lines.append(" holes: no moving-object pixels")
        else:
            lines.append(f" holes: {100 * holes['fraction']:.2f} % of {holes['moving_pixels']} moving-object pixels "
                         f"predicted > {holes['factor']:g}x farther than ground truth (per-image mean "
                         f"{100 * holes['image_mean']:.2f} % over {holes['images']} images)")
    return "\n".join(lines)


def _fmt(value: float, width: int = 7) -> str:
    return f"{'n/a':>{width}}" if value is None or math.isnan(value) else f"{100 * value:{width}.2f}"


def miou_classes(scores: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(classes the mIoU averages, classes left out): a class absent from both the ground truth and the prediction has
    no IoU (NaN) and is not in the mean. On Cityscapes that is rarely any; on the synthetic world, which has no rider,
    truck, bus, train, motorcycle or bicycle, the mIoU is a mean over 13 classes — not comparable to a 19-class one."""
    names = scores.get("class_names", CLASS_NAMES)
    averaged = [n for n, v in zip(names, scores["iou"]) if v is not None and not math.isnan(v)]
    return averaged, [n for n in names if n not in averaged]


def miou_note(scores: Mapping[str, Any]) -> str:
    """``"over 13 of 19 classes (absent: rider, truck, …)"`` or ``"over all 19 classes"``."""
    averaged, absent = miou_classes(scores)
    total = len(averaged) + len(absent)
    if not absent:
        return f"over all {total} classes"
    return f"over {len(averaged)} of {total} classes (absent from ground truth and prediction: {', '.join(absent)})"


def format_seg_table(scores: Mapping[str, Any]) -> str:
    """Per-class IoU and accuracy (in %) with the Cityscapes class names, then mIoU, mean class and pixel accuracy.
    Classes absent from both ground truth and prediction show ``n/a`` and are left out of the means."""
    names = scores.get("class_names", CLASS_NAMES)
    width = max(len(n) for n in names)
    lines = [f"  {'class':<{width}} |     IoU |     acc"]
    for name, iou, acc in zip(names, scores["iou"], scores["class_acc"]):
        lines.append(f"  {name:<{width}} | {_fmt(iou)} | {_fmt(acc)}")
    lines.append(f"  {'mIoU':<{width}} | {_fmt(scores['miou'])} | {miou_note(scores)}")
    lines.append(f"  mean class accuracy {_fmt(scores['mean_acc']).strip()} %, pixel accuracy "
                 f"{_fmt(scores['pixel_acc']).strip()} %, {scores['pixels']} pixels "
                 f"({scores.get('void_pixels', 0)} predicted void)")
    return "\n".join(lines)


def checkpoint_info(model: Any, path: str | os.PathLike[str] | None = None) -> dict:
    """What the JSON records about the evaluated weights: file, architecture, depth range, scale, provenance."""
    meta = getattr(model, "metadata", None) or {}
    info = {key: meta.get(key) for key in ("architecture", "min_depth", "max_depth", "scale", "trained",
                                            "provenance", "created")
            if key in meta}
    if path is not None:
        info["path"] = str(path)
    return info


def depth_report(result: DepthEvalResult, *, checkpoint: Mapping[str, Any] | None = None,
                 extra_settings: Mapping[str, Any] | None = None) -> dict:
    """JSON document of a depth evaluation: metrics, count, scaling-ratio summary, settings, checkpoint, per image."""
    return {
        "task": "depth",
        "metrics": dict(result.metrics),
        "count": result.count,
        "skipped": list(result.skipped),
        "scaling_ratios": dict(result.ratio_summary),
        "settings": {**result.settings, **(extra_settings or {})},
        "checkpoint": dict(checkpoint or {}),
        "per_image": list(result.per_image),
    }


def region_report(result: RegionEvalResult, *, checkpoint: Mapping[str, Any] | None = None,
                  extra_settings: Mapping[str, Any] | None = None) -> dict:
    """JSON document of a region evaluation (``eval-depth --regions``): per-region metrics and image counts, holes,
    scaling-ratio summary, settings, checkpoint, per image."""
    return {
        "task": "depth_regions",
        "regions": {k: (dict(v) if v is not None else None) for k, v in result.regions.items()},
        "counts": dict(result.counts),
        "holes": dict(result.holes),
        "count": len(result.per_image),
        "skipped": list(result.skipped),
        "scaling_ratios": dict(result.ratio_summary),
        "settings": {**result.settings, **(extra_settings or {})},
        "checkpoint": dict(checkpoint or {}),
        "per_image": list(result.per_image),
    }


def seg_report(result: SegEvalResult, *, checkpoint: Mapping[str, Any] | None = None,
               extra_settings: Mapping[str, Any] | None = None) -> dict:
    """JSON document of a segmentation evaluation: scores, per-class IoU by name, confusion counts, settings."""
    scores = result.scores
    return {
        "task": "segmentation",
        "miou": scores["miou"],
        "miou_classes": miou_classes(scores)[0],
        "mean_acc": scores["mean_acc"],
        "pixel_acc": scores["pixel_acc"],
        "count": result.count,
        "pixels": scores["pixels"],
        "void_pixels": scores["void_pixels"],
        "iou": dict(zip(scores["class_names"], scores["iou"])),
        "class_acc": dict(zip(scores["class_names"], scores["class_acc"])),
        "confusion": result.confusion.matrix.tolist(),
        "void_per_class": result.confusion.void.tolist(),
        "settings": {**result.settings, **(extra_settings or {})},
        "checkpoint": dict(checkpoint or {}),
    }


def json_safe(value: Any) -> Any:
    """Recursively replace NaN/inf floats by None (JSON has no NaN), tuples by lists, numpy scalars by Python ones."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: str | os.PathLike[str], doc: Mapping[str, Any]) -> Path:
    """Write ``doc`` as indented JSON (NaN → null), creating folders; atomic (temporary file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(json_safe(doc), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path
