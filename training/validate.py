"""Validation between epochs with the evaluators' own code (so training curves and `eval-depth` agree).

Depth: the split's ``val_files.txt`` frames that have ground truth, protocol ``config.val_protocol`` ("kitti":
gt > 0, no crop, as the reference validates on kitti_kitti_validation; the synthetic presets use "capped":
1e-3 < gt < 80 m, no crop), per-image median scaling. Segmentation: Cityscapes val at
the training resize (1024×512 by default; labels resized with nearest too, cheaper than the full-size protocol of
``sgdepth-ros eval-seg``). Both capped at ``val_max_images`` (evenly spaced).

On the synthetic world (every val drive has its ``synthetic/instance_ids/``) the depth pass also scores the
moving-object and static pixels with the same one scale per image and the holes, as ``eval-depth --regions
all,moving,static`` does (:func:`~.evaluation.runner.evaluate_depth_regions`): ``val/moving/abs_rel``,
``val/moving/a1``, ``val/static/abs_rel``, ``val/static/a1`` and ``val/holes`` — the moving-object error that the
all-pixel AbsRel hides.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch.utils.data import Dataset, Subset

from .config import TrainConfig
from .data.assemble import TrainingData, evenly_spaced
from .data.errors import DatasetError
from .data.kitti import KittiRawDepthDataset
from .evaluation.depth_gt import has_instance_ids, moving_actor_mask
from .evaluation.report import miou_classes
from .evaluation.runner import evaluate_depth, evaluate_depth_regions, evaluate_segmentation

LOG = logging.getLogger(__name__)


def _capped(dataset, limit: int | None):
    return Subset(dataset, evenly_spaced(range(len(dataset)), limit))


class WithMovingMask(Dataset):
    """The samples of ``dataset`` (a KITTI depth dataset over synthetic drives, or a Subset of one) plus
    ``"moving_mask"`` bool [1,H,W]: the pixels of actors flagged moving, at the ground truth's size H×W."""

    def __init__(self, dataset: Dataset, root: str | Path) -> None:
        self.dataset, self.root = dataset, Path(root)
        self._moving_ids: dict = {}  # drive -> its moving actor ids (moving_actor_mask's cache)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        sample = dict(self.dataset[index])
        shape = tuple(sample["depth_gt"].shape[-2:])
        mask = moving_actor_mask(self.root, sample["folder"], sample["frame"], sample["side"], self._moving_ids, shape)
        sample["moving_mask"] = torch.from_numpy(mask)[None]
        return sample


def _depth_metrics(model, dataset: KittiRawDepthDataset, config: TrainConfig, device, progress: bool) -> dict:
    """``val/<metric>`` on all pixels and ``val/median_ratio``; on the synthetic world also AbsRel and δ<1.25 of the
    moving-object and static pixels and ``val/holes`` (one scale per image from all its pixels, so ``val/<metric>``
    is the same either way)."""
    capped = _capped(dataset, config.val_max_images)
    common = dict(device=device, protocol=config.val_protocol, scaling="median", min_depth=config.min_depth,
                  max_depth=config.max_depth, progress=progress)
    regions = None
    if has_instance_ids(dataset.root, (e.folder for e in dataset.entries)):
        try:
            regions = evaluate_depth_regions(model, WithMovingMask(capped, dataset.root), **common)
        except DatasetError as exc:  # a damaged or missing actor file must not end the training run
            LOG.warning("validation without moving-object scores: %s", exc)
    if regions is None:
        result = evaluate_depth(model, capped, **common)
        return {**{f"val/{k}": float(v) for k, v in result.metrics.items()},
                "val/median_ratio": float(result.ratio_summary["median"])}
    metrics = {f"val/{k}": float(v) for k, v in regions.regions["all"].items()}
    for region in ("moving", "static"):
        scores = regions.regions[region] or {}  # None: no image of the capped set shows that region
        metrics.update({f"val/{region}/{k}": float(scores[k]) for k in ("abs_rel", "a1") if k in scores})
    if regions.holes.get("fraction") is not None:
        metrics["val/holes"] = float(regions.holes["fraction"])
    metrics["val/median_ratio"] = float(regions.ratio_summary["median"])
    return metrics


def validate(model, data: TrainingData, config: TrainConfig, device: torch.device,
             progress: bool = False) -> dict[str, float]:
    """Validation scalars (``val/abs_rel``, ``val/a1``, …, on the synthetic world ``val/moving/abs_rel``, … and
    ``val/holes``, then ``val/miou`` and ``val/miou_classes``, the number of classes that mIoU averages — 13 on the
    synthetic world) of ``model``; {} when there is no validation data."""
    metrics: dict[str, float] = {}
    if data.depth_val is not None:
        metrics.update(_depth_metrics(model, data.depth_val, config, device, progress))
    if data.seg_val is not None:
        result = evaluate_segmentation(model, _capped(data.seg_val, config.val_max_images), device=device,
                                       progress=progress)
        metrics["val/miou"] = float(result.scores["miou"])
        metrics["val/miou_classes"] = float(len(miou_classes(result.scores)[0]))  # how many classes it averages
    return metrics
