"""The node's parameters as data: name, default, description, range or choices, read-only (ROS-free).

The node declares each with a ParameterDescriptor built from this table and runs
:func:`validate` on start-up values and on every run-time change, so a bad value is rejected
with its valid range. ``config/sgdepth.yaml`` holds the same defaults (a test keeps them equal).

Several cameras: ``cameras`` names them; each camera ``<name>`` may override the parameters in
:data:`PER_CAMERA` as ``<name>.<parameter>`` (default: the node-wide value), see :func:`camera_values`.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from ..colorize import COLORMAPS
from ..scale import MAX_CAMERA_HEIGHT_M, SCALE_MODES
from .scale_state import height_source_problem


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    description: str
    low: float | None = None  # inclusive numeric range
    high: float | None = None
    choices: tuple[str, ...] | None = None
    pattern: str | None = None  # a regex for strings with open-ended values (device)
    read_only: bool = False

    def valid_range(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.pattern:
            return f"matching {self.pattern}"
        if self.low is not None:
            return f"within [{self.low:g}, {self.high:g}]"
        return "any value"


RELIABILITIES = ("best_effort", "reliable")
CAMERA_NAME = r"^[A-Za-z][A-Za-z0-9_]*$"
MAX_CAMERAS = 16
PER_CAMERA = ("input_transport", "camera_height", "scale_factor")  # a camera may override these as <camera>.<name>
PARAMS = (
    # cameras: fixed once started
    Param("cameras", (), "names of the cameras this node serves with one model: camera <name> reads <name>/image "
          "(or <name>/image/compressed) and <name>/camera_info and publishes under <name>/; may override "
          "input_transport, camera_height and scale_factor as <name>.<parameter>; empty = one camera on image, "
          "camera_info and unprefixed outputs", pattern=CAMERA_NAME, read_only=True),
    Param("batch_size", 0, "most frames (of different cameras) run in one forward pass; 0 = auto: every camera on "
          "CUDA, 1 on the CPU (where batching measured no faster)", 0, MAX_CAMERAS, read_only=True),
    # model and device: fixed once configured
    Param("model_path", "", "SGDepth checkpoint: our .safetensors or a released SGDepth model.pth", read_only=True),
    Param("device", "auto", "auto (CUDA when available, else CPU with a warning), cpu, cuda or cuda:N",
          pattern=r"^(auto|cpu|cuda(:\d+)?)$", read_only=True),
    Param("precision", "fp32", "numeric precision: fp32; fp16 on CUDA; bf16 on CUDA or on a CPU with native bf16 "
          "(OpenVINO); int8: a file written by sgdepth-ros quantize (CPU, OpenVINO; such a file runs int8 also with "
          "fp32 here)", choices=("fp32", "fp16", "bf16", "int8"),
          read_only=True),
    Param("backend", "auto", "auto (OpenVINO on CPU when installed, else PyTorch), torch, openvino or tensorrt "
          "(CUDA, fp32/fp16, untested on real hardware; PyTorch with one log line when the tensorrt module is absent)",
          choices=("auto", "torch", "openvino", "tensorrt"), read_only=True),
    Param("optimize", "auto", "PyTorch on CUDA: auto (CUDA graphs on CUDA, verified on an H200 by "
          "scripts/gpu_check.sh; eager on the CPU), none (eager), graphs "
          "(one CUDA graph per batch size and output set, replayed), compile (torch.compile + graphs, experimental: "
          "slow first frames); graphs and compile need a CUDA device", choices=("auto", "none", "graphs", "compile"),
          read_only=True),
    Param("input_width", 0, "network input width in pixels, a multiple of 32; 0 = from the checkpoint",
          0, 4096, read_only=True),
    Param("input_height", 0, "network input height in pixels, a multiple of 32; 0 = from the checkpoint",
          0, 4096, read_only=True),
    Param("cpu_threads", 0, "CPU inference threads; 0 = the backend's choice", 0, 256, read_only=True),
    # scale
    Param("scale_mode", "auto", "auto: metres on depth when scale_factor or the checkpoint gives a factor, else "
          "model units on depth/relative; fixed: the same, but configure fails without a factor; relative: always "
          "model units on depth/relative; camera_height: metres measured on every frame from the camera's height "
          "above the road the network segments (camera_height or ground_frame), model units until the first "
          "scale_min_samples frames with road", choices=SCALE_MODES, read_only=True),
    Param("scale_factor", 0.0, "metres per model unit (scale_mode auto or fixed); 0 = from the checkpoint metadata",
          0.0, 1e6, read_only=True),
    Param("camera_height", 0.0, "scale_mode camera_height: metres from the camera's optical centre down to the road; "
          "0 = not set (ground_frame then gives it); with ground_frame too, TF wins when it answers and this is the "
          "fallback", 0.0, MAX_CAMERA_HEIGHT_M, read_only=True),
    Param("ground_frame", "", "scale_mode camera_height: TF frame whose xy-plane is the road (e.g. base_footprint); "
          "the camera height is the image frame_id's origin above it along its z (needs tf2_ros); empty = not used",
          pattern=r"^([A-Za-z0-9_][A-Za-z0-9_./-]*)?$", read_only=True),
    Param("scale_window", 30, "scale_mode camera_height: per-frame scale estimates in the temporal filter (median "
          "over the window, outliers refused)", 1, 1000, read_only=True),
    Param("scale_min_samples", 3, "scale_mode camera_height: frames with road needed before depth is published in "
          "metres (at most scale_window)", 1, 1000, read_only=True),
    # input
    Param("input_transport", "raw", "raw: sensor_msgs/Image on 'image'; compressed: CompressedImage on "
          "'image/compressed'", choices=("raw", "compressed"), read_only=True),
    Param("input_qos_reliability", "best_effort", "reliability of the image and camera_info subscriptions",
          choices=RELIABILITIES, read_only=True),
    Param("input_qos_depth", 1, "history depth of the input subscriptions", 1, 100, read_only=True),
    Param("max_image_pixels", 4096 * 4096, "larger input images are rejected (counted as bad_size)",
          1, 2 ** 28, read_only=True),
    Param("camera_info_tolerance_sec", 0.0, "largest |image stamp − CameraInfo stamp| accepted as a pair; 0 = exact",
          0.0, 1.0),
    Param("camera_info_wait_sec", 0.05, "how long the worker waits (after inference) for a CameraInfo with the "
          "image's stamp, only while CameraInfo stamps match image stamps",
          0.0, 1.0),
    Param("camera_info_fallback_latest", True, "an image no CameraInfo stamp matches uses the latest CameraInfo of "
          "its size (latched or constant-stamp publishers); false: only stamp matches"),
    # outputs
    Param("output_qos_reliability", "reliable", "reliability of the outputs", choices=RELIABILITIES, read_only=True),
    Param("output_qos_depth", 1, "history depth of the outputs", 1, 100, read_only=True),
    Param("output_resolution", "network", "network: outputs at the network input size; input: at the camera size",
          choices=("network", "input")),
    Param("publish_depth", True, "publish depth (or depth/relative) and depth/camera_info"),
    Param("publish_depth_color", True, "publish depth/color (rgb8)"),
    Param("publish_semantic", True, "publish semantic (mono8 trainIds, 255 = unknown)"),
    Param("publish_semantic_color", True, "publish semantic/color (rgb8 Cityscapes colours)"),
    Param("publish_overlay", True, "publish semantic/overlay (rgb8 image blended with the label colours)"),
    Param("publish_points", True, "publish points (or points/relative): PointCloud2 x y z rgb label; "
          "needs camera_info"),
    Param("publish_odometry", False, "publish odometry (nav_msgs/Odometry): the camera's ego-motion from the pose "
          "net, only while a metric scale exists; needs a checkpoint with the pose net (README: Ego-motion)",
          read_only=True),
    Param("odom_frame", "odom", "header.frame_id of odometry: the camera's optical frame at its first frame",
          pattern=r"^[A-Za-z_][A-Za-z0-9_./-]*$", read_only=True),
    Param("overlay_alpha", 0.5, "weight of the label colours in semantic/overlay", 0.0, 1.0),
    Param("depth_color_min", 0.0, "depth at the warm end of depth/color; 0 = 2nd percentile of each frame",
          0.0, 1e4),
    Param("depth_color_max", 0.0, "depth at the cold end of depth/color; 0 = 98th percentile of each frame",
          0.0, 1e4),
    Param("depth_colormap", "turbo", "colour map of depth/color", choices=tuple(sorted(COLORMAPS))),
    Param("points_decimation", 2, "keep every n-th row and column in points", 1, 64),
    # housekeeping
    Param("diagnostics_period_sec", 1.0, "period of /diagnostics messages", 0.1, 60.0, read_only=True),
    Param("warn_input_output_ratio", 5.0, "/diagnostics turns WARN when, over the last 5 s, more than this many "
          "frames arrive per frame served (dropping older frames for newer ones below it stays OK); "
          "0 = never for the rate, 1 or more otherwise", 0.0, 1e6),
    Param("log_period_sec", 10.0, "period of the one-line status log; 0 = off", 0.0, 3600.0, read_only=True),
    Param("autostart", True, "configure and activate by itself (false: wait for a lifecycle manager)",
          read_only=True),
)
PARAMS_BY_NAME = {p.name: p for p in PARAMS}


def validate(name: str, value: Any) -> str | None:
    """None when ``value`` is acceptable for parameter ``name``, else the reason with the valid range."""
    spec = PARAMS_BY_NAME.get(name)
    camera, _, base = name.rpartition(".")
    if spec is None and camera and base in PER_CAMERA:  # <camera>.<parameter>: the parameter's own rules
        reason = validate(base, value)
        return reason.replace(base, name, 1) if reason else None
    if spec is None:
        return None  # parameters the node does not own (use_sim_time, …) are rclpy's business
    if name == "cameras":
        return _validate_cameras(value)
    expected = type(spec.default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        return f"{name} must be a {expected.__name__}, got {value!r}"
    if spec.choices and value not in spec.choices:
        return f"{name}={value!r} is not valid: must be {spec.valid_range()}"
    if spec.pattern and not re.match(spec.pattern, value):
        return f"{name}={value!r} is not valid: must be {spec.valid_range()}"
    if spec.low is not None and not (isinstance(value, (int, float)) and math.isfinite(value)
                                     and spec.low <= value <= spec.high):
        return f"{name}={value!r} is out of range: must be {spec.valid_range()}"
    if name == "warn_input_output_ratio" and 0 < value < 1:
        return f"{name}={value!r} is not valid: must be 0 (off) or within [1, 1e+06] (frames in per frame out)"
    if name in ("input_width", "input_height") and value % 32:
        return f"{name}={value} must be a multiple of 32 (or 0 = from the checkpoint)"
    return None


def _validate_cameras(value: Any) -> str | None:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        return f"cameras must be a list of names, got {value!r}"
    bad = [v for v in value if not re.match(CAMERA_NAME, v)]
    if bad:
        return f"cameras: {', '.join(map(repr, bad))} not valid: each name must match {CAMERA_NAME}"
    repeated = sorted({v for v in value if list(value).count(v) > 1})
    if repeated:
        return f"cameras: {', '.join(repeated)} named more than once"
    if len(value) > MAX_CAMERAS:
        return f"cameras: {len(value)} named, at most {MAX_CAMERAS}"
    return None


def camera_values(values: dict[str, Any], camera: str) -> dict[str, Any]:
    """The parameter values camera ``camera`` runs with: the node-wide ``values`` with the camera's own
    ``<camera>.<parameter>`` entries (when ``values`` holds them) for the :data:`PER_CAMERA` ones; "" = the unnamed
    single camera (the node-wide values)."""
    if not camera:
        return dict(values)
    own = {name: values[f"{camera}.{name}"] for name in PER_CAMERA if f"{camera}.{name}" in values}
    return values | own


def validate_together(values: dict[str, Any]) -> str | None:
    """Checks that involve several parameters (after each one is valid on its own), for each camera with its own
    values (:func:`camera_values`)."""
    for camera in values.get("cameras") or [""]:
        reason = _validate_camera(camera_values(values, camera))
        if reason:
            return f"camera {camera}: {reason}" if camera else reason
    return None


def _validate_camera(values: dict[str, Any]) -> str | None:
    lo, hi = values.get("depth_color_min", 0.0), values.get("depth_color_max", 0.0)
    if lo > 0 and hi > 0 and lo >= hi:
        return f"depth_color_min ({lo:g}) must be below depth_color_max ({hi:g})"
    precision, device = values.get("precision", "fp32"), values.get("device", "auto")
    if precision == "fp16" and device == "cpu":
        return "precision fp16 needs a CUDA device; use fp32 or bf16 (CPUs with native bf16) on the CPU"
    if precision == "int8" and device.startswith("cuda"):
        return "precision int8 runs on the CPU (OpenVINO); use fp16 or bf16 on CUDA"
    if values.get("optimize", "auto") in ("graphs", "compile") and values.get("device") == "cpu":
        return f"optimize {values['optimize']} needs a CUDA device; use auto or none on the CPU"
    return _validate_scale(values)


def _validate_scale(values: dict[str, Any]) -> str | None:
    """The scale parameters together: camera_height mode needs a height source (TF availability is checked at
    configure), its parameters are refused with other modes, scale_min_samples ≤ scale_window."""
    mode = values.get("scale_mode", "auto")
    height, ground = values.get("camera_height", 0.0), values.get("ground_frame", "")
    if mode == "camera_height":
        problem = height_source_problem(height, ground)
        if problem:
            return problem + " (camera_height in metres, or ground_frame such as base_footprint)"
        if values.get("scale_factor", 0.0):
            return (f"scale_factor ({values['scale_factor']:g}) is not used with scale_mode camera_height, which "
                    "measures the scale; set it to 0")
        window, needed = values.get("scale_window", 30), values.get("scale_min_samples", 3)
        if needed > window:
            return f"scale_min_samples ({needed}) must be at most scale_window ({window})"
    elif height or ground:
        given = ", ".join(n for n, v in (("camera_height", height), ("ground_frame", ground)) if v)
        return f"{given} is used only with scale_mode camera_height (scale_mode is {mode!r}); leave it unset"
    return None
