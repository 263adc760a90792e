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

from sgdepth_ros.metrics.depth import (HOLE_FACTOR, MAX_DEPTH_EVAL, MIN_DEPTH_EVAL, PROTOCOLS, compute_errors,
                                       disp_to_depth, evaluation_mask, hole_mask, image_metrics, mean_metrics,
                                       median_ratio, ratio_summary)
from sgdepth_ros.metrics.segmentation import SegConfusion, seg_scores

from ..network import normalize

__all__ = ["REGIONS", "collate_eval", "eval_mode", "DepthEvalResult", "RegionEvalResult", "SegEvalResult",
           "evaluate_depth", "evaluate_depth_regions", "evaluate_segmentation"]

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


@dataclass
class _Prediction:
    """One evaluated image: ``name``, ``color`` [3,h,w] network input, ``gt`` HxW metres, ``pred`` HxW depth in model
    units at the ground-truth size, ``moving`` HxW bool or None (samples without ``moving_mask``)."""

    name: str
    color: torch.Tensor
    gt: np.ndarray
    pred: np.ndarray
    moving: np.ndarray | None


def _predictions(model: torch.nn.Module, dataset: Dataset, device: torch.device, min_depth: float, max_depth: float,
                 batch_size: int, num_workers: int, progress: bool, desc: str) -> Iterator[_Prediction]:
    """Per image, in dataset order: disparity s=0 → bilinear (align_corners=False) to the ground truth's H×W → depth
    with ``min_depth``/``max_depth``. The model runs in eval mode under no_grad."""
    index = 0
    with eval_mode(model):
        for batch in _progress(_loader(dataset, batch_size, num_workers), progress, desc):
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
                moving = (batch["moving_mask"][i].reshape(gt.shape).numpy().astype(bool)
                          if "moving_mask" in batch else None)
                yield _Prediction(names[i], color[i], gt, pred, moving)
            index += n


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
    for index, p in enumerate(_predictions(model, dataset, device, min_depth, max_depth, batch_size, num_workers,
                                           progress, "eval-depth")):
        mask = evaluation_mask(p.gt, protocol, min_depth_eval, max_depth_eval)
        if region is not None:
            if p.moving is None:
                raise ValueError("region evaluation needs samples with 'moving_mask' (synthetic world)")
            mask &= p.moving if region == "moving" else ~p.moving
        if not mask.any():
            skipped.append(p.name)
            continue
        metrics, ratio = image_metrics(p.gt, p.pred, mask, scale=fixed_scale if scaling == "fixed" else None,
                                       min_depth=min_depth_eval, max_depth=max_depth_eval)
        ratios.append(ratio)
        per_image.append({"name": p.name, "ratio": ratio, **metrics})
        if on_image is not None:
            on_image(index, p.color, np.clip(p.pred * ratio, min_depth_eval, max_depth_eval), p.gt)
    if not per_image:
        raise ValueError(f"no image had a valid ground-truth pixel under protocol {protocol!r}"
                         + (f" and region {region!r}" if region else "") + f" ({len(skipped)} images)")
    settings = {"protocol": protocol, "scaling": scaling, "fixed_scale": fixed_scale, "min_depth": min_depth,
                "max_depth": max_depth, "min_depth_eval": min_depth_eval, "max_depth_eval": max_depth_eval,
                "region": region or "all", "batch_size": batch_size}
    return DepthEvalResult(mean_metrics(per_image), len(per_image), ratios, ratio_summary(ratios), per_image,
                           skipped, settings)


@dataclass
class RegionEvalResult:
    """Outcome of :func:`evaluate_depth_regions`.

    ``regions``: region → mean metrics over the images with at least one valid pixel of that region (None when no
    image has one); ``counts``: region → that number of images; ``holes``: ``{"fraction"}`` = hole pixels / moving
    pixels pooled over the whole set (None without moving pixels), ``"image_mean"`` = mean of the per-image fractions,
    ``"pixels"``, ``"moving_pixels"``, ``"images"``, ``"factor"``; ``ratios``: the one scale of each image;
    ``per_image``: ``{"name", "ratio", <region>: metrics or None, "moving_pixels", "hole_pixels"}``; ``skipped``:
    images without a valid pixel at all."""

    regions: dict[str, dict[str, float] | None]
    counts: dict[str, int]
    holes: dict[str, Any]
    ratios: list[float]
    ratio_summary: dict[str, float]
    per_image: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    settings: dict = field(default_factory=dict)


def evaluate_depth_regions(model: torch.nn.Module, dataset: Dataset, *, device: str | torch.device = "cpu",
                           protocol: str = "capped", scaling: str = "median", fixed_scale: float | None = None,
                           min_depth: float = 0.1, max_depth: float = 100.0, min_depth_eval: float = MIN_DEPTH_EVAL,
                           max_depth_eval: float = MAX_DEPTH_EVAL, regions: tuple[str, ...] = REGIONS,
                           hole_factor: float = HOLE_FACTOR, batch_size: int = 1, num_workers: int = 0,
                           progress: bool = True,
                           on_image: Callable[[str, torch.Tensor, np.ndarray, np.ndarray, np.ndarray], None]
                           | None = None, actors: Any = None) -> RegionEvalResult:
    """Depth metrics on all, moving-object and static pixels and the holes on moving objects, in one pass.

    Unlike ``evaluate_depth(region=…)``, which median-scales each region on its own pixels, every image gets ONE
    scale: per-image median over all its valid pixels (``scaling="median"``) or ``fixed_scale``. A moving object
    learned as far away then shows as error on its pixels instead of being scaled back by its own median. Per
    image: valid = mask of ``protocol``; region pixels = valid ∧ moving (∧ ¬moving for static); metrics of the scaled
    prediction clamped to [min_depth_eval, max_depth_eval]; holes = valid moving pixels whose scaled, unclamped
    prediction is more than ``hole_factor`` × the ground truth (metrics.depth.hole_mask).

    Dataset samples as for :func:`evaluate_depth`, with ``"moving_mask"`` bool [1,H,W] when ``regions`` names moving
    or static. ``on_image(name, color [3,h,w], depth HxW scaled+clamped, gt HxW, moving HxW bool)`` is called for
    every evaluated image. ``actors`` (an :class:`~.actors.ActorErrors`, optional) gets ``add(name, valid, scaled,
    clamped, gt)`` for every evaluated image: the per-actor errors of the synthetic world.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if scaling not in ("median", "fixed"):
        raise ValueError(f"scaling must be 'median' or 'fixed', got {scaling!r}")
    if scaling == "fixed" and not (fixed_scale is not None and np.isfinite(fixed_scale) and fixed_scale > 0):
        raise ValueError(f"scaling='fixed' needs a positive finite fixed_scale, got {fixed_scale}")
    regions = tuple(regions)
    if not regions or not set(regions) <= set(REGIONS) or len(set(regions)) != len(regions):
        raise ValueError(f"regions must be distinct names of {REGIONS}, got {regions}")
    if not 0 < min_depth_eval < max_depth_eval:
        raise ValueError(f"need 0 < min_depth_eval < max_depth_eval, got {min_depth_eval}, {max_depth_eval}")
    needs_moving = "moving" in regions or "static" in regions
    device = torch.device(device)
    per_image: list[dict] = []
    ratios: list[float] = []
    skipped: list[str] = []
    hole_pixels = moving_pixels = 0
    hole_fractions: list[float] = []
    for p in _predictions(model, dataset, device, min_depth, max_depth, batch_size, num_workers, progress,
                          "eval-depth"):
        valid = evaluation_mask(p.gt, protocol, min_depth_eval, max_depth_eval)
        if needs_moving and p.moving is None:
            raise ValueError("moving/static regions need samples with 'moving_mask' (synthetic world)")
        if not valid.any():
            skipped.append(p.name)
            continue
        ratio = median_ratio(p.gt[valid], p.pred[valid]) if scaling == "median" else float(fixed_scale)
        scaled = p.pred * ratio
        clamped = np.clip(scaled, min_depth_eval, max_depth_eval)
        moving = p.moving if p.moving is not None else np.zeros_like(valid)
        selections = {"all": valid, "moving": valid & moving, "static": valid & ~moving}
        record: dict[str, Any] = {"name": p.name, "ratio": ratio}
        for region in regions:
            sel = selections[region]
            record[region] = compute_errors(p.gt[sel], clamped[sel]) if sel.any() else None
        if needs_moving:
            sel = selections["moving"]
            holes = int(hole_mask(p.gt[sel], scaled[sel], hole_factor).sum())
            record.update(moving_pixels=int(sel.sum()), hole_pixels=holes)
            moving_pixels += int(sel.sum())
            hole_pixels += holes
            if sel.any():
                hole_fractions.append(holes / int(sel.sum()))
        ratios.append(ratio)
        per_image.append(record)
        if on_image is not None:
            on_image(p.name, p.color, clamped, p.gt, moving)
        if actors is not None:
            actors.add(p.name, valid, scaled, clamped, p.gt)
    if not per_image:
        raise ValueError(f"no image had a valid ground-truth pixel under protocol {protocol!r} ({len(skipped)} images)")
    means: dict[str, dict[str, float] | None] = {}
    counts: dict[str, int] = {}
    for region in regions:
        having = [r[region] for r in per_image if r[region] is not None]
        means[region], counts[region] = (mean_metrics(having) if having else None), len(having)
    holes_summary: dict[str, Any] = {"factor": hole_factor, "pixels": hole_pixels, "moving_pixels": moving_pixels,
                                     "images": len(hole_fractions),
                                     "fraction": hole_pixels / moving_pixels if moving_pixels else None,
                                     "image_mean": float(np.mean(hole_fractions)) if hole_fractions else None}
    settings = {"protocol": protocol, "scaling": scaling, "fixed_scale": fixed_scale, "min_depth": min_depth,
                "max_depth": max_depth, "min_depth_eval": min_depth_eval, "max_depth_eval": max_depth_eval,
                "regions": list(regions), "region_scaling": "one scale per image from all its valid pixels",
                "hole_factor": hole_factor, "batch_size": batch_size}
    return RegionEvalResult(means, counts, holes_summary if needs_moving else {}, ratios, ratio_summary(ratios),
                            per_image, skipped, settings)


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
