"""Pinhole cameras of the synthetic world and their rays.

Camera frame: x right, y down, z forward (the optical frame of ROS REP 103 / OpenCV). Pixel centres sit at
integer coordinates (OpenCV / KITTI convention), so pixel (u, v) looks along ((u − cx)/fx, (v − cy)/fy, 1).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# KITTI raw, rectified camera 02 (2011_09_26): 1242×375, fx = fy = 721.5377, cx = 609.5593, cy = 172.854
KITTI_SIZE = (1242, 375)
KITTI_FX, KITTI_CX, KITTI_CY = 721.5377, 609.5593, 172.854
# Cityscapes (2048×1024, fx ≈ 2262.5, cx ≈ 1097, cy ≈ 513): a 2:1 image with a longer focal length
CITYSCAPES_SIZE = (2048, 1024)
CITYSCAPES_FX, CITYSCAPES_CX, CITYSCAPES_CY = 2262.52, 1096.98, 513.14
CAMERA_HEIGHT_M = 1.65  # KITTI's camera above the road


@dataclass(frozen=True)
class Camera:
    """Pinhole intrinsics for an image of ``width``×``height`` pixels (focal lengths and centre in pixels)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    @property
    def K(self) -> np.ndarray:
        """[3,3] float64 intrinsic matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def resized(self, width: int, height: int) -> "Camera":
        """The same field of view on an image of ``width``×``height`` (pixel-centre convention kept)."""
        sx, sy = width / self.width, height / self.height
        return Camera(width, height, self.fx * sx, self.fy * sy,
                      (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5)

    def ray_directions(self) -> np.ndarray:
        """[H·W,3] float32 camera-frame directions with z = 1, row-major; the ray parameter is the z-depth."""
        u = (np.arange(self.width, dtype=np.float64) - self.cx) / self.fx
        v = (np.arange(self.height, dtype=np.float64) - self.cy) / self.fy
        d = np.empty((self.height, self.width, 3), np.float32)
        d[..., 0] = u[None, :]
        d[..., 1] = v[:, None]
        d[..., 2] = 1.0
        return d.reshape(-1, 3)


def kitti_camera(width: int = KITTI_SIZE[0], height: int = KITTI_SIZE[1]) -> Camera:
    """KITTI's rectified left colour camera, resized to ``width``×``height``."""
    return Camera(*KITTI_SIZE, KITTI_FX, KITTI_FX, KITTI_CX, KITTI_CY).resized(width, height)


def cityscapes_camera(width: int = 1024, height: int = 512) -> Camera:
    """Cityscapes' camera (2:1), resized to ``width``×``height``."""
    return Camera(*CITYSCAPES_SIZE, CITYSCAPES_FX, CITYSCAPES_FX, CITYSCAPES_CX, CITYSCAPES_CY).resized(width, height)
