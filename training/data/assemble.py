"""Training and validation datasets from a TrainConfig: KITTI raw depth sequences (split files in the monodepth2
format) and Cityscapes segmentation, with the reference augmentations (spec §4.2, §4.3)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..config import TrainConfig
from .augment import CityscapesTrainTransform, KittiTrainTransform
from .cityscapes import CityscapesSegDataset
from .errors import DatasetError
from .kitti import KittiRawDepthDataset
from .sides import select_sides
from .splits import read_split_file


def evenly_spaced(items: Sequence, limit: int | None) -> list:
    """At most ``limit`` of ``items``, spread evenly over the whole sequence (all of them when ``limit`` is None or
    not smaller than their number)."""
    if limit is None or len(items) <= limit:
        return list(items)
    return [items[int(i * len(items) / limit)] for i in range(limit)]


def resolve_split_dir(kitti_root: str | Path, split: str) -> Path:
    """A folder holding ``train_files.txt`` (and usually ``val_files.txt``): ``split`` itself when it is such a
    folder, else ``<kitti_root>/splits/<split>`` (where the synthetic world and a monodepth2 checkout copy put them).
    Raises DatasetError listing where it looked."""
    candidates = [Path(split), Path(kitti_root) / "splits" / split]
    for folder in candidates:
        if (folder / "train_files.txt").is_file():
            return folder
    raise DatasetError(f"split {split!r}: no train_files.txt in " + " or ".join(str(c) for c in candidates)
                       + " (copy monodepth2's splits/<name>/ folder there, pass the folder with --split, or convert "
                         "SGDepth's split JSONs with --split-json DIR, e.g. kitti_kitti_split/ for split 'kitti')")


@dataclass
class TrainingData:
    """depth: KITTI training samples (frames 0/−1/+1 + colour-augmented copies, K); seg: Cityscapes crops or None;
    depth_val: KITTI val frames with depth ground truth at native size, or None; seg_val: Cityscapes val or None
(validation caps both with :func:`evenly_spaced`);
    skipped: how many listed samples were skipped for missing files (``missing="skip"``)."""

    depth: KittiRawDepthDataset
    seg: CityscapesSegDataset | None
    depth_val: KittiRawDepthDataset | None
    seg_val: CityscapesSegDataset | None
    depth_transform: KittiTrainTransform
    seg_transform: CityscapesTrainTransform | None
    skipped: int = 0


def build_training_data(config: TrainConfig) -> TrainingData:
    split_dir = resolve_split_dir(config.kitti_root, config.split)
    entries = select_sides(read_split_file(split_dir / "train_files.txt"), config.sides)
    depth = KittiRawDepthDataset(config.kitti_root, entries, frame_offsets=(0, -1, 1), height=config.height,
                                 width=config.width, intrinsics=config.intrinsics, missing=config.missing,
                                 load_depth=False)
    if len(depth) == 0:
        raise DatasetError(f"{split_dir / 'train_files.txt'}: no usable training sample under {config.kitti_root}")
    skipped = len(depth.skipped)
    depth_val = None
    val_file = split_dir / "val_files.txt"
    if config.validate and val_file.is_file():
        depth_val = KittiRawDepthDataset(config.kitti_root, read_split_file(val_file), frame_offsets=(0,), height=config.height,
                                         width=config.width, intrinsics=config.intrinsics, missing="skip")
        depth_val.drop_entries_without_depth()
        if len(depth_val) == 0:
            depth_val = None
    seg = seg_val = seg_transform = None
    if not config.depth_only:
        seg_w, seg_h = config.seg_resize
        seg = CityscapesSegDataset(config.cityscapes_root, "train", height=seg_h, width=seg_w,
                                   label_kind=config.label_kind, missing=config.missing)
        skipped += len(seg.skipped)
        seg_transform = CityscapesTrainTransform(out_height=config.height, out_width=config.width,
                                                 max_zoom_out=config.max_zoom_out)
        if config.validate and (Path(config.cityscapes_root) / "leftImg8bit" / "val").is_dir():
            seg_val = CityscapesSegDataset(config.cityscapes_root, "val", height=seg_h, width=seg_w,
                                           label_kind=config.label_kind, missing="skip")
    return TrainingData(depth, seg, depth_val, seg_val, KittiTrainTransform(), seg_transform, skipped)
