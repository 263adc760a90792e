"""Pinhole camera conventions shared by the runtime (ROS-free): rescaling a camera matrix to another image size and
back-projecting pixels with depth. The node's CameraInfo handling (``ros/camera_model.py``) and the ground-plane
scale (``ground_plane.py``) both use these, so there is one implementation of each.

Pixels: (u, v) = (column, row), the first pixel's centre at (0, 0) (ROS/OpenCV). Optical frame: x right, y down,
z forward (REP 103).
"""
from __future__ import annotations

import numpy as np


def rescale_matrix(matrix: np.ndarray, from_size: tuple[int, int], to_size: tuple[int, int]) -> np.ndarray:
    """A 3×3 K or 3×4 P of an image of ``from_size`` = (width, height) → the same camera at ``to_size``: the first
    row × (w1/w0), the second × (h1/h0) (image_proc's resize convention; the half-pixel shift is ignored).
    Returns a new float64 array."""
    out = np.array(matrix, np.float64)
    out[0] *= to_size[0] / from_size[0]
    out[1] *= to_size[1] / from_size[1]
    return out


def backproject_pixels(u: np.ndarray, v: np.ndarray, z: np.ndarray, matrix: np.ndarray,
                       dtype=np.float32) -> np.ndarray:
    """Pixels (u, v) [M] with depth along the optical axis z [M] → points [M,3] in the optical frame.

    matrix: 3×3 (K, or P[:3, :3] of a rectified camera) — fx, fy, cx, cy and the skew K[0,1] are used.
    Computed in ``dtype``; a coordinate that overflows it comes out inf (callers drop non-finite points)."""
    fx, skew, cx = (dtype(matrix[0][i]) for i in range(3))
    fy, cy = dtype(matrix[1][1]), dtype(matrix[1][2])
    u, v, z = (np.asarray(a, dtype) for a in (u, v, z))
    with np.errstate(over="ignore", invalid="ignore"):
        y_n = (v - cy) / fy
        x_n = (u - cx - skew * y_n) / fx
        return np.stack([x_n * z, y_n * z, z], axis=1)
