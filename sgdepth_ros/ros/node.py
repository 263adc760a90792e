"""``sgdepth_node``: the managed ROS 2 node, a thin adapter over :class:`sgdepth_ros.Predictor`.

    sgdepth_node --ros-args --params-file config/sgdepth.yaml -p model_path:=model.pth

Lifecycle: configure loads the model (a missing/corrupt checkpoint fails it with one clear
line) and warms it up (one prediction at the network size per task set the switched-on outputs
can ask for, so the first camera frame is served at steady-state speed), activate creates the subscriptions, publishers and the inference
worker, deactivate and cleanup undo them. ``autostart`` (default true) configures and activates
at start. A ``change_state`` request with a transition that is not valid in the current state is
answered success=false (rclpy ≤ 7.1 raised out of the executor and ended the process).

Importing this module and creating the node do not import torch: configure does (start-up
parameter errors are reported without loading it).

Threads: the executor thread only validates stamps and hands the newest message to the worker
(:class:`LatestSlot`); the worker decodes, runs the predictor and publishes, so a slow model
drops frames (counted) instead of queueing stale ones.

The camera's state and per-frame steps live in its :class:`~.camera_channel.CameraChannel`; this class keeps the
parameters, lifecycle, publishers, subscriptions and timers. Output → task tables: :mod:`.output_tasks`; the
change_state guard: :mod:`.lifecycle_guard`.
"""
from __future__ import annotations

import signal
import sys
import threading
import time

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType,
                                SetParametersResult)
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

try:  # rclpy ≥ Iron
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Float32, String

from . import messages
from .camera_channel import CameraChannel, Frame, render_settings
from .lifecycle_guard import guard_change_state
from .output_tasks import TOGGLES, reachable_task_sets
from .outputs import warm_up
from .params import PARAMS, validate, validate_together
from .scale_state import CameraHeight, CameraScaleState, height_source_problem
from .stats import NodeStats, RateLimitedLog, diagnostic_level

NODE_NAME = "sgdepth"
_PARAM_TYPES = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
                float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING}


class ParameterError(ValueError):
    """Start-up parameters that cannot be used (the message lists each with its valid range)."""


def _qos(reliability: str, depth: int) -> QoSProfile:
    policy = ReliabilityPolicy.BEST_EFFORT if reliability == "best_effort" else ReliabilityPolicy.RELIABLE
    return QoSProfile(reliability=policy, history=HistoryPolicy.KEEP_LAST, depth=depth)


class SGDepthNode(LifecycleNode):
    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        self._declare_parameters()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.predictor = None
        self.stats = NodeStats()
        self._report = RateLimitedLog(self.get_logger().warning)
        logger = self.get_logger()
        self._channel = CameraChannel(self._param, self._reject, logger.info, logger.warning,
                                      lambda: self._info_sub.get_publisher_count())
        self._worker: threading.Thread | None = None
        self._pubs: dict = {}  # output key → publisher (depth, points: the metric topic when the scale is measured)
        self._relative_pubs: dict = {}  # scale_mode camera_height: depth, points → their relative topics
        self._tf = None  # scale_mode camera_height with ground_frame: the TfListener
        self._other_pubs: list = []  # labels metadata, diagnostics
        self._subs: list = []
        self._timers: list = []
        self._info_sub = None
        self._last_diag: dict | None = None
        guard_change_state(self, self._report, self.get_logger().error)

    # ---- parameters -------------------------------------------------------------------------
    def _declare_parameters(self) -> None:
        errors = []
        for spec in PARAMS:
            descriptor = ParameterDescriptor(description=spec.description, read_only=spec.read_only,
                                             additional_constraints=spec.valid_range(),
                                             type=_PARAM_TYPES[type(spec.default)])
            if isinstance(spec.default, float) and spec.low is not None:
                descriptor.floating_point_range = [FloatingPointRange(from_value=spec.low, to_value=spec.high)]
            elif isinstance(spec.default, int) and not isinstance(spec.default, bool) and spec.low is not None:
                descriptor.integer_range = [IntegerRange(from_value=int(spec.low), to_value=int(spec.high))]
            try:
                value = self.declare_parameter(spec.name, spec.default, descriptor).value
            except Exception as error:  # rclpy's type/range errors on a params-file value
                errors.append(f"{spec.name}: {error} (valid: {spec.valid_range()})")
                continue
            reason = validate(spec.name, value)
            if reason:
                errors.append(reason)
        if not errors:
            errors = [r for r in [validate_together(self._values())] if r]
        if errors:
            raise ParameterError("invalid parameters: " + "; ".join(errors))

    def _values(self) -> dict:
        return {spec.name: self.get_parameter(spec.name).value for spec in PARAMS}

    def _param(self, name: str):
        return self.get_parameter(name).value

    def _on_set_parameters(self, changes) -> SetParametersResult:
        values = self._values()
        for change in changes:
            reason = validate(change.name, change.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
            values[change.name] = change.value
        reason = validate_together(values)
        return SetParametersResult(successful=reason is None, reason=reason or "")

    @property
    def autostart(self) -> bool:
        return bool(self._param("autostart"))

    # ---- lifecycle ---------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        from ..predictor import Predictor  # torch is imported here, not at node start

        p = self._values()
        path = p["model_path"]
        if not path:
            self.get_logger().error("configure failed: set the parameter model_path to a checkpoint "
                                    "(.safetensors of sgdepth_ros or a released SGDepth model.pth)")
            return TransitionCallbackReturn.FAILURE
        size = (p["input_width"], p["input_height"]) if p["input_width"] and p["input_height"] else None
        measured = p["scale_mode"] == "camera_height"
        if measured and not self._configure_scale(p):
            return TransitionCallbackReturn.FAILURE
        # the scale follows the one rule of sgdepth_ros.scale (auto/fixed/relative); camera_height: the predictor
        # gives model units and the node scales each frame after pairing its CameraInfo (CameraScaleState)
        try:
            predictor = Predictor(path, device=p["device"], precision=p["precision"], input_size=size,
                                  backend=p["backend"], scale_mode="relative" if measured else p["scale_mode"],
                                  scale_factor=p["scale_factor"] or None, threads=p["cpu_threads"] or None,
                                  ego_motion=p["publish_odometry"])
        except Exception as error:  # CheckpointError, BackendError, OSError, …: one line, no traceback
            self.get_logger().error(f"configure failed: {type(error).__name__}: {error}")
            return TransitionCallbackReturn.FAILURE
        if predictor.device.type == "cpu" and p["device"] == "auto":
            self.get_logger().warning("no CUDA device: running on the CPU (slow); set device to silence this")
        if not predictor.trained:
            self.get_logger().warning("the checkpoint holds UNTRAINED weights: outputs are not depth or labels")
        if p["publish_odometry"] and not (predictor.is_metric or measured):
            self.get_logger().warning("publish_odometry: depth is relative (no scale), so no odometry is published; "
                                      "set scale_mode fixed/camera_height (odometry is never in model units)")
        # every task set the switched-on outputs can ask for (all outputs off: the default set)
        task_sets = reachable_task_sets({key for key, toggle in TOGGLES.items() if p[toggle]},
                                        self._channel.scale_tasks()) or [None]
        try:
            warmup_ms = warm_up(predictor, p["output_resolution"], render_settings(self._param), task_sets)
        except Exception as error:  # a backend that cannot run at all: fail configure, not the first frame
            self.get_logger().error(f"configure failed: warm-up prediction: {type(error).__name__}: {error}")
            return TransitionCallbackReturn.FAILURE
        self.stats.warmed_up(warmup_ms)
        sets = "; ".join("+".join(tasks) if tasks else "default" for tasks in task_sets)
        self.get_logger().info(f"model ready: {predictor.describe()}; warm-up ({len(task_sets)} prediction(s) at "
                               f"{predictor.input_size[0]}x{predictor.input_size[1]}: {sets}) {warmup_ms:.0f} ms")
        if self._channel.scale is not None:  # the predictor's "relative" above: the node scales each frame itself
            self.get_logger().info(f"scale (applied per frame by the node): {self._channel.scale.describe()}")
        self.predictor = predictor
        return TransitionCallbackReturn.SUCCESS

    def _configure_scale(self, p: dict) -> bool:
        """scale_mode camera_height: the camera's scale state and its height source (TF only with tf2_ros); False
        (logged in one line) when there is no usable source."""
        from .tf_source import TfListener, tf2_available

        tf_ok = bool(p["ground_frame"]) and tf2_available()
        problem = height_source_problem(p["camera_height"], p["ground_frame"], tf_ok)
        if problem:
            self.get_logger().error(f"configure failed: {problem}")
            return False
        if p["ground_frame"] and not tf_ok:
            self.get_logger().warning(f"ground_frame '{p['ground_frame']}' is set but tf2_ros cannot be imported (no "
                                      f"system ROS 2 tf2): the camera height is camera_height {p['camera_height']:g} m")
        self._stop_tf()
        self._tf = TfListener.start(self) if tf_ok else None
        heights = CameraHeight(p["camera_height"], p["ground_frame"] if tf_ok else "",
                               self._tf.buffer if self._tf else None, self._tf.latest if self._tf else None)
        self._channel.scale = CameraScaleState(heights, p["scale_window"], p["scale_min_samples"])
        return True

    def _stop_tf(self) -> None:
        if self._tf is not None:
            self._tf.stop()
            self._tf = None

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        p = self._values()
        metric = self.predictor.is_metric or self._channel.scale is not None
        out_qos = _qos(p["output_qos_reliability"], p["output_qos_depth"])
        self._pubs = {key: self.create_publisher(kind, topic, out_qos)
                      for key, (topic, kind) in messages.output_topics(metric).items()}
        if self._channel.scale is not None:  # each frame goes to the metric or the relative topic, by its own scale
            self._relative_pubs = {key: self.create_publisher(kind, topic, out_qos)
                                   for key, (topic, kind) in messages.relative_topics().items()}
            self._pubs["scale"] = self.create_publisher(Float32, messages.SCALE_TOPIC, out_qos)
            self._channel.scale.reset()
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        labels_pub = self.create_publisher(String, "semantic/labels", latched)
        labels_pub.publish(messages.labels_message())
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._channel.ego = None
        if p["publish_odometry"]:  # nav_msgs is imported only when asked for
            from .odometry import Odometry
            self._pubs["odometry"] = self.create_publisher(Odometry, "odometry", out_qos)
            self._channel.ego = self.predictor.ego_motion_tracker()
        self._other_pubs = [labels_pub, self._diag_pub]
        in_qos = _qos(p["input_qos_reliability"], p["input_qos_depth"])
        if p["input_transport"] == "compressed":
            image_sub = self.create_subscription(CompressedImage, "image/compressed", self._on_image, in_qos)
        else:
            image_sub = self.create_subscription(Image, "image", self._on_image, in_qos)
        self._info_sub = self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, in_qos)
        # a second, transient-local subscription receives a latched CameraInfo published before the node started
        # (a volatile one only gets later messages); volatile publishers cannot match it, which is silenced
        latched_info = self.create_subscription(
            CameraInfo, "camera_info", self._on_camera_info, latched,
            event_callbacks=SubscriptionEventCallbacks(incompatible_qos=lambda event: None))
        self._subs = [image_sub, self._info_sub, latched_info]
        self._timers = [self.create_timer(p["diagnostics_period_sec"], self._publish_diagnostics)]
        if p["log_period_sec"] > 0:
            self._timers.append(self.create_timer(p["log_period_sec"], self._log_status))
        self._channel.stamps.reset()
        self._channel.slot.reopen()
        self._worker = threading.Thread(target=self._work, name="sgdepth-inference", daemon=True)
        self._worker.start()
        topics = [pub.topic_name for pub in [*self._pubs.values(), *self._relative_pubs.values()]]
        self.get_logger().info(f"active: {image_sub.topic_name} → {', '.join(topics)}")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_io()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.predictor = None
        self._stop_tf()
        self._channel.scale = None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_io()
        self.predictor = None
        self._stop_tf()
        self._channel.scale = None
        return TransitionCallbackReturn.SUCCESS

    def _stop_io(self) -> None:
        """Stop the worker (after its current frame) and remove what activate created."""
        self._channel.slot.close()
        if self._worker is not None:
            self._worker.join(timeout=30)
            self._worker = None
        for timer in self._timers:
            self.destroy_timer(timer)
        for sub in self._subs:
            self.destroy_subscription(sub)
        for pub in [*self._pubs.values(), *self._relative_pubs.values(), *self._other_pubs]:
            self.destroy_publisher(pub)
        self._timers, self._subs, self._pubs, self._other_pubs, self._info_sub = [], [], {}, [], None
        self._relative_pubs = {}
        self._channel.camera_infos.clear()

    # ---- executor thread: cheap checks only ----------------------------------------------------
    def _on_image(self, msg) -> None:
        self.stats.received()
        frame = self._channel.admit(msg)
        if frame is None:
            return
        if not self._wanted():
            self.stats.idle()
            return
        if self._channel.slot.put(frame) is not None:
            self.stats.dropped()

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._channel.add_camera_info(msg)

    def _reject(self, kind: str, message: str) -> None:
        self.stats.error(kind)
        self._report(kind, message)

    def _wanted(self) -> set[str]:
        """Outputs that are switched on and have at least one subscriber (on either of their topics, for depth and
        points while the scale is measured)."""
        return {key for key, pub in self._pubs.items()
                if self._param(TOGGLES[key]) and (pub.get_subscription_count() > 0 or (
                    key in self._relative_pubs and self._relative_pubs[key].get_subscription_count() > 0))}

    # ---- worker thread ---------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            frame = self._channel.slot.take()
            if frame is None:
                return  # slot closed: deactivating
            try:
                self._process(frame)
            except Exception as error:  # never let one frame end the worker
                self._reject("internal_error", f"{type(error).__name__}: {error}")

    def _process(self, frame: Frame) -> None:
        started = time.perf_counter()
        wanted = self._wanted()
        if not wanted:
            self.stats.idle()
            return
        out = self._channel.process(frame, wanted, self.predictor)
        if out is None:
            return
        for key, msg in out.messages:
            if key == "scale" and key not in self._pubs:
                continue
            relative = key in self._relative_pubs and not out.metric
            (self._relative_pubs if relative else self._pubs)[key].publish(msg)
        latency_ms = (self.get_clock().now().nanoseconds - frame.stamp_ns) / 1e6 if frame.stamped else None
        self.stats.processed(latency_ms, out.timings, (time.perf_counter() - started) * 1e3)

    # ---- diagnostics -----------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        snap = self.stats.snapshot()
        previous, self._last_diag = self._last_diag, snap
        level, summary = diagnostic_level(snap, previous, self._param("warn_input_output_ratio"))
        device = str(self.predictor.device) if self.predictor is not None else "unconfigured"
        extra = self._channel.scale.diagnostics() if self._channel.scale is not None else None
        if extra is not None and extra["scale/metric"] == "false":
            summary += f"; depth relative (no camera-height scale yet: {extra.get('scale/relative_because', '')})"
        self._diag_pub.publish(messages.diagnostics_message(
            snap, self.get_clock().now().to_msg(), f"{self.get_fully_qualified_name()}: sgdepth inference", device,
            level, summary, extra))

    def _log_status(self) -> None:
        s = self.stats.snapshot()
        errors = ", ".join(f"{k} {v}" for k, v in sorted(s["errors"].items())) or "none"
        timing = (f"latency p50 {s['latency_p50_ms']:.0f} p95 {s['latency_p95_ms']:.0f} ms, predict "
                  f"{s['predict_p50_ms']:.0f} ms (network {s['forward_p50_ms']:.0f} ms)"
                  if s["frames_processed"] else "no frame processed yet")
        idle = f", idle {s['frames_idle']} (no subscriber)" if s["frames_idle"] else ""
        self.get_logger().info(
            f"in {s['input_rate_hz']:.1f} Hz, out {s['output_rate_hz']:.1f} Hz, {timing}, "
            f"dropped {s['frames_dropped']}{idle}, errors: {errors}{self._channel.scale_status()}")


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(args=None) -> int:
    """Run the node until SIGINT/SIGTERM (exit 0). Exit 1: autostart configure/activate failed
    (the reason is logged); exit 2: invalid start-up parameters."""
    signal.signal(signal.SIGTERM, _interrupt)  # until rclpy.init takes over: SIGTERM while starting exits 0
    node = None
    try:
        rclpy.init(args=args)
        node = SGDepthNode()
        if node.autostart and (node.trigger_configure() != TransitionCallbackReturn.SUCCESS
                               or node.trigger_activate() != TransitionCallbackReturn.SUCCESS):
            return 1
        rclpy.spin(node)
        return 0
    except ParameterError as error:
        print(f"sgdepth_node: {error}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    except Exception:
        if rclpy.ok():
            raise
        return 0  # a signal shut the context down while the node was starting: a clean exit
    finally:
        steps = (node._stop_io, node.destroy_node) if node is not None else ()
        for step in (*steps, rclpy.try_shutdown):
            try:
                step()
            except Exception as error:  # shutting down anyway: report, never mask the exit code
                print(f"sgdepth_node: during shutdown, {step.__name__}: {error}", file=sys.stderr)


def console_main() -> None:
    """Console-script entry point (``sgdepth_node``, ``ros2 run sgdepth_ros sgdepth_node``)."""
    sys.exit(main())


if __name__ == "__main__":
    console_main()
