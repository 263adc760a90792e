"""Camera ego-motion from SGDepth's pose net, chained over consecutive processed frames (ROS-free).

    tracker = predictor.ego_motion_tracker()                 # one per camera
    pred = predictor.predict(rgb, ...)
    step = tracker.update(pred.network_input, pred.scale, stamp_ns)   # EgoStep, or None

Convention (one for the whole package, as in :mod:`sgdepth_ros.model.sgdepth` ``SGDepthPose`` and
``training/evaluation/pose.py``): the pose net called as ``pose(previous, current, invert=False)`` gives
T(previous ← current), the 4×4 transform mapping points of camera(t) into camera(t−1) — equivalently the pose of
camera(t) in camera(t−1)'s optical frame (x right, y down, z forward). Chaining ``pose = pose · rel`` gives
camera(t) → camera(origin), the camera's pose in the optical frame it had at the first frame of the timeline.

Units: the pose net's translation is in model units (the same unknown unit as the relative depth). A step is made
metric by multiplying its translation by the frame's scale (metres per model unit); rotation has no unit. Without
a scale nothing is returned: model units are never handed out as metres. Steps taken while no scale exists yet are
chained in model units and made metric with the first scale that arrives (translation composes linearly, so this
equals scaling each step by that factor). The result is raw dead reckoning of a two-frame network: it drifts
without bound and nothing here corrects it (see :mod:`sgdepth_ros.ros.odometry` for the covariance it is given).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .transforms import rotation_vector

PoseFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(previous, current): [N,3,H,W] normalised network inputs → [N,4,4] T(previous ← current), model units."""

DEFAULT_MAX_GAP_S = 1.0


@dataclass(frozen=True)
class EgoStep:
    """The camera's motion after one processed frame (float64, metres and radians).

    relative: 4×4 camera(t) → camera(t_prev), where t_prev is the frame of the previous returned step (or the
        timeline's first frame); spans more than one frame pair when frames in between had no scale.
    pose: 4×4 camera(t) → camera(origin), origin = the first frame of the current timeline.
    dt: seconds covered by ``relative`` (None when the frames had no stamps).
    distance: path length in metres chained since the origin (sum of the steps' translation norms).
    scale: metres per model unit applied to this step's translation.
    steps: frame pairs chained since the origin.
    """

    relative: np.ndarray
    pose: np.ndarray
    dt: float | None
    distance: float
    scale: float
    steps: int


def scale_translation(transform: np.ndarray, scale: float) -> np.ndarray:
    """4×4 rigid transform with its translation multiplied by ``scale`` (a copy, float64)."""
    out = np.array(transform, np.float64, copy=True)
    out[:3, 3] *= scale
    return out


class EgoMotion:
    """Accumulates one camera's ego-motion from the pose net (per-camera state: make one per camera).

    Args:
        pose_fn: runs the pose net, see :data:`PoseFn` (``Predictor.relative_pose``).
        max_gap_s: a gap between stamped frames longer than this starts a new timeline (the pose net sees two
            frames about one camera period apart in training; across a long gap its answer means nothing).
    """

    def __init__(self, pose_fn: PoseFn, max_gap_s: float = DEFAULT_MAX_GAP_S):
        if not max_gap_s > 0:
            raise ValueError(f"max_gap_s must be > 0, got {max_gap_s}")
        self.pose_fn = pose_fn
        self.max_gap_s = float(max_gap_s)
        self.resets = -1  # timelines started after the first (stamp jumped back, long gap, new size, reset())
        self.reset()

    def reset(self) -> None:
        """Start a new timeline: the next frame becomes the origin."""
        self._previous: np.ndarray | None = None  # [1,3,H,W] network input of the last frame
        self._previous_ns: int | None = None
        self._anchor_ns: int | None = None  # stamp of the frame ``pose`` ends at
        self._pending = np.eye(4)  # model-unit chain since the anchor (frames without a scale)
        self._pending_steps = 0
        self.pose = np.eye(4)  # camera(anchor) → camera(origin), metres
        self.distance = 0.0
        self.steps = 0
        self.resets += 1

    @property
    def started(self) -> bool:
        """A first frame (the origin) has been seen on this timeline."""
        return self._previous is not None

    def update(self, network_input: np.ndarray, scale: float | None, stamp_ns: int | None = None) -> EgoStep | None:
        """Feed one processed frame.

        network_input: [3,H,W] or [1,3,H,W] float32, the normalised network input of this frame (all frames of a
            tracker must have the same size). scale: metres per model unit for this frame, or None (relative).
        stamp_ns: the frame's stamp; a stamp not newer than the previous one, or a gap over ``max_gap_s``, starts
            a new timeline (this frame becomes the origin).
        Returns the step, or None: on the timeline's first frame and while there is no scale.
        """
        x = np.asarray(network_input, np.float32)
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or x.shape[:2] != (1, 3):
            raise ValueError(f"network_input must be [3,H,W] or [1,3,H,W], got {list(x.shape)}")
        if scale is not None and not (np.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a finite positive number of metres per model unit, got {scale}")
        if self._previous is not None and (x.shape != self._previous.shape or self._new_timeline(stamp_ns)):
            self.reset()
        if self._previous is None:
            self._previous, self._previous_ns, self._anchor_ns = x, stamp_ns, stamp_ns
            return None
        rel = _rigid(np.asarray(self.pose_fn(self._previous, x), np.float64).reshape(4, 4))
        self._previous, self._previous_ns = x, stamp_ns
        self._pending = _rigid(self._pending @ rel)
        self._pending_steps += 1
        if scale is None:
            return None
        relative = scale_translation(self._pending, float(scale))
        self.pose = _rigid(self.pose @ relative)  # no drift away from a rotation over long chains
        self.distance += float(np.linalg.norm(relative[:3, 3]))
        self.steps += self._pending_steps
        dt = None
        if stamp_ns is not None and self._anchor_ns is not None:
            dt = (stamp_ns - self._anchor_ns) / 1e9
        self._pending, self._pending_steps, self._anchor_ns = np.eye(4), 0, stamp_ns
        return EgoStep(relative, self.pose.copy(), dt, self.distance, float(scale), self.steps)

    def _new_timeline(self, stamp_ns: int | None) -> bool:
        if stamp_ns is None or self._previous_ns is None:
            return False
        return stamp_ns <= self._previous_ns or (stamp_ns - self._previous_ns) / 1e9 > self.max_gap_s


def _rigid(transform: np.ndarray) -> np.ndarray:
    """4×4 with its rotation block replaced by the nearest rotation (SVD projection), last row [0 0 0 1]."""
    if not np.all(np.isfinite(transform)):
        raise ValueError(f"the pose net gave a non-finite transform:\n{transform}")
    u, _, vt = np.linalg.svd(transform[:3, :3])
    out = np.eye(4)
    out[:3, :3] = u @ np.diag([1.0, 1.0, np.linalg.det(u @ vt)]) @ vt
    out[:3, 3] = transform[:3, 3]
    return out


@dataclass(frozen=True)
class OdometryNoise:
    """The standard deviations published with the ego-motion: deliberately large, NOT calibrated.

    No drift of a trained SGDepth pose net has been measured in this package (the shipped model has none), and a
    two-frame pose net with a filtered monocular scale has no error model of its own; these values only say
    "dead reckoning that drifts": position σ grows with the path length (``position_per_m`` = 0.2: 20 % of the
    distance travelled, the order of what self-supervised pose nets reach on KITTI odometry sequences without loop
    closure), rotation σ grows by 0.01 rad (0.57°) per metre, and a velocity σ is 30 % of its value plus a floor.
    A fusing filter (robot_localization, …) should therefore lean on every better source it has.
    """

    position_floor: float = 0.02  # m
    position_per_m: float = 0.2  # m per m travelled
    rotation_floor: float = 0.005  # rad
    rotation_per_m: float = 0.01  # rad per m travelled
    velocity_floor: float = 0.5  # m/s
    angular_floor: float = 0.05  # rad/s
    twist_fraction: float = 0.3  # of |v| and |ω|


def twist(step: EgoStep) -> tuple[np.ndarray, np.ndarray] | None:
    """(linear m/s, angular rad/s), each [3] in camera(t)'s optical frame, over ``step.dt``; None without a dt."""
    if step.dt is None or step.dt <= 0:
        return None
    R, t = step.relative[:3, :3], step.relative[:3, 3]
    return R.T @ t / step.dt, rotation_vector(R) / step.dt


def covariances(step: EgoStep, noise: OdometryNoise = OdometryNoise()) -> tuple[np.ndarray, np.ndarray]:
    """(pose covariance, twist covariance), each 6×6 float64 row-major over (x, y, z, rot x, rot y, rot z), as in
    nav_msgs/Odometry. Diagonal, from :class:`OdometryNoise`; the twist covariance is all zeros with element
    [0, 0] = −1 ("no estimate", the REP 145 convention) when the step has no dt."""
    sp = noise.position_floor + noise.position_per_m * step.distance
    sr = noise.rotation_floor + noise.rotation_per_m * step.distance
    pose_cov = np.diag([sp * sp] * 3 + [sr * sr] * 3)
    tw = twist(step)
    if tw is None:
        twist_cov = np.zeros((6, 6))
        twist_cov[0, 0] = -1.0
        return pose_cov, twist_cov
    sv = noise.velocity_floor + noise.twist_fraction * float(np.linalg.norm(tw[0]))
    sw = noise.angular_floor + noise.twist_fraction * float(np.linalg.norm(tw[1]))
    return pose_cov, np.diag([sv * sv] * 3 + [sw * sw] * 3)
