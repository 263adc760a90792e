"""Depth ground-truth sources for evaluation (spec §5.2, §6.1) and the KITTI 2015 evaluation set.

Sources for a KITTI raw split (one ground-truth map per split line, HxW float32 metres, 0 = no value):
  - ``"png"``: KITTI depth PNGs (uint16 / 256) found by :func:`sgdepth_training.data.kitti.depth_png_path`;
  - ``"velodyne"``: projected velodyne scans (:mod:`.velodyne`), camera-z depth unless ``vel_depth``;
  - ``"npz"``: a precomputed file like monodepth2's ``gt_depths.npz`` (:class:`NpzDepthGT`).
Missing or malformed files raise :class:`DatasetError` naming the file (or, with ``missing="skip"``, leave the frame
out and are counted).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from sgdepth_ros.preprocess import resize_rgb

from ..data._imaging import read_rgb, read_single_channel, rgb_to_tensor
from ..data.errors import DatasetError
from ..data.kitti import KittiRawDepthDataset, depth_png_path, read_depth_png
from ..data.kitti_calib import read_calib_file
from ..data.splits import SplitEntry, read_split_file
from .velodyne import velodyne_depth_map, velodyne_path

__all__ = ["GT_SOURCES", "NpzDepthGT", "KittiEvalDataset", "has_instance_ids", "moving_actor_mask",
           "read_instance_ids", "read_objects", "read_disparity_png", "kitti2015_focal", "Kitti2015DepthDataset",
           "STEREO_BASELINE_M"]

GT_SOURCES = ("png", "velodyne", "npz")
STEREO_BASELINE_M = 0.54  # KITTI colour-camera baseline
_CONVERT_HINT = (
    "Loading it would unpickle Python objects, which can execute code, so it is refused. Convert it once, in an "
    "environment you trust, to plain arrays: python -c \"import numpy as np; d = np.load('{path}', "
    "allow_pickle=True)['data']; np.savez_compressed('gt_depths_plain.npz', **{{f'gt_{{i:04d}}': np.asarray(a, "
    "np.float32) for i, a in enumerate(d)}})\"")


class NpzDepthGT:
    """Ground-truth depths from an ``.npz`` file, read without ``allow_pickle``.

    Accepted layouts (depth in metres, 0 = no value, one map per split-file line, in order):
      - key ``data`` holding a 3-D float array [N,H,W] (all maps of one size), or the same array as the file's only
        key under another name (``np.savez(path, array)`` stores it as ``arr_0``);
      - keys ``gt_0000``, ``gt_0001``, … (any zero padding, consecutive from 0), each a 2-D float array [H,W].
    Monodepth2's ``gt_depths.npz`` stores ``data`` as a pickled object array; that is rejected with a DatasetError
    that shows the one-line conversion to the ``gt_NNNN`` layout. ``len()`` is the number of maps; ``[i]`` returns
    map i as HxW float32.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DatasetError(f"{self.path}: ground-truth npz does not exist")
        try:
            self._npz = np.load(self.path, allow_pickle=False)
        except Exception as exc:
            raise DatasetError(f"{self.path}: not a readable .npz file ({type(exc).__name__}: {exc})") from None
        keys = list(self._npz.files)
        self._data: np.ndarray | None = None
        self._keys: list[str] = []
        single = keys[0] if len(keys) == 1 and not keys[0].startswith("gt_") else None
        if "data" in keys or single:
            name = "data" if "data" in keys else single
            try:
                data = self._npz[name]
            except ValueError as exc:  # "Object arrays cannot be loaded when allow_pickle=False"
                raise DatasetError(f"{self.path}: '{name}' is a pickled object array. "
                                   + _CONVERT_HINT.format(path=self.path)) from exc
            if data.ndim != 3 or not np.issubdtype(data.dtype, np.floating):
                raise DatasetError(f"{self.path}: '{name}' must be a 3-D float array [N,H,W], got {data.dtype} "
                                   f"{data.shape}")
            self._data = data
            return
        numbered = {}
        for key in keys:
            if key.startswith("gt_") and key[3:].isdigit():
                numbered[int(key[3:])] = key
        if not numbered or sorted(numbered) != list(range(len(numbered))):
            raise DatasetError(f"{self.path}: expected key 'data' [N,H,W] or keys gt_0000, gt_0001, … consecutive "
                               f"from 0; found keys {sorted(keys)[:8]}")
        self._keys = [numbered[i] for i in range(len(numbered))]

    def __len__(self) -> int:
        return len(self._data) if self._data is not None else len(self._keys)

    def __getitem__(self, index: int) -> np.ndarray:
        if self._data is not None:
            return np.asarray(self._data[index], dtype=np.float32)
        key = self._keys[index]
        try:
            depth = self._npz[key]
        except ValueError as exc:
            raise DatasetError(f"{self.path}: '{key}' is a pickled object array. "
                               + _CONVERT_HINT.format(path=self.path)) from exc
        if depth.ndim != 2 or not np.issubdtype(depth.dtype, np.floating):
            raise DatasetError(f"{self.path}: '{key}' must be a 2-D float array, got {depth.dtype} {depth.shape}")
        return depth.astype(np.float32, copy=False)


def has_instance_ids(root: str | os.PathLike[str], folders) -> bool:
    """Whether every drive folder (``folders``, relative to ``root``; at least one) is the synthetic world's, with
    its instance-id images (``synthetic/instance_ids/``): where moving-object regions can be evaluated."""
    folders = set(folders)
    return bool(folders) and all((Path(root) / f / "synthetic" / "instance_ids").is_dir() for f in folders)


def read_objects(drive: str | os.PathLike[str]) -> dict:
    """The synthetic world's ``<drive>/synthetic/objects.json`` → its document, with ``"objects"`` a list of actor
    entries whose ``"id"`` is an integer (``"class"``, ``"moving"`` and the per-frame ``"frames"`` as written by
    ``sgdepth-ros synth``). Raises DatasetError naming the file when it is missing or malformed."""
    objects = Path(drive) / "synthetic" / "objects.json"
    if not objects.is_file():
        raise DatasetError(f"{objects}: missing; moving-object regions and per-actor errors need the synthetic "
                           f"world's export (sgdepth-ros synth)")
    try:
        doc = json.loads(objects.read_text(encoding="utf-8"))
        for o in doc["objects"]:
            o["id"] = int(o["id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"{objects}: malformed objects.json ({type(exc).__name__}: {exc})") from None
    return doc


def read_instance_ids(root: str | os.PathLike[str], folder: str, frame: int, side: str = "l",
                      shape: tuple[int, int] | None = None) -> np.ndarray:
    """Synthetic world: HxW uint16 actor id per pixel (0 = none) from
    ``<root>/<folder>/synthetic/instance_ids/image_0X/<frame:010d>.png``; ``shape`` (H, W), when given, must match
    (the ground truth's), else DatasetError."""
    ids = read_single_channel(Path(root) / folder / "synthetic" / "instance_ids" / f"image_0{_CAMERA[side]}"
                              / f"{frame:010d}.png")
    if shape is not None and ids.shape != tuple(shape):
        raise DatasetError(f"{Path(root) / folder}/synthetic/instance_ids: frame {frame} is {ids.shape[1]}x"
                           f"{ids.shape[0]}, ground truth {shape[1]}x{shape[0]}")
    return ids


def moving_actor_mask(root: str | os.PathLike[str], folder: str, frame: int, side: str = "l",
                      _cache: dict[Path, frozenset[int]] | None = None,
                      shape: tuple[int, int] | None = None) -> np.ndarray:
    """Synthetic world: HxW bool, True where the pixel shows an actor whose ``moving`` flag is set
    (:func:`read_instance_ids`, :func:`read_objects`; ``shape`` as there). ``_cache`` (optional) keeps the moving
    ids per drive."""
    drive = Path(root) / folder
    moving = _cache.get(drive) if _cache is not None else None
    if moving is None:
        moving = frozenset(o["id"] for o in read_objects(drive)["objects"] if o.get("moving"))
        if _cache is not None:
            _cache[drive] = moving
    ids = read_instance_ids(root, folder, frame, side, shape)
    return np.isin(ids, np.fromiter(moving, np.int64, len(moving)))


class KittiEvalDataset(Dataset):
    """KITTI raw evaluation samples: the listed frame at network size plus its ground truth.

    Sample: ``("color", 0)`` float32 [3,height,width] in [0,1]; ``"depth_gt"`` float32 [1,H,W] metres (0 = none);
    ``"folder"``, ``"frame"``, ``"side"``, ``"name"`` (``"folder frame side"``); with ``region=True`` also
    ``"moving_mask"`` bool [1,H,W] (:func:`moving_actor_mask`). ``gt``: one of :data:`GT_SOURCES` — ``"velodyne"``
    is the reference's Eigen ground truth (raw scans projected with camera-z depth), ``"png"`` the annotated
    depth-completion maps (or the synthetic world's exact depth); ``gt_file`` is the npz for ``"npz"``;
    ``depth_root`` the PNG root (default ``root``); ``vel_depth`` velodyne x instead of camera z.

    Every file a frame needs (image; depth PNG, or velodyne scan and the date's two calibration files) is checked at
    construction: ``missing="error"`` raises DatasetError naming the first missing one; ``missing="skip"`` leaves the
    frame out and records ``(name, what is missing)`` in ``self.skipped`` (an npz keeps its map ↔ split-line pairing).
    """

    def __init__(self, root: str | os.PathLike[str], split_file: str | os.PathLike[str] | list[SplitEntry], *,
                 height: int = 192, width: int = 640, gt: str = "png", gt_file: str | os.PathLike[str] | None = None,
                 depth_root: str | os.PathLike[str] | None = None, vel_depth: bool = False,
                 intrinsics: str = "default", region: bool = False, missing: str = "error") -> None:
        if gt not in GT_SOURCES:
            raise ValueError(f"gt must be one of {GT_SOURCES}, got {gt!r}")
        if missing not in ("error", "skip"):
            raise ValueError(f"missing must be 'error' or 'skip', got {missing!r}")
        listed = read_split_file(split_file) if isinstance(split_file, (str, os.PathLike)) else list(split_file)
        self.images = KittiRawDepthDataset(root, listed, frame_offsets=(0,), height=height, width=width,
                                           intrinsics=intrinsics, load_depth=False, missing=missing)
        self.root = Path(root)
        self.depth_root = Path(depth_root) if depth_root is not None else self.root
        self.gt, self.vel_depth, self.region = gt, vel_depth, region
        self._moving_cache: dict[Path, frozenset[int]] = {}
        self.skipped: list[tuple[str, str]] = [(_name(e), f"{path} does not exist") for e, path in self.images.skipped]
        self.npz: NpzDepthGT | None = None
        if gt == "npz":
            if gt_file is None:
                raise ValueError("gt='npz' needs gt_file (the .npz path)")
            self.npz = NpzDepthGT(gt_file)
            if len(self.npz) != len(listed):
                raise DatasetError(f"{gt_file}: holds {len(self.npz)} depth maps but the split has "
                                   f"{len(listed)} frames")
        line_of = _subsequence_positions(listed, self.images.entries)
        # (index into self.images, split line) of every frame whose ground-truth files exist
        self._items: list[tuple[int, int]] = []
        for i, entry in enumerate(self.images.entries):
            absent = self._missing_gt(entry)
            if absent is None:
                self._items.append((i, line_of[i]))
            elif missing == "skip":
                self.skipped.append((_name(entry), absent))
            else:
                raise DatasetError(f"frame '{_name(entry)}' has no {self.gt} ground truth: {absent}"
                                   + _GT_HINTS.get(self.gt, "") + "; --missing skip leaves such frames out")

    def _missing_gt(self, e: SplitEntry) -> str | None:
        """What is missing of a frame's ground truth (the file, or every path tried), or None."""
        if self.gt == "png":
            try:
                depth_png_path(self.depth_root, e.folder, e.frame, e.side)
            except DatasetError as exc:
                return str(exc)
            return None
        if self.gt == "velodyne":
            date_dir = self.root / e.date
            for path in (velodyne_path(self.root, e.folder, e.frame), date_dir / "calib_cam_to_cam.txt",
                         date_dir / "calib_velo_to_cam.txt"):
                if not path.is_file():
                    return f"{path} does not exist"
        return None

    def __len__(self) -> int:
        return len(self._items)

    def depth_for(self, index: int) -> np.ndarray:
        """HxW float32 ground truth of sample ``index`` from the configured source."""
        i, line = self._items[index]
        e = self.images.entries[i]
        if self.gt == "png":
            return read_depth_png(depth_png_path(self.depth_root, e.folder, e.frame, e.side))
        if self.gt == "velodyne":
            return velodyne_depth_map(self.root, e.folder, e.frame, _CAMERA[e.side], self.vel_depth)
        return self.npz[line]

    def __getitem__(self, index: int) -> dict[str, Any]:
        i, _ = self._items[index]
        sample = self.images[i]
        e = self.images.entries[i]
        depth = self.depth_for(index)
        sample["depth_gt"] = torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32))[None]
        sample["name"] = _name(e)
        if self.region:
            mask = moving_actor_mask(self.root, e.folder, e.frame, e.side, self._moving_cache, depth.shape)
            sample["moving_mask"] = torch.from_numpy(mask)[None]
        return sample


_CAMERA = {"l": 2, "r": 3}
_GT_HINTS = {
    "velodyne": " (the default --gt velodyne needs KITTI raw's velodyne_points and calib_velo_to_cam.txt; use --gt "
                "png for depth PNGs, e.g. the synthetic world or the depth-completion annotations)",
    "png": " (--gt png reads the annotated depth-completion maps; the Eigen protocol's ground truth is --gt velodyne)",
}


def _name(e: SplitEntry) -> str:
    return f"{e.folder} {e.frame} {e.side}"


def _subsequence_positions(listed: list[SplitEntry], kept: list[SplitEntry]) -> list[int]:
    """For each of ``kept`` (``listed`` with some entries dropped, order kept) its position in ``listed``."""
    positions, j = [], 0
    for entry in kept:
        while listed[j] != entry:
            j += 1
        positions.append(j)
        j += 1
    return positions


def read_disparity_png(path: str | os.PathLike[str]) -> np.ndarray:
    """KITTI 2015 ``disp_*`` PNG (uint16 / 256) → HxW float32 disparity in pixels, 0 = invalid."""
    raw = read_single_channel(path)
    if raw.dtype != np.uint16:
        raise DatasetError(f"{path}: disparity PNG must be 16-bit (uint16), got {raw.dtype}")
    return raw.astype(np.float32) / 256.0


def kitti2015_focal(path: str | os.PathLike[str], camera: int = 2) -> float:
    """Focal length in pixels from a KITTI 2015 ``calib_cam_to_cam/NNNNNN.txt``: mean(fx, fy) of P_rect_0X."""
    calib = read_calib_file(path)
    key = f"P_rect_0{camera}"
    if key not in calib or calib[key].size != 12:
        raise DatasetError(f"{path}: no 12-value {key}")
    P = calib[key].reshape(3, 4)
    return float((P[0, 0] + P[1, 1]) / 2.0)


class Kitti2015DepthDataset(Dataset):
    """The 200 KITTI 2015 training images with depth from ``disp_occ_0`` (spec §5.1, §6.1).

    ``root`` is the ``kitti_2015`` folder (holding ``training/``) or its ``training`` folder itself. Uses
    ``image_2/NNNNNN_10.png``, ``disp_occ_0/NNNNNN_10.png`` and ``calib_cam_to_cam/NNNNNN.txt``; depth =
    0.54·f / disparity where disparity > 0, f = mean(fx, fy) of P_rect_02. Sample: ``("color", 0)`` [3,height,width]
    in [0,1], ``"depth_gt"`` [1,H,W] metres (0 = none), ``"name"``. Every file is checked at construction.
    """

    def __init__(self, root: str | os.PathLike[str], *, height: int = 192, width: int = 640,
                 transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        root = Path(root)
        self.dir = root / "training" if (root / "training").is_dir() else root
        self.height, self.width, self.transform = height, width, transform
        images = sorted((self.dir / "image_2").glob("*_10.png"))
        if not images:
            raise DatasetError(f"{self.dir / 'image_2'}: no '*_10.png' images (expected the KITTI 2015 "
                               f"'training' folder under {root})")
        self.items: list[tuple[Path, Path, Path]] = []
        for image in images:
            stem = image.name[: -len("_10.png")]
            disp = self.dir / "disp_occ_0" / image.name
            calib = self.dir / "calib_cam_to_cam" / f"{stem}.txt"
            if not disp.is_file():
                raise DatasetError(f"{disp}: missing disparity ground truth for {image}")
            if not calib.is_file():
                raise DatasetError(f"{calib}: missing KITTI 2015 calibration, needed for depth = 0.54·f/disparity; "
                                   f"unpack data_scene_flow_calib.zip into {self.dir.parent}")
            self.items.append((image, disp, calib))
        self._focal: dict[Path, float] = {}

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image, disp_path, calib = self.items[index]
        if calib not in self._focal:
            self._focal[calib] = kitti2015_focal(calib)
        disp = read_disparity_png(disp_path)
        valid = disp > 0
        depth = np.zeros_like(disp)
        depth[valid] = STEREO_BASELINE_M * self._focal[calib] / disp[valid]
        rgb = read_rgb(image)
        sample: dict[str, Any] = {("color", 0): rgb_to_tensor(resize_rgb(rgb, (self.width, self.height))),
                                  "depth_gt": torch.from_numpy(depth)[None], "name": image.name}
        if self.transform is not None:
            sample = self.transform(sample)
        return sample
