"""Packing of PointCloud2 payloads: x, y, z, rgb, label (ROS-free).

Layout (20 bytes a point, little-endian, dense: every coordinate finite, so the message's ``is_dense`` is
true by construction): x, y, z float32 at offsets 0, 4, 8; rgb at 12
as a float32 holding the bits 0x00RRGGBB (the PCL/rviz convention); label uint32 at 16
(Cityscapes trainId, 255 = unknown).
"""
from __future__ import annotations

import numpy as np

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


def unpack_points(data: bytes) -> np.ndarray:
    """The inverse of :func:`pack_points`: a structured array with x, y, z, rgb (uint32), label."""
    return np.frombuffer(data, POINT_DTYPE)
