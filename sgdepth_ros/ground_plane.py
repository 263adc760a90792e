"""Metric scale from the camera's height above the road (ROS-free, numpy only).

Self-supervised monocular depth is known only up to scale, but a vehicle knows one length exactly: how high its
camera sits above the road. SGDepth segments the road (trainId 0) in the same forward pass as the depth, so each frame
gives a set of road points in model units; a plane fitted to them is at some distance ``h_model`` from the camera's
optical centre, and ``scale = camera_height_m / h_model`` metres per model unit.

The idea (scale from the camera height over a ground plane found in the prediction) is the one of DNet (Xue et al.,
IROS 2020, "dense geometrical constraint": per-pixel ground points and a median camera height) and of Wagstaff &
Kelly (2021, ground-plane camera-height scale recovery); here the ground points come from the network's own road
labels, and the plane is fitted robustly (RANSAC, then least squares on the inliers), so kerbs, wrong labels and cars
that reach into the road region do not move it.

Conventions: camera optical frame (x right, y down, z forward, REP 103), pixels (u, v) with the intrinsics of the
depth image's own resolution (3×3, e.g. ``P[:3, :3]`` of a rectified camera rescaled to the output size).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .pinhole import backproject_pixels

ROAD_TRAIN_ID = 0


@dataclass(frozen=True)
class GroundPlaneConfig:
    """Tuning of the per-frame estimate (defaults fit a forward-looking vehicle camera).

    min_row_fraction: only rows below this fraction of the image height are used (the road near the car; the far
        road is thin and noisy). 0.5 keeps the lower half.
    max_points: road pixels are subsampled on a regular grid to at most this many (cost is linear in it).
    erode_px: the road mask is eroded by this many pixels so that label borders (kerbs, car outlines) are dropped.
    min_points: fewer road pixels than this after masking → no estimate for the frame.
    inlier_threshold: RANSAC inlier distance as a fraction of the first guess of the height (scale-free).
    iterations: RANSAC hypotheses; the generator is seeded, so the estimate is deterministic per frame.
    min_inlier_fraction: a plane supported by fewer of the points is refused.
    max_tilt_deg: the plane's normal must be within this angle of the camera's down axis (+y); a wall, or a road
        seen from a camera mounted far off level, is refused.
    """

    min_row_fraction: float = 0.5
    max_points: int = 3000
    erode_px: int = 2
    min_points: int = 200
    inlier_threshold: float = 0.05
    iterations: int = 64
    min_inlier_fraction: float = 0.5
    max_tilt_deg: float = 30.0

    def __post_init__(self):
        checks = {
            "min_row_fraction": 0.0 <= self.min_row_fraction < 1.0,
            "max_points": self.max_points >= 3,
            "erode_px": self.erode_px >= 0,
            "min_points": self.min_points >= 3,
            "inlier_threshold": 0.0 < self.inlier_threshold < 1.0,
            "iterations": self.iterations >= 1,
            "min_inlier_fraction": 0.0 < self.min_inlier_fraction <= 1.0,
            "max_tilt_deg": 0.0 < self.max_tilt_deg < 90.0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"GroundPlaneConfig: out of range: {', '.join(f'{n}={getattr(self, n)!r}' for n in bad)}")


@dataclass(frozen=True)
class GroundPlane:
    """A road plane fitted in one frame, in model units.

    normal: (3,) unit normal in the optical frame, signed so that ``normal[1] > 0`` (along the camera's down axis);
        road points p satisfy ``normal · p ≈ height``.
    height: distance of the optical centre from the plane (model units, > 0).
    points: road points used; inliers: how many of them support the plane.
    """

    normal: np.ndarray
    height: float
    points: int
    inliers: int

    @property
    def tilt_deg(self) -> float:
        """Angle between the plane normal and the camera's down axis (degrees): the camera's roll/pitch to the road."""
        return float(np.degrees(np.arccos(np.clip(self.normal[1], -1.0, 1.0))))


def road_points(depth: np.ndarray, labels: np.ndarray, intrinsics: np.ndarray,
                config: GroundPlaneConfig = GroundPlaneConfig()) -> np.ndarray:
    """Back-project the robust road region of one frame.

    depth: HxW float32 depth along the optical axis (any unit; NaN/≤0 = invalid).
    labels: HxW uint8 trainIds (the same size as ``depth``).
    intrinsics: 3×3 camera matrix for this resolution (fx, fy, cx, cy, skew).
    Returns: N×3 float64 points (x, y, z) in the optical frame, N ≤ ``config.max_points``.
    """
    if depth.shape != labels.shape:
        raise ValueError(f"depth {depth.shape} and labels {labels.shape} differ in size")
    h, w = depth.shape
    road = (labels == ROAD_TRAIN_ID).astype(np.uint8)
    if config.erode_px:
        kernel = np.ones((2 * config.erode_px + 1, 2 * config.erode_px + 1), np.uint8)
        road = cv2.erode(road, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    road[: int(h * config.min_row_fraction)] = 0
    rows, cols = np.nonzero(road)
    z = depth[rows, cols].astype(np.float64)
    valid = np.isfinite(z) & (z > 0)
    rows, cols, z = rows[valid], cols[valid], z[valid]
    if rows.size > config.max_points:  # regular subsampling: deterministic, spread over the whole road
        keep = np.linspace(0, rows.size - 1, config.max_points).astype(np.int64)
        rows, cols, z = rows[keep], cols[keep], z[keep]
    return backproject_pixels(cols, rows, z, intrinsics, dtype=np.float64)


def fit_ground_plane(points: np.ndarray, config: GroundPlaneConfig = GroundPlaneConfig(),
                     seed: int = 0) -> GroundPlane | None:
    """Robust plane through road points: RANSAC on 3-point hypotheses, then least squares on the inliers.

    points: N×3 (optical frame). Returns None when there are too few points, too few inliers, or the plane is
    tilted more than ``max_tilt_deg`` from the camera's down axis.
    """
    n = len(points)
    if n < config.min_points:
        return None
    guess = float(np.median(points[:, 1]))  # a level camera sees the road at y ≈ height
    if not guess > 0:
        return None
    threshold = config.inlier_threshold * guess
    rng = np.random.default_rng(seed)
    best_inliers, best_count = None, -1
    for _ in range(config.iterations):
        a, b, c = points[rng.choice(n, 3, replace=False)]
        normal = np.cross(b - a, c - a)
        norm = np.linalg.norm(normal)
        if norm < 1e-12:
            continue
        normal /= norm
        distance = np.abs((points - a) @ normal)
        inliers = distance < threshold
        count = int(inliers.sum())
        if count > best_count:
            best_inliers, best_count = inliers, count
    if best_inliers is None or best_count < max(3, config.min_inlier_fraction * n):
        return None
    normal, offset = _least_squares_plane(points[best_inliers])
    # Second pass with the refined plane, so the final inlier set does not depend on the lucky triple.
    inliers = np.abs(points @ normal + offset) < threshold
    if inliers.sum() >= 3:
        normal, offset = _least_squares_plane(points[inliers])
    if normal[1] < 0:
        normal, offset = -normal, -offset
    plane = GroundPlane(normal=normal, height=float(abs(offset)), points=n, inliers=int(inliers.sum()))
    if plane.tilt_deg > config.max_tilt_deg or plane.inliers < config.min_inlier_fraction * n or not plane.height > 0:
        return None
    return plane


def _least_squares_plane(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Total least squares plane: unit normal n and offset d with n·p + d = 0 for points p (N×3, N ≥ 3)."""
    centroid = points.mean(axis=0)
    _, _, vt = np.linalg.svd(points - centroid, full_matrices=False)
    normal = vt[-1]
    return normal, float(-normal @ centroid)


def estimate_ground_plane(depth: np.ndarray, labels: np.ndarray, intrinsics: np.ndarray,
                          config: GroundPlaneConfig = GroundPlaneConfig()) -> GroundPlane | None:
    """One frame's road plane in the depth's units, or None (too little road, or no plausible plane)."""
    return fit_ground_plane(road_points(depth, labels, intrinsics, config), config)


def scale_from_camera_height(plane: GroundPlane | None, camera_height_m: float) -> float | None:
    """Metres per depth unit that put the camera ``camera_height_m`` above the fitted plane; None without a plane."""
    if not (np.isfinite(camera_height_m) and camera_height_m > 0):
        raise ValueError(f"camera_height must be a positive number of metres, got {camera_height_m}")
    if plane is None:
        return None
    return float(camera_height_m / plane.height)
