"""KITTI calibration text files (``calib_cam_to_cam.txt``, ``calib_velo_to_cam.txt``, odometry ``calib.txt``)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import DatasetError


def _to_float(token: str) -> float | None:
    try:
        return float(token)
    except ValueError:
        return None


def read_calib_file(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Parse a KITTI ``KEY: v v v ...`` calibration file.

    Returns: ``{key: 1-D float64 array}`` in file order (e.g. ``P_rect_02`` has 12 values, row-major 3x4).
    Entries whose values are all non-numeric (``calib_time: 09-Jan-2012 13:57:47``) are skipped; blank lines are ignored.
    Raises: DatasetError ``"<file>:<line>: ..."`` for a line without ``:``, an empty key, a duplicate key, or values that
    mix numbers and non-numbers; DatasetError naming the file when it does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: calibration file does not exist")
    calib: dict[str, np.ndarray] = {}
    with open(path, encoding="utf-8", errors="replace") as handle:
        for lineno, raw in enumerate(handle, start=1):
            line = raw.strip()
            if not line:
                continue
            key, sep, rest = line.partition(":")
            key = key.strip()
            if not sep or not key:
                raise DatasetError(f"{path}:{lineno}: expected 'KEY: values', got {line[:80]!r}")
            if key in calib:
                raise DatasetError(f"{path}:{lineno}: duplicate key {key!r}")
            tokens = rest.split()
            values = [_to_float(t) for t in tokens]
            numeric = [v for v in values if v is not None]
            if tokens and not numeric:
                continue  # a text entry such as calib_time
            if len(numeric) != len(tokens):
                bad = next(t for t, v in zip(tokens, values) if v is None)
                raise DatasetError(f"{path}:{lineno}: non-numeric value {bad!r} for key {key!r}")
            calib[key] = np.asarray(numeric, dtype=np.float64)
    return calib


def camera_intrinsics(calib: dict[str, np.ndarray], camera: int = 2) -> tuple[np.ndarray, tuple[int, int]]:
    """Rectified intrinsics of a KITTI camera from a parsed ``calib_cam_to_cam.txt``.

    Args:
        calib: output of :func:`read_calib_file`.
        camera: 0..3 (2 = left colour, 3 = right colour).
    Returns: ``(K, (width, height))`` — K is 3x3 float64 in pixels, the left 3x3 block of ``P_rect_0{camera}``
    (for cameras 1 and 3 the baseline term in P[:, 3] is dropped); the size is ``S_rect_0{camera}`` (rectified image).
    Raises: DatasetError when a key is missing or has the wrong number of values.
    """
    p_key, s_key = f"P_rect_0{camera}", f"S_rect_0{camera}"
    for key, count in ((p_key, 12), (s_key, 2)):
        if key not in calib:
            raise DatasetError(f"calibration has no {key} (keys: {', '.join(sorted(calib)) or 'none'})")
        if calib[key].size != count:
            raise DatasetError(f"calibration {key} has {calib[key].size} values, expected {count}")
    K = calib[p_key].reshape(3, 4)[:, :3].copy()
    width, height = (int(round(v)) for v in calib[s_key])
    return K, (width, height)
