"""One camera's metric scale from its height above the road, for the node (ROS-free: no rclpy, no tf2 import).

The node's ``scale_mode: camera_height`` keeps one :class:`CameraScaleState` per camera. Per processed frame it
gets the frame's model-unit depth, its labels and the camera matrix of the depth image (CameraInfo ``P[:3, :3]``
rescaled to the output size, or None without a CameraInfo) and answers the filtered factor in metres per model unit
(:class:`ScaleStep`), or None while there is none yet (the frame is then published as relative depth).

Where the camera height comes from (:class:`CameraHeight`):

- TF, when ``ground_frame`` is set and a transform buffer exists (tf2_ros only: there are no tf2 wheels on PyPI):
  the height is the z of the camera frame's origin in ``ground_frame`` (the distance of the optical centre above the
  ground frame's xy-plane along its z axis; :func:`height_from_transform`); the frame is the image header's
  ``frame_id``, looked up at the latest available time (heights change slowly);
- else the ``camera_height`` parameter (metres);
- **TF wins when it answers** (it follows the vehicle's own calibration); the parameter is the fallback while TF
  has no transform (not yet received, a frame name that does not exist, a lookup error). A frame for which neither
  gives a height counts as ``missing`` in the filter.

The frames' stamps give the timeline: a stamp older than the previous frame's (the node rejects smaller backward
steps before this, so only a jump of more than a second reaches here: a bag loop, a simulator reset) resets the
filter, so a scale never carries over from one drive into another.
"""
from __future__ import annotations

import dataclasses
import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..ground_plane import GroundPlaneConfig
from ..scale import MAX_CAMERA_HEIGHT_M, CameraHeightScale
from ..scale_filter import ScaleFilter, ScaleState



def height_source_problem(camera_height: float, ground_frame: str, tf_available: bool = True) -> str | None:
    """None when ``scale_mode: camera_height`` has a height source, else the one line that says what to set.

    camera_height: the parameter in metres (0 = not set); ground_frame: the TF frame name ("" = not used);
    tf_available: tf2_ros can be imported (the node's start-up parameter check passes True, configure the truth).
    """
    if camera_height > 0 or (ground_frame and tf_available):
        return None
    message = "scale_mode camera_height needs camera_height > 0 or ground_frame with tf2_ros available"
    if ground_frame:
        message += f" (ground_frame '{ground_frame}' is set, but tf2_ros cannot be imported: no system ROS 2 tf2)"
    return message


def height_from_transform(transform: Any) -> float:
    """The camera's height in metres from the transform ground_frame ← camera frame.

    transform: a geometry_msgs TransformStamped (or Transform, or anything with ``.translation.z``) as
    ``tf2_ros.Buffer.lookup_transform(ground_frame, camera_frame, t)`` returns it: its translation is the camera
    frame's origin (the optical centre) expressed in ground_frame, so its z is the height above ground_frame's
    xy-plane. Raises ValueError unless that height is finite and in (0, 100] m.
    """
    z = float(getattr(transform, "transform", transform).translation.z)
    if not (math.isfinite(z) and 0 < z <= MAX_CAMERA_HEIGHT_M):
        raise ValueError(f"the camera is at z={z:g} m in the ground frame: need a height in (0, "
                         f"{MAX_CAMERA_HEIGHT_M:g}] m above its xy-plane (is ground_frame the frame on the road, "
                         "e.g. base_footprint?)")
    return z


@dataclass(frozen=True)
class HeightReading:
    """One frame's camera height: metres (None: no source answered), where it came from ("tf", "parameter" or
    "none") and what went wrong with TF, if anything (also when the parameter stood in)."""

    height: float | None
    source: str
    problem: str | None = None


class CameraHeight:
    """The camera's height above the road: TF when it answers, else the parameter (see the module docstring).

    parameter: metres, 0 = not set. ground_frame: TF frame on the road ("" = TF not used). buffer: an object with
    ``lookup_transform(target_frame, source_frame, time)`` (a ``tf2_ros.Buffer``; tests pass a stand-in); None = no
    TF. latest: the ``time`` argument that asks for the latest transform (``rclpy.time.Time()``).
    """

    def __init__(self, parameter: float = 0.0, ground_frame: str = "", buffer: Any = None, latest: Any = None):
        if not (math.isfinite(parameter) and 0 <= parameter <= MAX_CAMERA_HEIGHT_M):
            raise ValueError(f"camera_height must be in [0, {MAX_CAMERA_HEIGHT_M:g}] metres (0 = not set), "
                             f"got {parameter!r}")
        self.parameter = float(parameter)
        self.ground_frame = ground_frame
        self.buffer = buffer if ground_frame else None
        self.latest = latest

    @property
    def uses_tf(self) -> bool:
        return self.buffer is not None

    def resolve(self, camera_frame: str) -> HeightReading:
        """The height of the camera whose images carry ``camera_frame`` as header frame_id."""
        problem = None
        if self.buffer is not None:
            if not camera_frame:
                problem = "the image header has no frame_id to look up in TF"
            else:
                try:
                    transform = self.buffer.lookup_transform(self.ground_frame, camera_frame, self.latest)
                    return HeightReading(height_from_transform(transform), "tf")
                except Exception as error:  # tf2's Lookup/Connectivity/Extrapolation errors, or a bad height
                    problem = f"TF {self.ground_frame} → {camera_frame}: {type(error).__name__}: {error}"
        if self.parameter > 0:
            return HeightReading(self.parameter, "parameter", problem)
        return HeightReading(None, "none", problem)

    def describe(self) -> str:
        parts = []
        if self.buffer is not None:
            parts.append(f"TF {self.ground_frame} → image frame")
        if self.parameter > 0:
            parts.append(f"camera_height {self.parameter:g} m" + (" (fallback)" if parts else ""))
        return ", else ".join(parts) or "none"


@dataclass(frozen=True)
class ScaleStep:
    """What one frame got: factor (metres per model unit, None = the frame stays relative), new_timeline (the filter
    was reset before this frame), locked (the first frame with a factor since start or the last reset), reason (why
    the frame is relative; None when it has a factor)."""

    factor: float | None
    new_timeline: bool = False
    locked: bool = False
    reason: str | None = None


class CameraScaleState:
    """Everything one camera's camera-height scale needs between frames: its height source, the temporal filter
    (window, min_samples), the timeline and the counts the node reports.

    heights: where the camera's height comes from. window, min_samples: :class:`~sgdepth_ros.scale_filter.ScaleFilter`
    settings. config: the per-frame ground-plane fit (defaults when None). Thread-safe: the node's worker steps it
    while its executor thread reads diagnostics.
    """

    def __init__(self, heights: CameraHeight, window: int = 30, min_samples: int = 3,
                 config: GroundPlaneConfig | None = None):
        self.heights = heights
        self.filter = ScaleFilter(window=window, min_samples=min_samples)
        self.config = config or GroundPlaneConfig()
        self._source: CameraHeightScale | None = None  # rebuilt (sharing self.filter) when the height changes
        self._last_stamp: int | None = None
        self.timeline_resets = 0
        self.last_reading = HeightReading(None, "none")
        self.last_reason: str | None = "no frame yet"
        self._lock = threading.Lock()

    @property
    def state(self) -> ScaleState:
        with self._lock:
            return self.filter.state()

    @property
    def last_estimate(self) -> float | None:
        """The most recent frame's own (unfiltered) estimate, None when that frame gave none."""
        return self._source.last_estimate if self._source is not None else None

    def step(self, depth: np.ndarray, labels: np.ndarray | None, intrinsics: np.ndarray | None,
             stamp_ns: int | None = None, camera_frame: str = "") -> ScaleStep:
        """Feed one frame; returns its factor.

        depth: HxW float32 model units; labels: HxW uint8 trainIds (None: no estimate); intrinsics: 3×3 camera
        matrix of depth's size (None: no CameraInfo, the frame counts as missing); stamp_ns: header stamp (None for
        an unstamped frame: no timeline check); camera_frame: the header frame_id (for TF).
        """
        with self._lock:
            return self._step(depth, labels, intrinsics, stamp_ns, camera_frame)

    def _step(self, depth, labels, intrinsics, stamp_ns, camera_frame) -> ScaleStep:
        new_timeline = stamp_ns is not None and self._last_stamp is not None and stamp_ns < self._last_stamp
        if new_timeline:
            self.filter.reset()
            self.timeline_resets += 1
            if self._source is not None:
                self._source.last_estimate = self._source.last_plane = None
        if stamp_ns is not None:
            self._last_stamp = stamp_ns
        had_scale = self.filter.state().scale is not None
        reading = self.last_reading = self.heights.resolve(camera_frame)
        if reading.height is None:
            self.filter.update(None)
            reason = f"no camera height ({reading.problem or 'no source'})"
        else:
            source = self._source_for(reading)
            source.factor(depth, labels, intrinsics)  # None intrinsics or labels: counted as missing
            reason = self._relative_reason(intrinsics, labels, source.last_estimate)
        factor = self.filter.state().scale
        self.last_reason = None if factor is not None else reason
        return ScaleStep(factor, new_timeline, factor is not None and not had_scale, self.last_reason)

    def _source_for(self, reading: HeightReading) -> CameraHeightScale:
        source = self._source
        if source is None or source.camera_height != reading.height or source.source != reading.source:
            source = CameraHeightScale(reading.height, self.config, self.filter, reading.source)
            self._source = source
        return source

    def _relative_reason(self, intrinsics, labels, estimate) -> str:
        state = self.filter.state()
        if intrinsics is None:
            why = "no CameraInfo for this frame (the road plane needs the intrinsics)"
        elif labels is None:
            why = "no labels for this frame"
        elif estimate is None:
            why = "no usable road in view"
        else:
            why = "collecting road frames"
        return f"{why}; {state.samples} of {self.filter.min_samples} frames with road so far"

    def reset(self) -> None:
        """Forget the scale and the timeline (deactivate, cleanup)."""
        with self._lock:
            self.filter.reset()
            self._source = None
            self._last_stamp = None
            self.last_reason = "no frame yet"

    def diagnostics(self) -> dict[str, str]:
        """``scale/<key>`` → value strings for /diagnostics."""
        with self._lock:
            return self._diagnostics()

    def _diagnostics(self) -> dict[str, str]:
        state, reading = self.filter.state(), self.last_reading
        values = {
            "scale/mode": "camera_height",
            "scale/metric": "true" if state.scale is not None else "false",
            "scale/factor": f"{state.scale:.6g}" if state.scale is not None else "none",
            "scale/spread": f"{state.spread:.4g}",
            "scale/samples": str(state.samples),
            "scale/accepted": str(state.accepted),
            "scale/rejected": str(state.rejected),
            "scale/missing": str(state.missing),
            "scale/last_estimate": f"{self.last_estimate:.6g}" if self.last_estimate is not None else "none",
            "scale/camera_height_m": f"{reading.height:.4g}" if reading.height is not None else "none",
            "scale/height_source": reading.source,
            "scale/height_sources": self.heights.describe(),
            "scale/timeline_resets": str(self.timeline_resets),
        }
        if reading.problem:
            values["scale/height_problem"] = reading.problem
        if self.last_reason:
            values["scale/relative_because"] = self.last_reason
        return values

    def describe(self) -> str:
        state = self.state
        now = "no scale yet" if state.scale is None else f"now ×{state.scale:.4g} m/unit ±{100 * state.spread:.1f} %"
        return (f"metric from the camera height ({self.heights.describe()}) over the road plane, filter window "
                f"{self.filter.window}, {self.filter.min_samples} frames with road before the first metres; {now}")


def with_scale(prediction, factor: float):
    """``prediction`` (model-unit depth) with its depth multiplied by ``factor`` metres per model unit."""
    depth = None if prediction.depth is None else prediction.depth * np.float32(factor)
    return dataclasses.replace(prediction, depth=depth, is_metric=True, scale=float(factor))
