"""Packing of PointCloud2 payloads: x, y, z, rgb, label (ROS-free).

Layout (20 bytes a point, little-endian, dense: every coordinate finite, so the message's ``is_dense`` is
true by construction): x, y, z float32 at offsets 0, 4, 8; rgb at 12
as a float32 holding the bits 0x00RRGGBB (the PCL/rviz convention); label uint32 at 16
(Cityscapes trainId, 255 = unknown).
"""
from __future__ import annotations

import array
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .camera_model import PointGrid

# (name, offset, PointField datatype): FLOAT32 = 7, UINT32 = 6
FIELDS = (("x", 0, 7), ("y", 4, 7), ("z", 8, 7), ("rgb", 12, 7), ("label", 16, 6))
POINT_DTYPE = np.dtype({"names": ["x", "y", "z", "rgb", "label"],
                        "formats": ["<f4", "<f4", "<f4", "<u4", "<u4"],
                        "offsets": [0, 4, 8, 12, 16], "itemsize": 20})


def pack_points(points: np.ndarray, rgb: np.ndarray | None = None, labels: np.ndarray | None = None) -> bytes:
    """points [M,3] float32, rgb [M,3] uint8, labels [M] uint8 → M×20 bytes in the layout above.

    Raises ValueError for a NaN/inf coordinate: the cloud is published dense (``is_dense`` true).
    """
    if not np.isfinite(points).all():
        raise ValueError(f"{int((~np.isfinite(points).all(axis=1)).sum())} of {len(points)} points have NaN/inf "
                         "coordinates; a dense cloud must not")
    cloud = np.zeros(len(points), POINT_DTYPE)
    cloud["x"], cloud["y"], cloud["z"] = points[:, 0], points[:, 1], points[:, 2]
    if rgb is not None:
        rgb = rgb.astype(np.uint32)
        cloud["rgb"] = (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]
    cloud["label"] = 255 if labels is None else labels
    return cloud.tobytes()


def pack_grid(grid: PointGrid, rgb: np.ndarray | None = None,
              labels: np.ndarray | None = None) -> tuple[array.array, int]:
    """The kept points of a :class:`~.camera_model.PointGrid` (row-major), with rgb [h,w,3] uint8 and labels [h,w]
    uint8 of the same grid (e.g. ``image[::d, ::d]``; None: 0 and 255) → (payload, point count).

    The payload is an ``array.array('B')`` of count×20 bytes in the layout above, written in place: what an rclpy
    message's ``data`` holds, so assigning it copies nothing. The same bytes as :func:`pack_points` of the
    :func:`~.camera_model.backproject` list.
    """
    count = grid.count
    payload = array.array("B", b"\0") * (count * POINT_DTYPE.itemsize)
    cloud = np.frombuffer(payload, POINT_DTYPE)
    if grid.all_kept:
        def put(field, values):
            np.copyto(cloud[field].reshape(values.shape[:2]), values, casting="unsafe")
    else:
        def put(field, values):
            cloud[field] = values[grid.keep]
    put("x", grid.x)
    put("y", grid.y)
    put("z", grid.z)
    if rgb is None:
        cloud["rgb"] = 0
    else:
        packed = rgb[:, :, 0].astype(np.uint32) << 16
        packed |= rgb[:, :, 1].astype(np.uint32) << 8
        packed |= rgb[:, :, 2]
        put("rgb", packed)
    if labels is None:
        cloud["label"] = 255
    else:
        put("label", labels)
    return payload, count


def unpack_points(data: bytes) -> np.ndarray:
    """The inverse of :func:`pack_points`: a structured array with x, y, z, rgb (uint32), label."""
    return np.frombuffer(data, POINT_DTYPE)
