"""Cityscapes fine segmentation reader (spec §4.3, §5.2 item 5).

Layout (standard download)::

    <root>/leftImg8bit/<split>/<city>/<name>_leftImg8bit.png
    <root>/gtFine/<split>/<city>/<name>_gtFine_labelIds.png        (raw labelIds, mapped here to trainIds)
    <root>/gtFine/<split>/<city>/<name>_gtFine_labelTrainIds.png   (cityscapesScripts output, already trainIds)
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from sgdepth_ros.labels import IGNORE_ID, NUM_CLASSES, label_id_to_train_id
from sgdepth_ros.preprocess import resize_rgb

from ._imaging import read_rgb, read_single_channel, resize_labels, rgb_to_tensor
from .errors import DatasetError

__all__ = ["CityscapesSegDataset"]

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIXES = {"labelIds": "_gtFine_labelIds.png", "labelTrainIds": "_gtFine_labelTrainIds.png"}
_LABEL_ID_TO_TRAIN_ID = label_id_to_train_id()
# labelTrainIds files: keep 0..18, everything else (255, stray values) becomes ignore.
_TRAIN_ID_SANITISE = np.where(np.arange(256) < NUM_CLASSES, np.arange(256), IGNORE_ID).astype(np.uint8)


class CityscapesSegDataset(Dataset):
    """Cityscapes image + fine label pairs as trainIds.

    Each sample: ``{"color": float32 [3,H,W] RGB in [0,1], "segmentation": int64 [H,W] trainIds 0..18 with 255 =
    ignore, "path": str (the image file), "label_path": str}``, then ``transform(sample)`` if given.

    Images are listed as ``<root>/leftImg8bit/<split>/*/*_leftImg8bit.png``, sorted by path. ``label_kind``:
    ``"labelIds"`` (mapped via :func:`sgdepth_ros.labels.label_id_to_train_id`), ``"labelTrainIds"`` (values other than
    0..18 become 255), or ``"auto"`` (per image: labelIds if that file exists, else labelTrainIds).
    With ``height`` and ``width`` both given, the image is resized with PIL bilinear and the labels with PIL nearest
    (only label values present in the source appear); otherwise native resolution (2048x1024 for real Cityscapes).
    ``native_labels=True`` resizes only the image and keeps the labels at their native size (evaluation, spec §6.2).
    ``missing="error"`` raises DatasetError naming the first missing label file; ``"skip"`` drops the image and records
    ``(image_path, missing_label_path)`` in ``self.skipped``.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        height: int | None = None,
        width: int | None = None,
        label_kind: str = "auto",
        missing: str = "error",
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        native_labels: bool = False,
    ) -> None:
        if label_kind not in ("auto", *LABEL_SUFFIXES):
            raise ValueError(f"label_kind must be 'auto', 'labelIds' or 'labelTrainIds', got {label_kind!r}")
        if missing not in ("error", "skip"):
            raise ValueError(f"missing must be 'error' or 'skip', got {missing!r}")
        if (height is None) != (width is None):
            raise ValueError("give both height and width, or neither (native resolution)")
        self.root = Path(root)
        self.split = split
        self.height, self.width = height, width
        self.transform = transform
        self.native_labels = native_labels
        self.skipped: list[tuple[Path, Path]] = []

        image_dir = self.root / "leftImg8bit" / split
        images = sorted(image_dir.glob(f"*/*{IMAGE_SUFFIX}")) if image_dir.is_dir() else []
        if not images:
            raise DatasetError(f"{image_dir}: no '*/*{IMAGE_SUFFIX}' images found (missing or empty split folder)")
        self.samples: list[tuple[Path, Path, str]] = []  # (image, label, kind)
        for image in images:
            found = self._label_for(image, label_kind)
            if isinstance(found, Path):
                if missing == "error":
                    raise DatasetError(f"{found}: missing label file for image {image}")
                self.skipped.append((image, found))
                continue
            self.samples.append((image, *found))

    def _label_for(self, image: Path, label_kind: str) -> tuple[Path, str] | Path:
        """(label path, kind) when found, else the path that was expected (the labelIds one in auto mode)."""
        stem = image.name[: -len(IMAGE_SUFFIX)]
        folder = self.root / "gtFine" / self.split / image.parent.name
        kinds = ("labelIds", "labelTrainIds") if label_kind == "auto" else (label_kind,)
        for kind in kinds:
            candidate = folder / f"{stem}{LABEL_SUFFIXES[kind]}"
            if candidate.is_file():
                return candidate, kind
        return folder / f"{stem}{LABEL_SUFFIXES[kinds[0]]}"

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image_path, label_path, kind = self.samples[index]
        rgb = read_rgb(image_path)
        raw = read_single_channel(label_path)
        if raw.dtype != np.uint8:
            if raw.dtype != np.uint16 or raw.max(initial=0) > 255:
                raise DatasetError(f"{label_path}: label PNG must hold 8-bit ids, got {raw.dtype}")
            raw = raw.astype(np.uint8)
        if raw.shape != rgb.shape[:2]:
            raise DatasetError(f"{label_path}: label size {raw.shape[1]}x{raw.shape[0]} differs from image "
                               f"{image_path} ({rgb.shape[1]}x{rgb.shape[0]})")
        lut = _LABEL_ID_TO_TRAIN_ID if kind == "labelIds" else _TRAIN_ID_SANITISE
        train_ids = lut[raw]
        if self.width is not None:
            rgb = resize_rgb(rgb, (self.width, self.height))
            if not self.native_labels:
                train_ids = resize_labels(train_ids, self.width, self.height)
        sample: dict[str, Any] = {
            "color": rgb_to_tensor(rgb),
            "segmentation": torch.from_numpy(train_ids.astype(np.int64)),
            "path": str(image_path),
            "label_path": str(label_path),
        }
        if self.transform is not None:
            sample = self.transform(sample)
        return sample
