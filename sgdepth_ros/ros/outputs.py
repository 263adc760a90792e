"""The node's output images and point cloud from one Prediction, computing only what is wanted (ROS-free).

Imports neither torch nor rclpy: the node loads torch only when configure builds the predictor.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

import numpy as np

from ..colorize import colorize_depth, colorize_labels, overlay_labels
from .camera_model import CameraGeometry, backproject_grid, check_geometry
from .image_codec import message_buffer
from .pointcloud import pack_grid

if TYPE_CHECKING:  # type names only: importing the predictor module imports torch
    from ..predictor import Prediction, Predictor

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

    Returns a dict with some of: depth (HxW float32, NaN where invalid; the prediction's own array when every
    pixel is valid, never written), depth_color / semantic_color / overlay (HxWx3 uint8 RGB), semantic (HxW uint8
    trainIds), points ((packed payload, point count), only with ``geometry`` of the output size; the payload an
    ``array.array('B')``, see :func:`.pointcloud.pack_grid`).

    Each thing is computed once per frame: the depth validity mask serves depth, depth_color and points; the label
    colours serve semantic_color and overlay; the point cloud reads the image and labels on its decimated grid.
    The colour images and the cloud are rendered straight into message buffers
    (:func:`.image_codec.message_buffer`): the messages take them without copying.
    """
    out: dict = {}
    depth = prediction.depth
    valid = None
    if depth is not None and wanted & {"depth", "depth_color", "points"}:
        depth = depth.astype(np.float32, copy=False)
        valid = np.isfinite(depth) & (depth > 0)
        if not valid.all():
            depth = np.where(valid, depth, np.float32(np.nan))
        if "depth" in wanted:
            out["depth"] = depth
        if "depth_color" in wanted:
            out["depth_color"] = colorize_depth(depth, settings.depth_color_min or None,
                                                settings.depth_color_max or None, settings.depth_colormap,
                                                valid=valid, out=message_buffer(depth.shape + (3,)))
    labels = prediction.labels
    colours = None
    if labels is not None:
        if "semantic" in wanted:
            out["semantic"] = labels
        if wanted & {"semantic_color", "overlay"}:
            colours = colorize_labels(labels, out=message_buffer(labels.shape + (3,)))
        if "semantic_color" in wanted:
            out["semantic_color"] = colours
        if "overlay" in wanted:
            out["overlay"] = overlay_labels(prediction.image, labels, settings.overlay_alpha, colours,
                                            out=message_buffer(labels.shape + (3,)))
    if "points" in wanted and depth is not None and geometry is not None:
        step = settings.points_decimation
        grid = backproject_grid(depth, geometry, step, valid)
        rgb = prediction.image[::step, ::step] if prediction.image is not None else None
        point_labels = labels[::step, ::step] if labels is not None else None
        out["points"] = pack_grid(grid, rgb, point_labels)
    return out


def warm_up(predictor: Predictor, output_resolution: str, settings: RenderSettings,
            task_sets: Iterable[tuple[str, ...]] | None = None, batch: int = 1) -> float:
    """Run the predictor once per task set on ``batch`` grey images of the network input size (the batch the caller
    will run: one per camera on a GPU) and render every output once; returns the elapsed milliseconds.

    The node calls this at configure so that the first camera frame runs at steady-state speed: the
    backends do much of their work on the first call of a graph (OpenVINO converts and compiles one graph
    per task set on first use and sets its kernels up on the first inference; CUDA creates its context
    and kernels; the allocators grow), ~0.4 s against ~0.06 s later for the 320×96 model on a CPU.
    ``task_sets``: the ``tasks`` arguments the caller will pass to ``predict`` (None: one call with the
    predictor's default tasks). The network always runs at its input size, so this covers the forward
    pass whatever the camera. With ``output_resolution`` "input" the first frame of a new camera size
    still resizes and renders at that size for the first time (array allocations, no graph work).
    """
    width, height = predictor.input_size
    rgb = np.full((height, width, 3), 128, np.uint8)
    f = 0.6 * width  # any valid pinhole camera of the output size: the point cloud path runs once too
    geometry = check_geometry(width, height, [f, 0.0, width / 2, 0.0, f, height / 2, 0.0, 0.0, 1.0], [0.0] * 12)
    start = time.perf_counter()
    for tasks in (list(task_sets) if task_sets is not None else [None]):
        predictions = predictor.predict_batch([rgb] * batch, output_resolution=output_resolution, tasks=tasks)
        render(predictions[0], set(OUTPUT_KEYS), settings, geometry)
    return (time.perf_counter() - start) * 1e3
