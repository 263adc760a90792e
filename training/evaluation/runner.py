"""Running an in-memory SGDepth model over an evaluation data set (spec §6.1, §6.2).

The same functions serve the ``eval-depth`` / ``eval-seg`` commands and validation between training epochs: they take
the model object itself, switch it to eval mode under ``torch.no_grad`` and restore its train/eval mode afterwards.
The model is called as ``model(x, tasks=(...), all_scales=False)`` and must return an object with ``disparities``
(tuple, index 0 = [N,1,h,w] in (0,1)) and ``seg_logits`` ([N,20,h,w]) like :class:`sgdepth_ros.model.SGDepthOutput`.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from sgdepth_ros.metrics.depth import (MAX_DEPTH_EVAL, MIN_DEPTH_EVAL, PROTOCOLS, disp_to_depth, evaluation_mask,
                                       image_metrics, mean_metrics, ratio_summary)
from sgdepth_ros.metrics.segmentation import SegConfusion, seg_scores

from ..network import normalize

__all__ = ["REGIONS", "collate_eval", "eval_mode",
           "DepthEvalResult", "SegEvalResult", "evaluate_depth", "evaluate_segmentation"]

REGIONS = ("all", "moving", "static")


def collate_eval(samples: list[dict]) -> dict:
    """Batch dict samples: tensors of one shape are stacked, everything else (ground truth of differing sizes,
    names, ints) becomes a list, so images with different native sizes can share a batch."""
    out: dict[Any, Any] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        if all(isinstance(v, torch.Tensor) for v in values) and len({tuple(v.shape) for v in values}) == 1:
            out[key] = torch.stack(values)
        else:
            out[key] = values
    return out


@contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """``model.eval()`` and ``torch.no_grad()`` inside; the previous train/eval mode is restored on exit."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def _progress(loader, progress: bool, desc: str):
    from tqdm import tqdm
    return tqdm(loader, desc=desc, unit="batch", dynamic_ncols=True,
                disable=not progress or not sys.stderr.isatty())


def _loader(dataset: Dataset, batch_size: int, num_workers: int) -> DataLoader:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                      collate_fn=collate_eval)


def _sample_names(batch: dict, n: int, start: int) -> list[str]:
    if "name" in batch:
        return [str(v) for v in batch["name"]]
    return [str(start + i) for i in range(n)]


@dataclass
class DepthEvalResult:
    """Outcome of :func:`evaluate_depth`: ``metrics`` = mean over ``count`` images; ``ratios`` = the applied scale
    per image; ``per_image`` = ``{"name", "ratio", <metrics>}``; ``skipped`` = names of images without a single valid
    pixel (not in the mean); ``settings`` = the arguments that shaped the numbers."""

    metrics: dict[str, float]
    count: int
    ratios: list[float]
    ratio_summary: dict[str, float]
    per_image: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    settings: dict = field(default_factory=dict)


def evaluate_depth(model: torch.nn.Module, dataset: Dataset, *, device: str | torch.device = "cpu",
                   protocol: str = "eigen", scaling: str = "median", fixed_scale: float | None = None,
                   min_depth: float = 0.1, max_depth: float = 100.0, min_depth_eval: float = MIN_DEPTH_EVAL,
                   max_depth_eval: float = MAX_DEPTH_EVAL, region: str | None = None, batch_size: int = 1,
                   num_workers: int = 0, progress: bool = True,
                   on_image: Callable[[int, torch.Tensor, np.ndarray, np.ndarray], None] | None = None,
                   ) -> DepthEvalResult:
    """Depth metrics of ``model`` over ``dataset`` (spec §6.1).

    Dataset samples: ``("color", 0)`` float32 [3,h,w] RGB in [0,1] at the network size (multiples of 32),
    ``"depth_gt"`` float32 [1,H,W] metres (0 = none); optional ``"name"`` and, for ``region``, ``"moving_mask"``
    bool [1,H,W]. Per image: disparity s=0 → bilinear (align_corners=False) to H×W → depth with
    ``min_depth``/``max_depth`` (the checkpoint's range) → mask of ``protocol`` (∧ region) → scale (``"median"``
    per image, or ``"fixed"`` × ``fixed_scale``) → clamp to [min_depth_eval, max_depth_eval] → metrics.
    ``on_image(i, color [3,h,w], depth HxW scaled+clamped metres, gt HxW)`` is called for every evaluated image.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if scaling not in ("median", "fixed"):
        raise ValueError(f"scaling must be 'median' or 'fixed', got {scaling!r}")
    if scaling == "fixed" and not (fixed_scale is not None and np.isfinite(fixed_scale) and fixed_scale > 0):
        raise ValueError(f"scaling='fixed' needs a positive finite fixed_scale, got {fixed_scale}")
    region = None if region in (None, "all") else region
    if region not in (None, "moving", "static"):
        raise ValueError(f"region must be one of {REGIONS}, got {region!r}")
    if not 0 < min_depth_eval < max_depth_eval:
        raise ValueError(f"need 0 < min_depth_eval < max_depth_eval, got {min_depth_eval}, {max_depth_eval}")
    device = torch.device(device)
    per_image: list[dict] = []
    ratios: list[float] = []
    skipped: list[str] = []
    index = 0
    with eval_mode(model):
        for batch in _progress(_loader(dataset, batch_size, num_workers), progress, "eval-depth"):
            color = batch[("color", 0)]
            n = color.shape[0]
            names = _sample_names(batch, n, index)
            disp = model(normalize(color.to(device)), tasks=("depth",), all_scales=False).disparities[0]
            for i in range(n):
                gt = batch["depth_gt"][i]
                gt = gt[0].numpy() if gt.dim() == 3 else gt.numpy()
                up = disp[i:i + 1].float()
                if tuple(up.shape[-2:]) != gt.shape:
                    up = F.interpolate(up, size=gt.shape, mode="bilinear", align_corners=False)
                pred = disp_to_depth(up[0, 0].cpu().numpy().astype(np.float64), min_depth, max_depth)
                mask = evaluation_mask(gt, protocol, min_depth_eval, max_depth_eval)
                if region is not None:
                    if "moving_mask" not in batch:
                        raise ValueError("region evaluation needs samples with 'moving_mask' (synthetic world)")
                    moving = batch["moving_mask"][i].reshape(gt.shape).numpy().astype(bool)
                    mask &= moving if region == "moving" else ~moving
                if not mask.any():
                    skipped.append(names[i])
                    index += 1
                    continue
                metrics, ratio = image_metrics(gt, pred, mask, scale=fixed_scale if scaling == "fixed" else None,
                                               min_depth=min_depth_eval, max_depth=max_depth_eval)
                ratios.append(ratio)
                per_image.append({"name": names[i], "ratio": ratio, **metrics})
                if on_image is not None:
                    on_image(index, color[i], np.clip(pred * ratio, min_depth_eval, max_depth_eval), gt)
                index += 1
    if not per_image:
        raise ValueError(f"no image had a valid ground-truth pixel under protocol {protocol!r}"
                         + (f" and region {region!r}" if region else "") + f" ({len(skipped)} images)")
    settings = {"protocol": protocol, "scaling": scaling, "fixed_scale": fixed_scale, "min_depth": min_depth,
                "max_depth": max_depth, "min_depth_eval": min_depth_eval, "max_depth_eval": max_depth_eval,
                "region": region or "all", "batch_size": batch_size}
    return DepthEvalResult(mean_metrics(per_image), len(per_image), ratios, ratio_summary(ratios), per_image,
                           skipped, settings)


@dataclass
class SegEvalResult:
    """Outcome of :func:`evaluate_segmentation`: ``scores`` (see :func:`seg_scores`), the accumulated
    ``confusion``, the number of images, and ``settings``."""

    scores: dict
    confusion: SegConfusion
    count: int
    settings: dict = field(default_factory=dict)


def evaluate_segmentation(model: torch.nn.Module, dataset: Dataset, *, device: str | torch.device = "cpu",
                          batch_size: int = 1, num_workers: int = 0, progress: bool = True) -> SegEvalResult:
    """Segmentation scores of ``model`` over ``dataset`` (spec §6.2), accumulated over the whole set.

    Dataset samples: ``"color"`` float32 [3,h,w] RGB in [0,1] at the network size (1024x512 for Cityscapes),
    ``"segmentation"`` int64 [H,W] trainIds at the label's native size (255 = ignore). The 20 logits are upsampled
    to H×W with nearest interpolation and arg-maxed over all 20 channels. Implemented as argmax first, then nearest
    upsampling of the class map: nearest only copies source pixels, so the result is identical and 20× cheaper.
    """
    device = torch.device(device)
    confusion = SegConfusion()
    count = 0
    with eval_mode(model):
        for batch in _progress(_loader(dataset, batch_size, num_workers), progress, "eval-seg"):
            color = batch["color"]
            logits = model(normalize(color.to(device)), tasks=("segmentation",), all_scales=False).seg_logits
            classes = torch.argmax(logits, dim=1, keepdim=True).float()
            for i in range(color.shape[0]):
                gt = batch["segmentation"][i]
                pred = classes[i:i + 1]
                if tuple(pred.shape[-2:]) != tuple(gt.shape[-2:]):
                    pred = F.interpolate(pred, size=tuple(gt.shape[-2:]), mode="nearest")
                confusion.update(gt.numpy(), pred[0, 0].to(torch.int64).cpu().numpy())
                count += 1
    if count == 0:
        raise ValueError("the segmentation data set is empty")
    return SegEvalResult(seg_scores(confusion), confusion, count, {"batch_size": batch_size})
