"""One camera's state and per-frame processing, for the node (no rclpy: the node owns the ROS endpoints).

A :class:`CameraChannel` holds everything that belongs to one camera: its name, statistics (:class:`NodeStats`) and
rate-limited error log, its stamp order (:class:`StampOrder`), its CameraInfo pairing (:class:`CameraInfoPairing`),
its constant scale source (a per-camera ``scale_factor``) or camera-height scale state (:class:`CameraScaleState`,
``scale_mode: camera_height`` only), the ego-motion tracker (``publish_odometry`` only) and the distortion-warned
flag. The node keeps publishers, subscriptions, timers, parameters, the lifecycle and the frame scheduler, hands the
channel each message and publishes what :func:`process_frames` returns.

Per batch of frames (worker thread, one frame per camera): decode each → one prediction for all (only the tails the
wanted outputs need) → per frame: pair the CameraInfo (after inference: it has had the inference time to arrive) →
scale (camera_height) → render → the ROS messages to publish (built by :mod:`messages`, :mod:`outputs`,
:mod:`odometry`). A frame that cannot be decoded is rejected on its own camera; the others of the batch go on.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from sensor_msgs.msg import CompressedImage

from . import messages
from .camera_model import has_distortion, scale_geometry
from .image_codec import InputError, decode_compressed, image_message_to_rgb
from .output_tasks import scale_tasks, tasks_for_outputs
from .outputs import RenderSettings, render
from .scale_state import CameraScaleState, with_scale
from .stats import NodeStats, RateLimitedLog, StampOrder, stamp_problem
from .sync import CameraInfoPairing, stamp_ns


@dataclass
class Frame:
    """An image message accepted by the executor thread; ``stamp_ns``: its header stamp in nanoseconds."""
    msg: object
    stamp_ns: int
    stamped: bool = True  # False: a zero header stamp (served, but no latency sample)


@dataclass
class FrameOutput:
    """What one processed frame publishes: ``messages`` (output key, ROS message) in publish order (scale factor,
    the rendered outputs, odometry); ``metric``: depth and points are in metres (False while a measured scale has
    none yet: they go to their relative topics); ``timings``: the prediction's stage times in ms."""
    messages: list[tuple[str, Any]] = field(default_factory=list)
    metric: bool = False
    timings: dict = field(default_factory=dict)


def render_settings(param: Callable[[str], Any]) -> RenderSettings:
    """The render settings from the node's current parameter values (``param(name)`` → value)."""
    return RenderSettings(**{name: param(name) for name in RenderSettings.__dataclass_fields__})


class CameraChannel:
    """One camera: its state and the per-frame steps that need no node.

    name: the camera's name ("" for the node's single unnamed camera); param: the current value of a parameter by
    name, as this camera sees it (its own overrides applied); info/warning: log one line; info_publishers: the
    number of camera_info publishers (asked only when a frame needs its CameraInfo: with none, an unmatched frame is
    not an error and nothing is waited for). Rejected messages are counted in ``stats`` and logged (rate-limited per
    kind) through ``warning``.
    """

    def __init__(self, name: str, param: Callable[[str], Any], info: Callable[[str], None],
                 warning: Callable[[str], None], info_publishers: Callable[[], int]):
        self.name = name
        self.param, self._info, self._warning = param, info, warning  # param(name): this camera's value
        self._info_publishers = info_publishers
        self.stats = NodeStats()
        self._report = RateLimitedLog(warning)
        self.stamps = StampOrder()
        self.camera_infos = CameraInfoPairing()
        self.scale_source = None  # a constant ScaleSource of this camera's own (per-camera scale_factor), or None
        self.scale: CameraScaleState | None = None  # scale_mode camera_height: this camera's scale state
        self.ego = None  # publish_odometry: the predictor's ego-motion tracker
        self.distortion_warned = False
        self._scale_log = RateLimitedLog(info, period_s=10.0)

    @property
    def prefix(self) -> str:
        """The camera's topic prefix: "<name>/", or "" for the unnamed single camera."""
        return f"{self.name}/" if self.name else ""

    def reject(self, kind: str, message: str) -> None:
        """Count an error kind on this camera and log it (rate-limited per kind)."""
        self.stats.error(kind)
        self._report(kind, message)

    def scale_tasks(self) -> tuple[str, ...]:
        """What this camera's scale adds to every prediction that runs depth (camera_height: the road labels)."""
        return scale_tasks(self.scale is not None)

    # ---- executor thread: cheap checks only ----------------------------------------------------
    def admit(self, msg) -> Frame | None:
        """Check an image's stamp (malformed: rejected; not newer than the previous one: rejected; zero: counted,
        served); the frame to hand to the worker, or None."""
        sec, nanosec = msg.header.stamp.sec, msg.header.stamp.nanosec
        problem = stamp_problem(sec, nanosec)
        if problem == "bad_stamp":
            self.reject(problem, f"image stamp sec={sec} nanosec={nanosec} is malformed (need sec ≥ 0 and "
                         "nanosec < 1e9); frame skipped")
            return None
        stamp = stamp_ns(msg.header)
        if problem == "zero_stamp":  # served (tf reads stamp 0 as 'latest'), counted, no order check or latency
            self.reject(problem, "image stamp is 0: the driver does not stamp its frames; outputs carry stamp 0 "
                         "and no latency is measured")
        else:
            kind = self.stamps.check(stamp)
            if kind:
                self.reject(kind, f"image stamp {stamp} ns is not newer than the previous one; frame skipped")
                return None
        return Frame(msg, stamp, stamped=problem is None)

    def add_camera_info(self, msg) -> None:
        """Keep a CameraInfo for pairing (a malformed one is rejected; its image pairs with it, uncounted)."""
        sec, nanosec = msg.header.stamp.sec, msg.header.stamp.nanosec
        if stamp_problem(sec, nanosec) == "bad_stamp":  # no pairing key: counted here, never again as unmatched
            self.reject("bad_stamp", f"camera_info stamp sec={sec} nanosec={nanosec} is malformed; discarded")
            return
        try:
            geometry = messages.camera_info_geometry(msg)
        except InputError as error:
            self.reject(error.kind, f"camera_info discarded: {error}")
            self.camera_infos.add_rejected(stamp_ns(msg.header))
            return
        if has_distortion(msg.d) and not self.distortion_warned:
            self.distortion_warned = True
            self._warning(f"camera_info has non-zero distortion D={list(msg.d)}: sgdepth never undistorts and "
                          "projects with P, so subscribe it to the rectified image (image_rect); warned once")
        self.camera_infos.add(stamp_ns(msg.header), geometry.width, geometry.height, (msg, geometry))

    # ---- worker thread ---------------------------------------------------------------------------
    def decode(self, frame: Frame):
        """The frame's image as HxWx3 uint8 RGB, or None (rejected with its kind: too large, malformed)."""
        try:
            if isinstance(frame.msg, CompressedImage):
                return decode_compressed(frame.msg.data, self.param("max_image_pixels"), frame.msg.format)
            return image_message_to_rgb(frame.msg, self.param("max_image_pixels"))
        except InputError as error:
            self.reject(error.kind, f"image discarded: {error}")
            return None

    def tasks(self, wanted: set[str]) -> tuple[str, ...]:
        """The network tasks this camera's ``wanted`` outputs (and its scale) need."""
        return tasks_for_outputs(wanted, self.scale_tasks())

    def finish(self, frame: Frame, rgb, prediction, wanted: set[str]) -> FrameOutput:
        """Pair, scale and render one predicted frame (``rgb``: its decoded image) for the ``wanted`` output keys."""
        out = FrameOutput()
        # paired after inference: a CameraInfo sent with the image has had the inference time to arrive
        measuring = self.scale is not None and prediction.depth is not None
        camera = (self._camera_for(frame, rgb.shape[1], rgb.shape[0])
                  if measuring or wanted & {"depth_info", "points"} else None)
        height, width = (prediction.depth if prediction.depth is not None else prediction.labels).shape
        geometry = scale_geometry(camera[1], width, height) if camera else None
        if measuring:  # model units → metres with this camera's filtered scale, when it has one
            prediction = self._measure_scale(frame, prediction, geometry, out)
        outputs = render(prediction, wanted, render_settings(self.param), geometry)
        out.messages += messages.output_messages(outputs, frame.msg.header, camera[0] if camera else None,
                                                 geometry, wanted).items()
        if "odometry" in wanted:
            self._odometry(frame, prediction, out)
        out.metric, out.timings = prediction.is_metric, prediction.timings
        return out

    def _odometry(self, frame: Frame, prediction, out: FrameOutput) -> None:
        """Chain this frame's ego-motion; publish it when the frame has a scale (never model units as metres)."""
        from .odometry import odometry_message

        step = self.ego.update(prediction.network_input, prediction.scale, frame.stamp_ns if frame.stamped else None)
        if step is not None:
            out.messages.append(("odometry", odometry_message(step, frame.msg.header, self.param("odom_frame"))))

    def _measure_scale(self, frame: Frame, prediction, geometry, out: FrameOutput):
        """Feed this camera's scale state one frame (model-unit depth, labels, the output-size camera matrix or None
        without a CameraInfo); returns the prediction in metres when a scale exists, else unchanged (relative)."""
        step = self.scale.step(prediction.depth, prediction.labels, geometry.matrix if geometry else None,
                               frame.stamp_ns if frame.stamped else None, frame.msg.header.frame_id)
        if step.new_timeline:
            self._info("stamps jumped back (a new timeline: bag loop, simulator reset): camera-height "
                       "scale filter reset; depth is relative until it has road frames again")
        reading = self.scale.last_reading
        if reading.problem:
            self._scale_log("scale_height", f"camera height: {reading.problem}; "
                            + ("using camera_height" if reading.source == "parameter" else "frame not measured"))
        if step.factor is None:
            self._scale_log("scale_relative", f"depth and points go to depth/relative and points/relative (model "
                            f"units): no camera-height scale yet ({step.reason})")
            return prediction
        if step.locked:
            state = self.scale.state
            self._info(f"camera-height scale ×{step.factor:.4g} m/unit (±{100 * state.spread:.1f} %, "
                       f"{state.samples} frames, camera {reading.height:g} m from {reading.source}): "
                       "depth and points now in metres")
        out.messages.append(("scale", messages.scale_message(step.factor)))
        return with_scale(prediction, step.factor)

    def _camera_for(self, frame: Frame, width: int, height: int):
        """The (CameraInfo, geometry) paired with this frame's stamp and size, or None."""
        publishers = self._info_publishers() > 0
        result = self.camera_infos.pair(  # the rule lives in sync.CameraInfoPairing (replay uses it too)
            frame.stamp_ns, width, height, int(self.param("camera_info_tolerance_sec") * 1e9),
            self.param("camera_info_fallback_latest"), self.param("camera_info_wait_sec") if publishers else 0.0)
        if result.how == "camera_info_size" or (result.how == "camera_info_unmatched" and publishers):
            self.reject(result.how, f"{result.reason}; depth/camera_info and points skipped for this frame")
        return result.item

    # ---- status ----------------------------------------------------------------------------------
    def scale_status(self) -> str:
        """The scale part of the periodic status line ("" without a measured scale)."""
        if self.scale is None:
            return ""
        state = self.scale.state
        return (f", scale ×{state.scale:.4g} ±{100 * state.spread:.1f} %" if state.scale is not None
                else ", scale: none yet (depth relative)")


def process_frames(jobs: list[tuple[CameraChannel, Frame, set[str]]], predictor,
                   output_resolution: str) -> list[FrameOutput | None]:
    """One batch: (channel, frame, wanted output keys) per camera → each frame's FrameOutput, or None for a frame
    that was discarded (rejected on its own camera with its kind: bad image, inference error, render error).

    The decoded images run in one ``predictor.predict_batch`` call with the union of the tasks the cameras need (a
    camera's outputs render only what it wants) and each camera's own scale source; outputs come back at each
    camera's own size with ``output_resolution`` "input". A frame that cannot be decoded leaves the batch alone."""
    results: list[FrameOutput | None] = [None] * len(jobs)
    decoded = [(i, rgb) for i, (channel, frame, _) in enumerate(jobs) if (rgb := channel.decode(frame)) is not None]
    if not decoded:
        return results
    tasks = tuple(sorted(set().union(*(jobs[i][0].tasks(jobs[i][2]) for i, _ in decoded))))
    try:
        predictions = predictor.predict_batch([rgb for _, rgb in decoded], output_resolution=output_resolution,
                                              tasks=tasks, scales=[jobs[i][0].scale_source for i, _ in decoded])
    except Exception as error:
        for i, _ in decoded:
            jobs[i][0].reject("inference_error", f"{type(error).__name__}: {error}")
        return results
    for (i, rgb), prediction in zip(decoded, predictions):
        channel, frame, wanted = jobs[i]
        try:
            results[i] = channel.finish(frame, rgb, prediction, wanted)
        except Exception as error:  # one camera's bad frame (geometry, render) never costs the others theirs
            channel.reject("internal_error", f"{type(error).__name__}: {error}")
    return results
