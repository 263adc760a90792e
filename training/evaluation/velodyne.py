"""KITTI velodyne scans → sparse depth maps, reproducing KITTI's ``pcl_to_depth_map`` (spec §5.2 item 4).

Files (KITTI raw)::

    <root>/<date>/calib_velo_to_cam.txt                                   R (9), T (3): velodyne → camera 00
    <root>/<date>/calib_cam_to_cam.txt                                    R_rect_00, P_rect_0X, S_rect_0X
    <root>/<date>/<drive>/velodyne_points/data/<frame:010d>.bin           float32 x, y, z, reflectance per point

Steps: drop points with velodyne x < 0 (behind the sensor), project with P_rect_0X · R_rect_00 · [R|T], divide by
the third coordinate, **round then subtract 1** from both pixel coordinates (the runtime's pixel rounding
``"kitti_devkit"`` of :mod:`sgdepth_ros.sparse_depth`: one pixel up and left of the ROS convention that replay's LiDAR
ground truth uses, kept for the Eigen protocol's fidelity), keep points inside the image, and on collisions keep the
nearest depth. The depth is the third projected coordinate (camera z, SGDepth's
``vel_depth=False``) or the velodyne x (``vel_depth=True``, monodepth2's ``export_gt_depth.py``). One deliberate
difference: points whose camera z is not positive are dropped before the division (KITTI divides by them and zeroes
negative depths afterwards); such points lie at or behind the camera plane and cannot be seen anyway.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sgdepth_ros.sparse_depth import splat_depth

from ..data.errors import DatasetError
from ..data.kitti_calib import read_calib_file

__all__ = ["read_velodyne_bin", "velo_to_cam_matrix", "velo_to_image_matrix", "project_to_depth_map",
           "velodyne_path", "velodyne_depth_map"]


def read_velodyne_bin(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a KITTI ``velodyne_points/data/*.bin`` → [N,4] float32 (x forward, y left, z up in metres; reflectance).

    Raises: DatasetError naming the file when it is missing or its size is not a multiple of 16 bytes.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: velodyne scan does not exist")
    size = path.stat().st_size
    if size % 16:
        raise DatasetError(f"{path}: {size} bytes is not a whole number of 16-byte (4 x float32) points")
    return np.fromfile(path, dtype="<f4").reshape(-1, 4)


def _entry(calib: dict[str, np.ndarray], key: str, count: int, path: Path) -> np.ndarray:
    if key not in calib:
        raise DatasetError(f"{path}: calibration has no {key} (keys: {', '.join(sorted(calib)) or 'none'})")
    if calib[key].size != count:
        raise DatasetError(f"{path}: {key} has {calib[key].size} values, expected {count}")
    return calib[key]


def velo_to_cam_matrix(path: str | os.PathLike[str]) -> np.ndarray:
    """``calib_velo_to_cam.txt`` → 4x4 float64 rigid transform velodyne → unrectified camera 00 ([R|T; 0 0 0 1])."""
    path = Path(path)
    calib = read_calib_file(path)
    out = np.eye(4)
    out[:3, :3] = _entry(calib, "R", 9, path).reshape(3, 3)
    out[:3, 3] = _entry(calib, "T", 3, path)
    return out


def velo_to_image_matrix(cam_to_cam: dict[str, np.ndarray], velo_to_cam: np.ndarray, camera: int = 2,
                         path: str | os.PathLike[str] = "calib_cam_to_cam.txt") -> np.ndarray:
    """3x4 float64 projection velodyne (homogeneous) → rectified camera ``camera`` pixels: P_rect_0X · R_rect_00 · V.

    ``cam_to_cam``: parsed ``calib_cam_to_cam.txt`` (``read_calib_file``); ``path`` only names it in errors.
    """
    path = Path(path)
    r_rect = np.eye(4)
    r_rect[:3, :3] = _entry(cam_to_cam, "R_rect_00", 9, path).reshape(3, 3)
    p_rect = _entry(cam_to_cam, f"P_rect_0{camera}", 12, path).reshape(3, 4)
    return p_rect @ r_rect @ np.asarray(velo_to_cam, dtype=np.float64)


def project_to_depth_map(points: np.ndarray, velo_to_image: np.ndarray, size: tuple[int, int],
                         vel_depth: bool = False) -> np.ndarray:
    """Sparse depth map from velodyne points.

    Args:
        points: [N,3] or [N,4] velodyne points (x, y, z[, reflectance]) in metres; the 4th column is ignored.
        velo_to_image: 3x4 projection (see :func:`velo_to_image_matrix`).
        size: (width, height) of the image in pixels.
        vel_depth: False = camera z (third projected coordinate), True = velodyne x.
    Returns: HxW float32 depth in metres, 0 where no point landed; the nearest point wins on collisions.
    Pixel of a point: (round(u) − 1, round(v) − 1), numpy rounding (half to even), as KITTI's devkit:
    :func:`sgdepth_ros.sparse_depth.splat_depth` with rounding ``"kitti_devkit"``.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] not in (3, 4):
        raise ValueError(f"points must be [N,3] or [N,4], got {pts.shape}")
    width, height = int(size[0]), int(size[1])
    pts = pts[pts[:, 0] >= 0, :3]
    homogeneous = np.hstack([pts, np.ones((len(pts), 1))])
    proj = homogeneous @ np.asarray(velo_to_image, dtype=np.float64).T
    front = proj[:, 2] > 0
    proj, pts = proj[front], pts[front]
    depth = pts[:, 0] if vel_depth else proj[:, 2]
    return splat_depth(proj[:, 0] / proj[:, 2], proj[:, 1] / proj[:, 2], depth, width, height,
                       rounding="kitti_devkit")


def velodyne_path(root: str | os.PathLike[str], folder: str, frame: int) -> Path:
    """``<root>/<folder>/velodyne_points/data/<frame:010d>.bin``."""
    return Path(root) / folder / "velodyne_points" / "data" / f"{frame:010d}.bin"


def velodyne_depth_map(root: str | os.PathLike[str], folder: str, frame: int, camera: int = 2,
                       vel_depth: bool = False) -> np.ndarray:
    """Ground-truth depth of a KITTI raw frame from its velodyne scan and the per-date calibration.

    The image size is ``S_rect_0X`` of ``calib_cam_to_cam.txt``. Returns HxW float32 metres (0 = no value).
    Raises: DatasetError naming the missing or malformed file.
    """
    date_dir = Path(root) / folder.replace("\\", "/").split("/")[0]
    cam_path = date_dir / "calib_cam_to_cam.txt"
    cam_to_cam = read_calib_file(cam_path)
    size = _entry(cam_to_cam, f"S_rect_0{camera}", 2, cam_path)
    projection = velo_to_image_matrix(cam_to_cam, velo_to_cam_matrix(date_dir / "calib_velo_to_cam.txt"),
                                      camera, cam_path)
    points = read_velodyne_bin(velodyne_path(root, folder, frame))
    return project_to_depth_map(points, projection, (int(round(size[0])), int(round(size[1]))), vel_depth)
