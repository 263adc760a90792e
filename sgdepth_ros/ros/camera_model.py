"""Pinhole intrinsics from CameraInfo fields: validation, rescaling, back-projection (ROS-free).

Conventions: K and P are the row-major 3×3 / 3×4 arrays of sensor_msgs/CameraInfo, in pixels;
scaling an image from (w0, h0) to (w1, h1) maps pixel centres, so fx, cx scale by w1/w0 and
fy, cy by h1/h0 (the ROS/OpenCV convention with the origin at the first pixel's centre,
ignoring the sub-pixel half-pixel shift, as image_proc's resize does).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .image_codec import InputError


@dataclass(frozen=True)
class CameraGeometry:
    """The parts of a CameraInfo that the node uses. width/height in pixels, k: 9, p: 12 floats."""

    width: int
    height: int
    k: tuple[float, ...]
    p: tuple[float, ...]

    @property
    def fx(self) -> float:
        return self.k[0]

    @property
    def fy(self) -> float:
        return self.k[4]

    @property
    def cx(self) -> float:
        return self.k[2]

    @property
    def cy(self) -> float:
        return self.k[5]


def check_geometry(width: int, height: int, k, p) -> CameraGeometry:
    """Validate CameraInfo fields; raises InputError('bad_intrinsics') for NaN/zero/negative focal lengths.

    An all-zero P (drivers that leave it unset) is replaced by [K | 0].
    """
    k = np.asarray(k, np.float64).reshape(-1)
    p = np.asarray(p, np.float64).reshape(-1)
    if k.size != 9 or p.size != 12:
        raise InputError("bad_intrinsics", f"K has {k.size} values (need 9), P has {p.size} (need 12)")
    if width <= 0 or height <= 0:
        raise InputError("bad_intrinsics", f"CameraInfo size {width}x{height} is empty")
    if not np.all(np.isfinite(k)) or not np.all(np.isfinite(p)):
        raise InputError("bad_intrinsics", "CameraInfo K or P contains NaN or inf")
    if k[0] <= 0 or k[4] <= 0:
        raise InputError("bad_intrinsics", f"CameraInfo focal lengths fx={k[0]:g}, fy={k[4]:g} must be positive")
    if not p.any():
        p = np.concatenate([k.reshape(3, 3), np.zeros((3, 1))], axis=1).reshape(-1)
    return CameraGeometry(int(width), int(height), tuple(float(v) for v in k), tuple(float(v) for v in p))


def scale_geometry(geometry: CameraGeometry, width: int, height: int) -> CameraGeometry:
    """The same camera seen at another image size (fx, cx, P's first row × sx; fy, cy, second row × sy)."""
    sx = width / geometry.width
    sy = height / geometry.height
    k = np.array(geometry.k).reshape(3, 3)
    p = np.array(geometry.p).reshape(3, 4)
    k[0] *= sx
    k[1] *= sy
    p[0] *= sx
    p[1] *= sy
    return CameraGeometry(width, height, tuple(k.reshape(-1)), tuple(p.reshape(-1)))


def backproject(depth: np.ndarray, geometry: CameraGeometry, decimation: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Depth along the optical axis (HxW, metres or model units) → camera-frame points.

    ``geometry`` must describe an image of depth's size. Returns (points [M,3] float32 in the
    optical frame: x right, y down, z forward; index [M] of the flat pixel each point came from),
    keeping every ``decimation``-th row and column and only finite, positive depths.
    """
    if depth.shape != (geometry.height, geometry.width):
        raise ValueError(f"depth {depth.shape} and camera {geometry.height}x{geometry.width} differ in size")
    rows = np.arange(0, depth.shape[0], decimation)
    cols = np.arange(0, depth.shape[1], decimation)
    z = depth[np.ix_(rows, cols)]
    valid = np.isfinite(z) & (z > 0)
    v, u = np.nonzero(valid)
    z = z[valid].astype(np.float32)
    u_px = cols[u].astype(np.float32)
    v_px = rows[v].astype(np.float32)
    x = (u_px - geometry.cx) / geometry.fx * z
    y = (v_px - geometry.cy) / geometry.fy * z
    index = rows[v] * depth.shape[1] + cols[u]
    return np.stack([x, y, z], axis=1), index
