"""Where metres come from: scale sources with one interface, and the one rule that picks them (ROS-free).

Self-supervised monocular depth is known only up to an unknown scale: the network gives depth in *model units*.
A scale source says how many metres one model unit is. Every entry point (``infer``, ``sgdepth_node``, ``replay``,
``demo``) builds its source with :func:`resolve_scale` from a mode and an optional factor, so the same checkpoint
gives the same units everywhere:

=============  ==========================================================================================
``auto``       the factor given, else the factor stored in the checkpoint's metadata, else relative depth
               (the default: the shipped model, which stores its scale, gives metres; the released SGDepth
               weights, which store none, give model units)
``fixed``      the factor given, else the checkpoint's; an error when there is neither
``relative``   always model units, even when the checkpoint stores a factor
``camera_height``  measured per frame: the camera's known height above the road over the height of the road
               plane fitted to the frame's own road pixels (:mod:`sgdepth_ros.ground_plane`), filtered over
               frames (:mod:`sgdepth_ros.scale_filter`); model units until the first estimates are in
=============  ==========================================================================================

A source is asked per frame (:meth:`ScaleSource.factor`), so a source that measures its scale from the prediction
itself (e.g. from the camera's height above the road) fits the same interface; ``required_tasks`` names the
network outputs such a source needs besides the ones the user asked for.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from .ground_plane import GroundPlane, GroundPlaneConfig, estimate_ground_plane, scale_from_camera_height
from .scale_filter import ScaleFilter, ScaleState

SCALE_MODES = ("relative", "fixed", "auto", "camera_height")
MAX_CAMERA_HEIGHT_M = 100.0  # a camera height (metres above the road) is accepted in (0, MAX_CAMERA_HEIGHT_M]
DEFAULT_SCALE_MODE = "auto"


class ScaleSource:
    """Metres per model unit for each frame, or None for relative depth.

    Attributes:
        mode: the scale mode that chose this source (one of :data:`SCALE_MODES`).
        is_metric: outputs are in metres (a frame may still lack a factor for a source that measures it).
        required_tasks: network tasks ("depth", "segmentation") the source needs on every frame.
    """

    mode: str = "relative"
    is_metric: bool = False
    required_tasks: frozenset[str] = frozenset()

    def factor(self, depth: np.ndarray | None = None, labels: np.ndarray | None = None,
               intrinsics: np.ndarray | None = None) -> float | None:
        """Metres per model unit for one frame. depth: HxW float32 model units; labels: HxW uint8 trainIds;
        intrinsics: 3×3 camera matrix for depth's resolution (any may be None). Constant sources ignore all three;
        a measuring source updates its state with the frame."""
        raise NotImplementedError

    def reset(self) -> None:
        """Start a new timeline (stamps jumped back, a new drive); constant sources have nothing to forget."""

    def describe(self) -> str:
        """A short phrase for logs and reports."""
        raise NotImplementedError


class RelativeScale(ScaleSource):
    """No scale: depth stays in model units."""

    def __init__(self, mode: str = "relative"):
        self.mode = mode

    def factor(self, depth=None, labels=None, intrinsics=None) -> None:
        return None

    def describe(self) -> str:
        return "relative (model units)"


class FixedScale(ScaleSource):
    """A constant factor, given by the user (or any caller that measured it)."""

    is_metric = True

    def __init__(self, factor: float, mode: str = "fixed", source: str = "given"):
        self.value = check_factor(factor)
        self.mode, self.source = mode, source

    def factor(self, depth=None, labels=None, intrinsics=None) -> float:
        return self.value

    def describe(self) -> str:
        return f"metric, ×{self.value:g} m/unit ({self.source})"


class CheckpointScale(FixedScale):
    """The factor stored in the checkpoint's metadata (``scale.factor``, with its ``scale.source``)."""

    def __init__(self, metadata: Mapping, mode: str = "auto"):
        scale = metadata.get("scale") or {}
        note = scale.get("source")
        super().__init__(scale["factor"], mode, "checkpoint metadata" + (f": {note}" if note else ""))


class CameraHeightScale(ScaleSource):
    """Scale measured per frame from the camera's height above the road (one object per camera: it holds that
    camera's filter state).

    camera_height: metres from the optical centre down to the road plane (> 0). config: the per-frame ground-plane
    fit; filter: the temporal filter (a fresh one with its defaults when None). ``last_estimate`` is the most recent
    frame's own estimate (None when that frame had no usable road), ``state`` the filter's output.
    """

    mode = "camera_height"
    is_metric = True
    required_tasks = frozenset({"depth", "segmentation"})

    def __init__(self, camera_height: float, config: GroundPlaneConfig | None = None,
                 filter: ScaleFilter | None = None, source: str = "parameter"):
        if isinstance(camera_height, bool) or not isinstance(camera_height, (int, float, np.floating)) \
                or not (math.isfinite(camera_height) and 0 < camera_height <= MAX_CAMERA_HEIGHT_M):
            raise ValueError(f"camera_height must be in (0, {MAX_CAMERA_HEIGHT_M:g}] metres, "
                             f"got {camera_height!r}")
        self.camera_height = float(camera_height)
        self.config = config or GroundPlaneConfig()
        self.filter = filter or ScaleFilter()
        self.source = source
        self.last_estimate: float | None = None
        self.last_plane: GroundPlane | None = None

    def factor(self, depth=None, labels=None, intrinsics=None) -> float | None:
        """Update with one frame (depth in model units, labels, 3×3 intrinsics of depth's size) and return the
        filtered factor (None until enough frames had road). Without depth, labels or intrinsics the frame counts
        as missing. Called without arguments it only reports the current factor."""
        if depth is None and labels is None and intrinsics is None:
            return self.filter.state().scale
        plane = None
        if depth is not None and labels is not None and intrinsics is not None:
            plane = estimate_ground_plane(depth, labels, np.asarray(intrinsics, np.float64), self.config)
        self.last_plane = plane
        self.last_estimate = scale_from_camera_height(plane, self.camera_height)
        return self.filter.update(self.last_estimate).scale

    @property
    def state(self) -> ScaleState:
        return self.filter.state()

    def reset(self) -> None:
        self.filter.reset()
        self.last_estimate = self.last_plane = None

    def describe(self) -> str:
        state = self.filter.state()
        now = "no estimate yet" if state.scale is None else f"now ×{state.scale:.4g} m/unit ±{100 * state.spread:.1f} %"
        return f"metric from the camera height {self.camera_height:g} m ({self.source}) over the road plane, {now}"


def check_factor(factor) -> float:
    """A scale factor as float; ValueError unless it is a positive finite number."""
    if isinstance(factor, bool) or not isinstance(factor, (int, float, np.floating, np.integer)) \
            or not (math.isfinite(factor) and factor > 0):
        raise ValueError(f"scale_factor must be a positive finite number of metres per model unit, got {factor!r}")
    return float(factor)


def stored_factor(metadata: Mapping) -> float | None:
    """The metric factor a checkpoint's metadata stores, or None."""
    return (metadata.get("scale") or {}).get("factor")


def resolve_scale(mode: str = DEFAULT_SCALE_MODE, factor: float | None = None, metadata: Mapping | None = None,
                  checkpoint: str = "the checkpoint", camera_height: float | None = None) -> ScaleSource:
    """The scale source for a mode (see the module docstring).

    factor: metres per model unit asked for by the user; None or 0 = not given. metadata: the checkpoint's
    (``model.metadata`` or :func:`sgdepth_ros.model.read_metadata`). checkpoint: its name, for messages.
    camera_height: metres, for mode ``camera_height`` (required there, refused elsewhere).
    Raises ValueError for an unknown mode, a bad factor, a factor with mode ``relative``, or mode ``fixed``
    without any factor.
    """
    if mode not in SCALE_MODES:
        raise ValueError(f"scale_mode {mode!r} is not valid: must be one of {', '.join(SCALE_MODES)}")
    if mode == "camera_height":
        if camera_height is None or camera_height == 0:
            raise ValueError("scale_mode 'camera_height' needs the camera's height above the road in metres "
                             "(camera_height, or a TF transform from the ground frame to the camera)")
        return CameraHeightScale(camera_height)
    if camera_height:
        raise ValueError(f"a camera height ({camera_height:g} m) was given with scale_mode {mode!r}; it is used "
                         f"only with scale_mode 'camera_height'")
    given = factor is not None and not (isinstance(factor, (int, float)) and factor == 0)
    if given:
        factor = check_factor(factor)
    if mode == "relative":
        if given:
            raise ValueError(f"a scale factor ({factor:g}) was given with scale_mode 'relative'; use scale_mode "
                             f"'fixed' or 'auto' for metres, or leave the factor unset (0)")
        return RelativeScale()
    if given:
        return FixedScale(factor, mode)
    if stored_factor(metadata or {}) is not None:
        return CheckpointScale(metadata, mode)
    if mode == "fixed":
        raise ValueError(f"scale_mode 'fixed' needs a scale factor > 0 or a checkpoint with a metric scale in its "
                         f"metadata ({checkpoint} has none)")
    return RelativeScale(mode)
