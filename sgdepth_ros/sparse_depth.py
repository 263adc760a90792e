"""Projected points → sparse depth image: the one pixel-assignment and z-buffer (pure numpy).

Used by replay's LiDAR ground truth (:func:`sgdepth_ros.replay.lidar.project_to_depth`) and by the KITTI velodyne
ground truth of ``eval-depth`` (``training/evaluation/velodyne.py``). Two pixel roundings exist, by name:

* ``"ros"`` (ROS / OpenCV, what CameraInfo is defined for): pixel centres lie at integer coordinates, pixel
  (row i, column j) covers u ∈ [j − ½, j + ½), v ∈ [i − ½, i + ½); a point lands in column ⌊u + ½⌋, row ⌊v + ½⌋.
* ``"kitti_devkit"`` (KITTI devkit as ported by monodepth2's ``export_gt_depth.py``, which made the standard Eigen
  ground truth): column round(u) − 1, row round(v) − 1 with numpy rounding (half to even). Away from exact
  half-pixel ties this is the ``"ros"`` pixel minus one in both axes: the devkit map is the ROS map shifted one
  pixel up and left. It is kept only so that Eigen-protocol numbers stay comparable with published ones.
"""
from __future__ import annotations

import numpy as np

PIXEL_ROUNDINGS = ("ros", "kitti_devkit")


def pixel_indices(u: np.ndarray, v: np.ndarray, rounding: str = "ros") -> tuple[np.ndarray, np.ndarray]:
    """Float image coordinates [N] → (column, row) [N] float64 integers by the named rounding (see module doc)."""
    u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
    if rounding == "ros":
        return np.floor(u + 0.5), np.floor(v + 0.5)
    if rounding == "kitti_devkit":
        return np.round(u) - 1, np.round(v) - 1
    raise ValueError(f"unknown pixel rounding {rounding!r}; one of {', '.join(PIXEL_ROUNDINGS)}")


def splat_depth(u: np.ndarray, v: np.ndarray, depth: np.ndarray, width: int, height: int,
                rounding: str = "ros") -> np.ndarray:
    """Sparse depth image from projected points.

    Args:
        u, v: [N] float image coordinates in pixels (u right, v down), any finite values.
        depth: [N] the value each point writes (metres); when several points fall into one pixel the smallest wins
            (z-buffer).
        width, height: image size in pixels; points outside are dropped (compared as floats: no integer
            overflow for points far outside).
        rounding: ``"ros"`` or ``"kitti_devkit"`` (module docstring).
    Returns: [height, width] float32, 0 where no point landed.
    """
    col, row = pixel_indices(u, v, rounding)
    depth = np.asarray(depth, np.float64)
    inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
    out = np.zeros(height * width, np.float32)
    if not inside.any():
        return out.reshape(height, width)
    flat = row[inside].astype(np.int64) * width + col[inside].astype(np.int64)
    depth = depth[inside]
    order = np.lexsort((depth, flat))  # by pixel, then nearest first
    flat, depth = flat[order], depth[order]
    first = np.ones(flat.shape, bool)
    first[1:] = flat[1:] != flat[:-1]
    out[flat[first]] = depth[first]
    return out.reshape(height, width)
