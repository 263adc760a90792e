"""Writing frames in the Cityscapes layout: ``leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png`` and
``gtFine/<split>/<city>/…_gtFine_labelIds.png`` (labelIds, so loaders exercise the labelId → trainId mapping) plus
``…_gtFine_instanceIds.png`` (Cityscapes convention: labelId·1000 + instance for actors, labelId elsewhere)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .export_kitti import write_png


def cityscapes_stem(city: str, sequence: int, frame: int) -> str:
    return f"{city}_{sequence:06d}_{frame:06d}"


def write_cityscapes_frame(root: Path, split: str, city: str, sequence: int, frame) -> None:
    """Write one rendered Frame (render.Frame) as image, labelIds and instanceIds."""
    stem = cityscapes_stem(city, sequence, frame.index)
    write_png(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", frame.rgb)
    gt = root / "gtFine" / split / city
    write_png(gt / f"{stem}_gtFine_labelIds.png", frame.label_ids)
    instances = np.where(frame.instance_ids > 0, frame.label_ids.astype(np.int32) * 1000 + frame.instance_ids,
                         frame.label_ids).astype(np.uint16)
    write_png(gt / f"{stem}_gtFine_instanceIds.png", instances)
