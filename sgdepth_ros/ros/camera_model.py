"""Pinhole intrinsics from CameraInfo fields: validation, rescaling, back-projection (ROS-free).

Conventions: K and P are the row-major 3×3 / 3×4 arrays of sensor_msgs/CameraInfo, in pixels.
Inputs are expected **rectified**: the camera matrix used for geometry is ``P[:3, :3]`` (what
image_geometry's ``fx()``/``cx()`` return and depth_image_proc projects with), K only when P is
all zero (drivers that leave it unset). K describes the *unrectified* camera and differs from P for
a rectified image (a kitti2bag-style CameraInfo: K unrectified, P rectified, ~33 % apart in focal
length). Distortion (D) is never applied; :func:`has_distortion` lets callers warn about it.
P's fourth column (a stereo baseline term Tx, Ty) is not applied: depth and points are in the
camera's own optical frame, as depth_image_proc does.

Scaling an image from (w0, h0) to (w1, h1) maps pixel centres, so fx, cx scale by w1/w0 and
fy, cy by h1/h0 (the ROS/OpenCV convention with the origin at the first pixel's centre,
ignoring the sub-pixel half-pixel shift, as image_proc's resize does).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..pinhole import backproject_pixels, rescale_matrix
from .image_codec import InputError

# Accepted focal lengths relative to the image's larger side: 0.01 (≈178° field of view) … 1000 (≈0.06°).
FOCAL_RANGE = (0.01, 1000.0)
# The principal point may lie outside the image (crops) but within one image size of it on every side.
PRINCIPAL_POINT_MARGIN = 1.0
# Ray grids kept (one per camera geometry and decimation): a 16-camera rig at one decimation stays cached.
RAY_CACHE_SIZE = 16


@dataclass(frozen=True)
class CameraGeometry:
    """The parts of a CameraInfo that the node uses. width/height in pixels, k: 9, p: 12 floats (row-major).

    fx, fy, cx, cy, skew come from P (the rectified camera; P = [K | 0] when the message left P unset).
    """

    width: int
    height: int
    k: tuple[float, ...]
    p: tuple[float, ...]

    @property
    def fx(self) -> float:
        return self.p[0]

    @property
    def fy(self) -> float:
        return self.p[5]

    @property
    def cx(self) -> float:
        return self.p[2]

    @property
    def cy(self) -> float:
        return self.p[6]

    @property
    def skew(self) -> float:
        return self.p[1]

    @property
    def matrix(self) -> np.ndarray:
        """3x3 float64 camera matrix of the rectified image: P[:3, :3]."""
        return np.asarray(self.p, np.float64).reshape(3, 4)[:, :3].copy()


def has_distortion(d) -> bool:
    """True when a CameraInfo's D holds a non-zero (or non-finite) coefficient: the image it describes is
    distorted unless the user feeds its rectified version (sgdepth never undistorts)."""
    d = np.asarray(d, np.float64).reshape(-1)
    return bool(d.size and not np.all(d == 0))


def _check_matrix(name: str, m: np.ndarray, width: int, height: int) -> None:
    """Raise InputError('bad_intrinsics') unless ``m`` (3x3) is a plausible pinhole matrix for the image size."""
    fx, skew, cx, zero, fy, cy = m[0, 0], m[0, 1], m[0, 2], m[1, 0], m[1, 1], m[1, 2]
    side = max(width, height)
    lo, hi = FOCAL_RANGE[0] * side, FOCAL_RANGE[1] * side
    if not (lo <= fx <= hi and lo <= fy <= hi):
        raise InputError("bad_intrinsics", f"CameraInfo {name} focal lengths fx={fx:g}, fy={fy:g} must lie within "
                                           f"[{lo:g}, {hi:g}] pixels for a {width}x{height} image")
    if zero != 0 or np.abs(m[2] - (0.0, 0.0, 1.0)).max() > 1e-9:
        raise InputError("bad_intrinsics", f"CameraInfo {name} is not a pinhole matrix [[fx, s, cx], [0, fy, cy], "
                                           f"[0, 0, 1]]: {m.tolist()}")
    if abs(skew) > fx:
        raise InputError("bad_intrinsics", f"CameraInfo {name} skew {skew:g} exceeds fx={fx:g}")
    margin_x, margin_y = PRINCIPAL_POINT_MARGIN * width, PRINCIPAL_POINT_MARGIN * height
    if not (-margin_x <= cx <= width + margin_x and -margin_y <= cy <= height + margin_y):
        raise InputError("bad_intrinsics", f"CameraInfo {name} principal point ({cx:g}, {cy:g}) lies more than one "
                                           f"image size outside the {width}x{height} image")


def check_geometry(width: int, height: int, k, p) -> CameraGeometry:
    """Validate CameraInfo fields; raises InputError('bad_intrinsics') naming what is wrong.

    Rejected: a wrong number of values, an empty size, NaN/inf anywhere in K or P, and a K or P[:3, :3]
    that is not a pinhole matrix with fx, fy within :data:`FOCAL_RANGE` × the image's larger side, |skew| ≤ fx
    and the principal point within :data:`PRINCIPAL_POINT_MARGIN` image sizes of the image. These bounds keep
    back-projected points finite and within ~10⁵ × their depth. An all-zero P (drivers that leave it unset) is
    replaced by [K | 0].
    """
    k = np.asarray(k, np.float64).reshape(-1)
    p = np.asarray(p, np.float64).reshape(-1)
    if k.size != 9 or p.size != 12:
        raise InputError("bad_intrinsics", f"K has {k.size} values (need 9), P has {p.size} (need 12)")
    if width <= 0 or height <= 0:
        raise InputError("bad_intrinsics", f"CameraInfo size {width}x{height} is empty")
    if not np.all(np.isfinite(k)) or not np.all(np.isfinite(p)):
        raise InputError("bad_intrinsics", "CameraInfo K or P contains NaN or inf")
    _check_matrix("K", k.reshape(3, 3), width, height)
    if not p.any():
        p = np.concatenate([k.reshape(3, 3), np.zeros((3, 1))], axis=1).reshape(-1)
    else:
        _check_matrix("P", p.reshape(3, 4)[:, :3], width, height)
    return CameraGeometry(int(width), int(height), tuple(float(v) for v in k), tuple(float(v) for v in p))


def scale_geometry(geometry: CameraGeometry, width: int, height: int) -> CameraGeometry:
    """The same camera seen at another image size (K's and P's first row × sx, second row × sy)."""
    sizes = (geometry.width, geometry.height), (width, height)
    k = rescale_matrix(np.reshape(geometry.k, (3, 3)), *sizes)
    p = rescale_matrix(np.reshape(geometry.p, (3, 4)), *sizes)
    return CameraGeometry(width, height, tuple(k.reshape(-1)), tuple(p.reshape(-1)))


@lru_cache(maxsize=RAY_CACHE_SIZE)
def pixel_rays(geometry: CameraGeometry, decimation: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The viewing ray (x/z, y/z) of every ``decimation``-th row and column's pixel, from P[:3, :3]: two read-only
    float32 arrays that broadcast to [⌈H/decimation⌉, ⌈W/decimation⌉].

    Without skew (every rectified camera) x/z depends on the column only and y/z on the row only: shapes [1, w] and
    [h, 1], a few kilobytes; with skew both are full [h, w] grids. Computed once per (geometry, decimation) with
    :func:`sgdepth_ros.pinhole.backproject_pixels` at depth 1 (the same float32 values it gives each pixel) and
    cached (the :data:`RAY_CACHE_SIZE` most recent; a geometry is a value, so another CameraInfo — other intrinsics
    or size — is another key). A point at depth z is then (x/z · z, y/z · z, z): the same float32 products that
    back-projecting each pixel computes.
    """
    if int(decimation) != decimation or decimation < 1:
        raise ValueError(f"decimation must be a positive integer, got {decimation!r}")
    rows = np.arange(0, geometry.height, decimation)
    cols = np.arange(0, geometry.width, decimation)
    if geometry.skew == 0:  # x/z = (u − cx − 0·y/z)/fx = (u − cx)/fx on any row; y/z = (v − cy)/fy on any column
        across = backproject_pixels(cols, np.zeros_like(cols), np.ones(cols.size, np.float32), geometry.matrix)
        down = backproject_pixels(np.zeros_like(rows), rows, np.ones(rows.size, np.float32), geometry.matrix)
        x, y = across[:, 0].reshape(1, -1).copy(), down[:, 1].reshape(-1, 1).copy()
    else:
        v, u = np.meshgrid(rows, cols, indexing="ij")
        rays = backproject_pixels(u.reshape(-1), v.reshape(-1), np.ones(u.size, np.float32), geometry.matrix)
        x, y = (np.ascontiguousarray(rays[:, axis].reshape(u.shape)) for axis in (0, 1))
    x.flags.writeable = y.flags.writeable = False
    return x, y


@dataclass(frozen=True)
class PointGrid:
    """Back-projected points on the decimated pixel grid (see :func:`backproject_grid`): x, y, z [h, w] float32 in
    the optical frame; keep [h, w] bool: finite, positive depth and finite coordinates; all_kept: keep.all()."""

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    keep: np.ndarray
    all_kept: bool

    @property
    def count(self) -> int:
        """The number of kept points."""
        return self.keep.size if self.all_kept else int(np.count_nonzero(self.keep))


def backproject_grid(depth: np.ndarray, geometry: CameraGeometry, decimation: int = 1,
                     valid: np.ndarray | None = None) -> PointGrid:
    """Depth along the optical axis (HxW) → the points of every ``decimation``-th row and column, as grids.

    ``geometry`` must describe an image of depth's size; its rays come from :func:`pixel_rays` (cached).
    ``valid``: the caller's ``isfinite(depth) & (depth > 0)`` (HxW bool) when it has one. A pixel is kept when its
    depth is finite and positive and its coordinates are finite (no float32 overflow), so the kept points make a
    dense cloud. Grids are views or new arrays; ``depth`` is never written.
    """
    if depth.shape != (geometry.height, geometry.width):
        raise ValueError(f"depth {depth.shape} and camera {geometry.height}x{geometry.width} differ in size")
    x_ray, y_ray = pixel_rays(geometry, decimation)
    sampled = depth[::decimation, ::decimation]
    keep = (np.isfinite(sampled) & (sampled > 0)) if valid is None else valid[::decimation, ::decimation].copy()
    with np.errstate(over="ignore", invalid="ignore"):
        z = sampled.astype(np.float32, copy=False)  # a view for float32 depth
        x = x_ray * z
        y = y_ray * z
    finite = np.isfinite(x)
    finite &= np.isfinite(y)
    if z is not sampled:  # narrowed to float32: a depth beyond its range became inf
        finite &= np.isfinite(z)
    keep &= finite
    return PointGrid(x, y, z, keep, bool(keep.all()))


def backproject(depth: np.ndarray, geometry: CameraGeometry, decimation: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Depth along the optical axis (HxW, metres or model units) → camera-frame points, with P[:3, :3].

    ``geometry`` must describe an image of depth's size. Returns (points [M,3] float32 in the
    optical frame: x right, y down, z forward; index [M] of the flat pixel each point came from),
    keeping every ``decimation``-th row and column and only finite, positive depths, in row-major order. Every
    returned coordinate is finite (a point that would overflow float32 is dropped), so a cloud of them is dense.
    The node packs its cloud from :func:`backproject_grid` directly; this is the same computation as a list.
    """
    grid = backproject_grid(depth, geometry, decimation)
    rows = np.arange(0, depth.shape[0], decimation)
    cols = np.arange(0, depth.shape[1], decimation)
    index = (rows[:, None] * depth.shape[1] + cols[None, :])[grid.keep]
    points = np.stack([grid.x[grid.keep], grid.y[grid.keep], grid.z[grid.keep]], axis=1)
    return points, index
