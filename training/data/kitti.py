"""KITTI raw readers: file layout, RGB/depth/pose files, and the monocular depth-training dataset (spec §4.2, §5).

Layout (monodepth2 / KITTI raw, synced + rectified)::

    <root>/<date>/calib_cam_to_cam.txt
    <root>/<date>/<date>_drive_XXXX_sync/image_02/data/0000000042.png   (side "l"; "r" → image_03)
    <root>/<date>/<date>_drive_XXXX_sync/proj_depth/groundtruth/image_02/0000000042.png   (optional depth)
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from sgdepth_ros.preprocess import resize_rgb

from ._imaging import read_rgb, read_single_channel, rgb_to_tensor
from .errors import DatasetError
from .kitti_calib import camera_intrinsics, read_calib_file
from .splits import SplitEntry, read_split_file

__all__ = [
    "KITTI_DEFAULT_K_NORMALISED", "KittiRawDepthDataset", "depth_png_path", "image_path", "read_depth_png",
    "read_poses", "read_rgb", "write_poses",
]

#: SGDepth/monodepth2 normalised intrinsics (row 0 ÷ image width, row 1 ÷ image height), spec §4.2.
KITTI_DEFAULT_K_NORMALISED = np.array([[0.58, 0.0, 0.5], [0.0, 1.92, 0.5], [0.0, 0.0, 1.0]], dtype=np.float64)

SIDE_TO_CAMERA = {"l": 2, "r": 3}
DEPTH_SCALE = 256.0  # uint16 PNG value / 256 = metres (KITTI depth-completion convention)


def _camera(side: str) -> int:
    try:
        return SIDE_TO_CAMERA[side]
    except KeyError:
        raise ValueError(f"side must be 'l' or 'r', got {side!r}") from None


def image_path(root: str | os.PathLike[str], folder: str, frame: int, side: str, ext: str) -> Path:
    """``<root>/<folder>/image_0{2|3}/data/<frame:010d>.<ext>`` (``ext`` with or without the dot)."""
    return Path(root) / folder / f"image_0{_camera(side)}" / "data" / f"{frame:010d}.{ext.lstrip('.')}"


def depth_png_path(depth_root: str | os.PathLike[str], folder: str, frame: int, side: str) -> Path:
    """Find the ground-truth depth PNG of a frame.

    Tries, in order:
      1. ``<depth_root>/<folder>/proj_depth/groundtruth/image_0X/<frame:010d>.png`` (raw-tree layout: our synthetic
         exporter, or depth-completion annotations copied into the raw tree);
      2. ``<depth_root>/{train,val}/<drive>/proj_depth/groundtruth/image_0X/<frame:010d>.png`` (official
         depth-completion download; ``<drive>`` is the last component of ``folder``).
    Raises: DatasetError listing every path tried when none exists.
    """
    tail = Path("proj_depth") / "groundtruth" / f"image_0{_camera(side)}" / f"{frame:010d}.png"
    drive = folder.replace("\\", "/").rstrip("/").split("/")[-1]
    root = Path(depth_root)
    tried = [root / folder / tail, root / "train" / drive / tail, root / "val" / drive / tail]
    for candidate in tried:
        if candidate.is_file():
            return candidate
    raise DatasetError("no depth PNG found; tried: " + ", ".join(str(p) for p in tried))


def read_depth_png(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a KITTI-style depth PNG.

    Returns: HxW float32 depth in metres (uint16 value / 256); 0 marks pixels without ground truth.
    Raises: DatasetError naming the file when it is missing, undecodable, or not a single-channel uint16 PNG.
    """
    raw = read_single_channel(path)
    if raw.dtype != np.uint16:
        raise DatasetError(f"{path}: depth PNG must be 16-bit (uint16), got {raw.dtype}")
    return raw.astype(np.float32) / DEPTH_SCALE


def read_poses(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a KITTI odometry ``poses.txt``: per line the 12 row-major values of a 3x4 matrix.

    Returns: [N,4,4] float64 camera-to-world poses of the rectified left camera (last row 0 0 0 1).
    Raises: DatasetError ``"<file>:<line>: ..."`` for a line without exactly 12 numbers; naming the file if missing.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: poses file does not exist")
    poses = []
    with open(path, encoding="utf-8") as handle:
        for lineno, raw in enumerate(handle, start=1):
            tokens = raw.split()
            if not tokens:
                continue
            try:
                values = [float(t) for t in tokens]
            except ValueError:
                raise DatasetError(f"{path}:{lineno}: non-numeric value in pose line") from None
            if len(values) != 12:
                raise DatasetError(f"{path}:{lineno}: expected 12 numbers, got {len(values)}")
            pose = np.eye(4)
            pose[:3, :] = np.asarray(values).reshape(3, 4)
            poses.append(pose)
    return np.stack(poses) if poses else np.zeros((0, 4, 4))


def write_poses(path: str | os.PathLike[str], poses: np.ndarray) -> None:
    """Write [N,4,4] (or [N,3,4]) poses in KITTI odometry format, 12 values per line (``%.9e``, lossless enough)."""
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[1:] not in ((4, 4), (3, 4)):
        raise ValueError(f"poses must be [N,4,4] or [N,3,4], got {poses.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for pose in poses:
            handle.write(" ".join(f"{v:.9e}" for v in pose[:3, :].reshape(-1)) + "\n")


def _as_4x4(K: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = K
    return out


class KittiRawDepthDataset(Dataset):
    """Monocular KITTI raw samples: the listed frame plus its temporal neighbours, resized, with intrinsics.

    Each sample is a dict:
      - ``("color", o)`` for every ``o`` in ``frame_offsets``: float32 [3,height,width] RGB in [0,1], resized with
        PIL bilinear (antialiased when shrinking) from the native image;
      - ``"K"``, ``"inv_K"``: float32 [4,4] pixel intrinsics at the output resolution;
      - ``"folder"`` (str), ``"frame"`` (int), ``"side"`` ("l"/"r");
      - ``"depth_gt"``: float32 [1,H0,W0] metres at native resolution, 0 = invalid — only when ``load_depth`` and a
        depth PNG exists for the frame (see :func:`depth_png_path`).
    Then ``transform(sample)`` is applied if given (its return value is the sample).

    Intrinsics: ``"calib"`` reads ``<root>/<date>/calib_cam_to_cam.txt`` (cached per date), takes P_rect_02/03 and
    scales row 0 by width/native_w and row 1 by height/native_h (native size = S_rect, checked against the image at
    load time); ``"default"`` is ``KITTI_DEFAULT_K_NORMALISED`` × (width, height), independent of the image size.
    Plain scaling (fx·s, cx·s) as SGDepth/monodepth2, no half-pixel correction.

    ``height=width=None`` keeps the native resolution. ``image_ext=None`` detects png, else jpg, per (drive, camera).
    At construction every image (and, in calib mode, every calibration file) a sample needs is checked:
    ``missing="error"`` raises DatasetError naming the first missing file; ``missing="skip"`` drops the entry and
    records ``(entry, missing_path)`` in ``self.skipped``. A frame before the start of a drive counts as a missing file.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split_file: str | os.PathLike[str] | Sequence[SplitEntry],
        frame_offsets: Sequence[int] = (0, -1, 1),
        height: int | None = 192,
        width: int | None = 640,
        intrinsics: str = "calib",
        image_ext: str | None = None,
        missing: str = "error",
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        depth_root: str | os.PathLike[str] | None = None,
        load_depth: bool = True,
    ) -> None:
        if intrinsics not in ("calib", "default"):
            raise ValueError(f"intrinsics must be 'calib' or 'default', got {intrinsics!r}")
        if missing not in ("error", "skip"):
            raise ValueError(f"missing must be 'error' or 'skip', got {missing!r}")
        if (height is None) != (width is None):
            raise ValueError("give both height and width, or neither (native resolution)")
        if height is None and intrinsics == "default":
            raise ValueError("intrinsics='default' needs an output height and width")
        if not frame_offsets:
            raise ValueError("frame_offsets must not be empty")
        self.root = Path(root)
        self.depth_root = Path(depth_root) if depth_root is not None else self.root
        self.frame_offsets = tuple(int(o) for o in frame_offsets)
        self.height, self.width = height, width
        self.intrinsics = intrinsics
        self.transform = transform
        self.load_depth = load_depth
        self.skipped: list[tuple[SplitEntry, Path]] = []
        self._fixed_ext = image_ext.lstrip(".") if image_ext else None
        self._ext: dict[tuple[str, str], str] = {}
        self._calib: dict[str, tuple[np.ndarray, np.ndarray, tuple[int, int], tuple[int, int]]] = {}
        self._calib_path: dict[str, Path] = {}

        entries = read_split_file(split_file) if isinstance(split_file, (str, os.PathLike)) else list(split_file)
        self.entries: list[SplitEntry] = []
        self._depth_paths: list[Path | None] = []
        for entry in entries:
            absent = self._first_missing(entry)
            if absent is not None:
                if missing == "error":
                    raise DatasetError(f"{absent}: missing file needed by split entry "
                                       f"'{entry.folder} {entry.frame} {entry.side}'")
                self.skipped.append((entry, absent))
                continue
            self.entries.append(entry)
            self._depth_paths.append(self._find_depth(entry))

    # -- construction helpers -------------------------------------------------------------------------------------
    def _ext_for(self, entry: SplitEntry) -> str:
        if self._fixed_ext:
            return self._fixed_ext
        key = (entry.folder, entry.side)
        if key not in self._ext:
            folder = image_path(self.root, entry.folder, 0, entry.side, "png").parent
            ext = "png"
            if not image_path(self.root, entry.folder, entry.frame, entry.side, "png").is_file():
                if image_path(self.root, entry.folder, entry.frame, entry.side, "jpg").is_file():
                    ext = "jpg"
                elif folder.is_dir() and not any(folder.glob("*.png")) and any(folder.glob("*.jpg")):
                    ext = "jpg"
            self._ext[key] = ext
        return self._ext[key]

    def _first_missing(self, entry: SplitEntry) -> Path | None:
        if self.intrinsics == "calib":
            calib_path = self.root / entry.date / "calib_cam_to_cam.txt"
            if not calib_path.is_file():
                return calib_path
            self._load_calib(entry.date, calib_path)
        ext = self._ext_for(entry)
        for offset in self.frame_offsets:
            path = image_path(self.root, entry.folder, entry.frame + offset, entry.side, ext)
            if not path.is_file():
                return path
        return None

    def _load_calib(self, date: str, path: Path) -> None:
        if date in self._calib:
            return
        calib = read_calib_file(path)
        per_side = []
        for camera in (2, 3):
            try:
                per_side.append(camera_intrinsics(calib, camera))
            except DatasetError as err:
                raise DatasetError(f"{path}: {err}") from None
        (k_l, size_l), (k_r, size_r) = per_side
        self._calib[date] = (k_l, k_r, size_l, size_r)
        self._calib_path[date] = path

    def _find_depth(self, entry: SplitEntry) -> Path | None:
        if not self.load_depth:
            return None
        try:
            return depth_png_path(self.depth_root, entry.folder, entry.frame, entry.side)
        except DatasetError:
            return None

    def drop_entries_without_depth(self) -> int:
        """Keep only the entries that have a depth ground-truth file (for validation); returns how many were dropped."""
        keep = [i for i, p in enumerate(self._depth_paths) if p is not None]
        dropped = len(self.entries) - len(keep)
        self.entries = [self.entries[i] for i in keep]
        self._depth_paths = [self._depth_paths[i] for i in keep]
        return dropped

    # -- sample assembly ------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.entries)

    def intrinsics_for(self, entry: SplitEntry, native_size: tuple[int, int]) -> np.ndarray:
        """4x4 float64 K at the output resolution for ``entry`` whose images are ``native_size`` = (width, height)."""
        out_w, out_h = (self.width, self.height) if self.width is not None else native_size
        if self.intrinsics == "default":
            K = KITTI_DEFAULT_K_NORMALISED.copy()
            K[0] *= out_w
            K[1] *= out_h
            return _as_4x4(K)
        k_l, k_r, size_l, size_r = self._calib[entry.date]
        K, (cal_w, cal_h) = (k_l, size_l) if entry.side == "l" else (k_r, size_r)
        if (cal_w, cal_h) != tuple(native_size):
            raise DatasetError(
                f"{self._calib_path[entry.date]}: S_rect_0{_camera(entry.side)} is {cal_w}x{cal_h} but images of "
                f"{self.root / entry.folder} are {native_size[0]}x{native_size[1]}")
        K = K.copy()
        K[0] *= out_w / cal_w
        K[1] *= out_h / cal_h
        return _as_4x4(K)

    def __getitem__(self, index: int) -> dict[str, Any]:
        entry = self.entries[index]
        ext = self._ext_for(entry)
        sample: dict[str, Any] = {"folder": entry.folder, "frame": entry.frame, "side": entry.side}
        native_size: tuple[int, int] | None = None
        for offset in self.frame_offsets:
            path = image_path(self.root, entry.folder, entry.frame + offset, entry.side, ext)
            rgb = read_rgb(path)
            size = (rgb.shape[1], rgb.shape[0])
            if native_size is None:
                native_size = size
            elif size != native_size:
                raise DatasetError(f"{path}: size {size[0]}x{size[1]} differs from the other frames' "
                                   f"{native_size[0]}x{native_size[1]}")
            if self.width is not None:
                rgb = resize_rgb(rgb, (self.width, self.height))
            sample[("color", offset)] = rgb_to_tensor(rgb)
        K = self.intrinsics_for(entry, native_size)
        sample["K"] = torch.from_numpy(K).float()
        sample["inv_K"] = torch.from_numpy(np.linalg.inv(K)).float()
        depth_path = self._depth_paths[index]
        if depth_path is not None:
            sample["depth_gt"] = torch.from_numpy(read_depth_png(depth_path))[None]
        if self.transform is not None:
            sample = self.transform(sample)
        return sample
