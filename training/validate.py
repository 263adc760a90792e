"""Validation between epochs with the evaluators' own code (so training curves and `eval-depth` agree).

Depth: the split's ``val_files.txt`` frames that have ground truth, protocol ``config.val_protocol`` ("kitti":
gt > 0, no crop, as the reference validates on kitti_kitti_validation; the synthetic presets use "capped":
1e-3 < gt < 80 m, no crop), per-image median scaling. Segmentation: Cityscapes val at
the training resize (1024×512 by default; labels resized with nearest too, cheaper than the full-size protocol of
``sgdepth-ros eval-seg``). Both capped at ``val_max_images`` (evenly spaced).
"""
from __future__ import annotations

import torch
from torch.utils.data import Subset

from .config import TrainConfig
from .data.assemble import TrainingData, evenly_spaced
from .evaluation.report import miou_classes
from .evaluation.runner import evaluate_depth, evaluate_segmentation


def _capped(dataset, limit: int | None):
    return Subset(dataset, evenly_spaced(range(len(dataset)), limit))


def validate(model, data: TrainingData, config: TrainConfig, device: torch.device,
             progress: bool = False) -> dict[str, float]:
    """Validation scalars (``val/abs_rel``, ``val/a1``, …, ``val/miou`` and ``val/miou_classes``, the number of
    classes that mIoU averages — 13 on the synthetic world) of ``model``; {} when there is no validation data."""
    metrics: dict[str, float] = {}
    if data.depth_val is not None:
        result = evaluate_depth(model, _capped(data.depth_val, config.val_max_images), device=device,
                                protocol=config.val_protocol, scaling="median", min_depth=config.min_depth,
                                max_depth=config.max_depth, progress=progress)
        metrics.update({f"val/{k}": float(v) for k, v in result.metrics.items()})
        metrics["val/median_ratio"] = float(result.ratio_summary["median"])
    if data.seg_val is not None:
        result = evaluate_segmentation(model, _capped(data.seg_val, config.val_max_images), device=device,
                                       progress=progress)
        metrics["val/miou"] = float(result.scores["miou"])
        metrics["val/miou_classes"] = float(len(miou_classes(result.scores)[0]))  # how many classes it averages
    return metrics
