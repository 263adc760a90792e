"""The node's output images and point cloud from one Prediction, computing only what is wanted (ROS-free)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..colorize import colorize_depth, colorize_labels, overlay_labels
from ..predictor import Prediction
from .camera_model import CameraGeometry, backproject
from .pointcloud import pack_points

OUTPUT_KEYS = ("depth", "depth_info", "depth_color", "semantic", "semantic_color", "overlay", "points")


@dataclass(frozen=True)
class RenderSettings:
    """Run-time adjustable look of the outputs (the node's parameters of the same names)."""

    overlay_alpha: float = 0.5
    depth_color_min: float = 0.0  # 0 = per-frame percentile
    depth_color_max: float = 0.0
    depth_colormap: str = "turbo"
    points_decimation: int = 2


def render(prediction: Prediction, wanted: set[str], settings: RenderSettings,
           geometry: CameraGeometry | None) -> dict:
    """Arrays for the wanted outputs.

    Returns a dict with some of: depth (HxW float32, NaN where invalid), depth_color /
    semantic_color / overlay (HxWx3 uint8 RGB), semantic (HxW uint8 trainIds), points
    ((packed bytes, point count), only with ``geometry`` of the output size).
    """
    out: dict = {}
    depth = prediction.depth
    if depth is not None and wanted & {"depth", "depth_color", "points"}:
        depth = np.where(np.isfinite(depth) & (depth > 0), depth, np.float32(np.nan)).astype(np.float32, copy=False)
        if "depth" in wanted:
            out["depth"] = depth
        if "depth_color" in wanted:
            out["depth_color"] = colorize_depth(depth, settings.depth_color_min or None,
                                                settings.depth_color_max or None, settings.depth_colormap)
    labels = prediction.labels
    colours = None
    if labels is not None:
        if "semantic" in wanted:
            out["semantic"] = labels
        if wanted & {"semantic_color", "overlay"}:
            colours = colorize_labels(labels)
        if "semantic_color" in wanted:
            out["semantic_color"] = colours
        if "overlay" in wanted:
            out["overlay"] = overlay_labels(prediction.image, labels, settings.overlay_alpha, colours)
    if "points" in wanted and depth is not None and geometry is not None:
        points, index = backproject(depth, geometry, settings.points_decimation)
        rgb = prediction.image.reshape(-1, 3)[index] if prediction.image is not None else None
        point_labels = labels.reshape(-1)[index] if labels is not None else None
        out["points"] = (pack_points(points, rgb, point_labels), len(points))
    return out
