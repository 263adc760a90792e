"""SGDepth's split JSON indices → split files in the monodepth2 format (``folder frame side`` lines).

The reference trains from JSON indices made with IFN_Dataloader (spec §5.1): ``<IFN_DIR_DATASET>/kitti_<split>/
{train,validation,test}.json``, e.g. ``kitti_kitti_split/`` for the ``kitti_full`` / ``kitti_only_depth`` experiments
and ``kitti_zhou_split/`` for the ``zhou_*`` ones. They are downloaded from the links in SGDepth's README or rebuilt
with IFN_Dataloader (``file_io/filelist_creator.py``, then ``file_io/split_creator.py``). Each file is one JSON object
of parallel lists, one entry per data category::

    "names":     ["color", "color_right", "depth", ..., "camera_intrinsics", ...]
    "types":     [".png", ".png", ...]
    "folders":   [[folder, ...], ...]
    "files":     [[file, ...], ...]      paths relative to the dataset folder, e.g.
                 "Raw_data/2011_09_26/2011_09_26_drive_0001_sync/image_02/data/0000000005.png"
                 (numbers instead of paths for numerical categories such as camera_intrinsics)
    "positions": [[[global index, frames before, frames after, local index], ...], ...]

Only ``color`` (left camera, image_02 → side ``l``) and ``color_right`` (image_03 → ``r``) are read; the path is
taken apart at its ``image_0X`` component (``<date>/<drive>/image_0X/data/<frame>.<ext>``), so any prefix (``Raw_data``,
Windows separators) is accepted. For training (``require_neighbours``), frames without a neighbour on both sides
(``positions`` before or after = 0) are dropped as the reference's loaders drop them; they are counted.

Command line (also ``sgdepth-ros train --split-json DIR``)::

    python -m sgdepth_training.data.sgdepth_json ~/ifn/kitti_kitti_split ~/data/kitti_raw/splits/kitti
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DatasetError
from .splits import SplitEntry, read_split_file, write_split_file

__all__ = ["JSON_TO_SPLIT_FILE", "SIDE_OF_NAME", "ConvertedSplit", "read_sgdepth_split_json",
           "convert_sgdepth_split", "describe", "main"]

#: reference JSON → our split file (train frames need both neighbours)
JSON_TO_SPLIT_FILE = {"train.json": "train_files.txt", "validation.json": "val_files.txt",
                      "test.json": "test_files.txt"}
SIDE_OF_NAME = {"color": "l", "color_right": "r"}
_CAMERA_DIR = {"image_02": "l", "image_03": "r"}


@dataclass
class ConvertedSplit:
    """One JSON read: ``entries`` in file order (all ``color`` frames, then all ``color_right`` frames);
    ``without_neighbours``: frames dropped because the drive has no frame before or after them."""

    entries: list[SplitEntry] = field(default_factory=list)
    without_neighbours: int = 0


def _entry_from_path(path: Any, where: str) -> SplitEntry:
    if not isinstance(path, str):
        raise DatasetError(f"{where}: expected a file path string, got {type(path).__name__}")
    parts = [p for p in path.replace("\\", "/").split("/") if p]
    cameras = [i for i, p in enumerate(parts) if p in _CAMERA_DIR]
    if not cameras or cameras[-1] < 2 or cameras[-1] >= len(parts) - 1:
        raise DatasetError(f"{where}: {path!r} is not a KITTI raw image path "
                           f"(<date>/<drive>/image_0X/data/<frame>.png)")
    i = cameras[-1]
    stem = parts[-1].rsplit(".", 1)[0]
    if not stem.isdigit():
        raise DatasetError(f"{where}: {path!r}: the file name is not a frame number")
    return SplitEntry(f"{parts[i - 2]}/{parts[i - 1]}", int(stem), _CAMERA_DIR[parts[i]])


def read_sgdepth_split_json(path: str | os.PathLike[str], require_neighbours: bool = False) -> ConvertedSplit:
    """Read one reference split JSON (see the module docstring) → :class:`ConvertedSplit`.

    Raises: DatasetError naming the file (and the list position) when it is not JSON, lacks ``names``/``files``,
    has neither ``color`` nor ``color_right``, or holds a path that is not a KITTI raw image.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"{path}: split JSON does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: not a readable JSON file ({type(exc).__name__}: {exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("names"), list) or not isinstance(doc.get("files"), list):
        raise DatasetError(f"{path}: not an SGDepth/IFN_Dataloader split index (needs the lists 'names' and 'files')")
    names, files, positions = doc["names"], doc["files"], doc.get("positions")
    if len(files) != len(names):
        raise DatasetError(f"{path}: 'files' has {len(files)} lists for {len(names)} names")
    used = [name for name in SIDE_OF_NAME if name in names]
    if not used:
        raise DatasetError(f"{path}: no 'color' or 'color_right' category (names: {', '.join(map(str, names))})")
    out = ConvertedSplit()
    for name in used:
        k = names.index(name)
        if not isinstance(files[k], list):
            raise DatasetError(f"{path}: files[{k}] ({name}) is not a list")
        pos = positions[k] if isinstance(positions, list) and k < len(positions) else None
        pos = pos if isinstance(pos, list) and len(pos) == len(files[k]) else None
        for j, item in enumerate(files[k]):
            entry = _entry_from_path(item, f"{path}: files[{k}][{j}] ({name})")
            if entry.side != SIDE_OF_NAME[name]:
                raise DatasetError(f"{path}: files[{k}][{j}]: {item!r} is listed under {name!r} but is a "
                                   f"{'left' if entry.side == 'l' else 'right'}-camera image")
            if require_neighbours and pos is not None:
                p = pos[j]
                if not (isinstance(p, list) and len(p) == 4 and all(isinstance(v, int) for v in p)):
                    raise DatasetError(f"{path}: positions[{k}][{j}] must be 4 integers, got {p!r}")
                if p[1] < 1 or p[2] < 1:
                    out.without_neighbours += 1
                    continue
            out.entries.append(entry)
    return out


def convert_sgdepth_split(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> dict[str, dict[str, int]]:
    """Convert a reference split folder (``train.json`` required; ``validation.json``, ``test.json`` if present) into
    ``dst/{train,val,test}_files.txt``. Train frames need both neighbours (see :func:`read_sgdepth_split_json`).

    An existing split file with the same lines is kept; one with other lines is an error (nothing is overwritten).
    Returns ``{"train_files.txt": {"frames": n, "without_neighbours": m}, ...}``.
    Raises: DatasetError naming the folder or file.
    """
    src, dst = Path(src), Path(dst)
    if not (src / "train.json").is_file():
        raise DatasetError(f"{src}: no train.json (expected SGDepth's split folder, e.g. kitti_kitti_split/ with "
                           f"train.json, validation.json, test.json)")
    converted: dict[str, tuple[Path, ConvertedSplit]] = {}
    for json_name, txt_name in JSON_TO_SPLIT_FILE.items():
        if (src / json_name).is_file():
            converted[txt_name] = (src / json_name, read_sgdepth_split_json(
                src / json_name, require_neighbours=txt_name == "train_files.txt"))
    for txt_name, (source, split) in converted.items():  # check every target before writing any
        target = dst / txt_name
        if target.exists() and read_split_file(target) != split.entries:
            raise DatasetError(f"{target}: exists with other frames than {source}; remove it or convert into "
                               f"another folder")
    summary = {}
    for txt_name, (_, split) in converted.items():
        if not (dst / txt_name).exists():
            write_split_file(dst / txt_name, split.entries)
        summary[txt_name] = {"frames": len(split.entries), "without_neighbours": split.without_neighbours}
    return summary


def describe(summary: dict[str, dict[str, int]], dst: str | os.PathLike[str]) -> str:
    """One line per written split file, e.g. ``…/train_files.txt: 57874 frames (12 without both neighbours)``."""
    return "\n".join(f"{Path(dst) / name}: {s['frames']} frames"
                     + (f" ({s['without_neighbours']} without both neighbours left out)"
                        if s["without_neighbours"] else "") for name, s in summary.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sgdepth_training.data.sgdepth_json",
                                     description="SGDepth split JSONs (train/validation/test.json) → split files "
                                                 "train/val/test_files.txt ('folder frame side' lines)")
    parser.add_argument("src", type=Path, help="SGDepth split folder, e.g. kitti_kitti_split/")
    parser.add_argument("dst", type=Path, help="output folder, e.g. <kitti raw>/splits/kitti")
    args = parser.parse_args(argv)
    try:
        summary = convert_sgdepth_split(args.src, args.dst)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(describe(summary, args.dst))
    return 0


if __name__ == "__main__":
    sys.exit(main())
