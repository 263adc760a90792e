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

Cameras: ``cameras`` names them (``[front, left, right, rear]``): one predictor serves them all, each camera with its
own topics under ``<camera>/``, its own state and diagnostics status; unset, the node serves one camera on today's
unprefixed topics.

Threads: the executor thread only validates stamps and hands each camera's newest message to the worker
(:class:`~.frame_scheduler.FrameScheduler`: newest frame per camera, the camera waiting longest first); the worker
takes up to ``batch_size`` waiting cameras at once, decodes, runs the predictor once for them and publishes, so a slow
model drops frames (counted per camera) instead of queueing stale ones, and no camera starves.

Each camera's state and per-frame steps live in its :class:`~.camera_channel.CameraChannel`, its publishers and
subscriptions in its :class:`~.camera_ports.CameraPorts`; this class keeps the parameters, lifecycle, the scheduler,
the worker and timers. Output → task tables: :mod:`.output_tasks`; the change_state guard: :mod:`.lifecycle_guard`.
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
from rclpy.parameter import Parameter

from . import messages
from .camera_channel import CameraChannel, render_settings, process_frames
from .camera_ports import CameraPorts
from .frame_scheduler import FrameScheduler
from .lifecycle_guard import guard_change_state
from .output_tasks import TOGGLES, reachable_task_sets
from .outputs import warm_up
from .params import PARAMS, PARAMS_BY_NAME, PER_CAMERA, camera_values, validate, validate_together
from .scale_state import CameraHeight, CameraScaleState, height_source_problem
from .stats import RateLimitedLog, diagnostic_level

NODE_NAME = "sgdepth"
_PARAM_TYPES = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
                float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING,
                tuple: ParameterType.PARAMETER_STRING_ARRAY}


class ParameterError(ValueError):
    """Start-up parameters that cannot be used (the message lists each with its valid range)."""


class SGDepthNode(LifecycleNode):
    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        self._camera_names: tuple[str, ...] = ()
        self._declare_parameters()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.predictor = None
        self._report = RateLimitedLog(self.get_logger().warning)
        self._channels = {name: self._make_channel(name) for name in self._camera_names or ("",)}
        self._ports: dict[str, CameraPorts] = {}
        self._scheduler = FrameScheduler()
        self._batch_size = 1
        self._worker: threading.Thread | None = None
        self._tf = None  # scale_mode camera_height with ground_frame: the TfListener
        self._diag_pub = None
        self._timers: list = []
        self._last_diag: dict[str, dict] = {}
        guard_change_state(self, self._report, self.get_logger().error)

    def _make_channel(self, name: str) -> CameraChannel:
        logger = self.get_logger()
        tag = f"{name}: " if name else ""
        return CameraChannel(name, lambda param: self._camera_param(name, param),
                             lambda line: logger.info(tag + line), lambda line: logger.warning(tag + line),
                             lambda: self._ports[name].info_publishers() if name in self._ports else 0)

    # ---- parameters -------------------------------------------------------------------------
    def _declare_parameters(self) -> None:
        errors = []
        for spec in PARAMS:
            errors += self._declare(spec.name, spec)
            if spec.name == "cameras" and not errors:
                value = self.get_parameter_or("cameras", Parameter("cameras", value=[])).value
                self._camera_names = tuple(value or ())
        for camera in self._camera_names:  # <camera>.<parameter>: default the node-wide value
            for name in PER_CAMERA:
                errors += self._declare(f"{camera}.{name}", PARAMS_BY_NAME[name], self._param(name))
        if not errors:
            errors = [r for r in [validate_together(self._values())] if r]
        if errors:
            raise ParameterError("invalid parameters: " + "; ".join(errors))

    def _declare(self, name: str, spec, default=None) -> list[str]:
        """Declare one parameter from its table entry; the errors of its start-up value ([] when fine)."""
        descriptor = ParameterDescriptor(description=spec.description, read_only=spec.read_only,
                                         additional_constraints=spec.valid_range(),
                                         type=_PARAM_TYPES[type(spec.default)])
        if isinstance(spec.default, float) and spec.low is not None:
            descriptor.floating_point_range = [FloatingPointRange(from_value=spec.low, to_value=spec.high)]
        elif isinstance(spec.default, int) and not isinstance(spec.default, bool) and spec.low is not None:
            descriptor.integer_range = [IntegerRange(from_value=int(spec.low), to_value=int(spec.high))]
        default = spec.default if default is None else default
        if isinstance(default, tuple):  # an empty list has no type of its own: declared typed, unset = empty
            default = Parameter.Type.STRING_ARRAY
        try:
            value = self.declare_parameter(name, default, descriptor).value
        except Exception as error:  # rclpy's type/range errors on a params-file value
            return [f"{name}: {error} (valid: {spec.valid_range()})"]
        reason = validate(name, value) if value is not None else None
        return [reason] if reason else []

    def _values(self) -> dict:
        names = [spec.name for spec in PARAMS if spec.name != "cameras"]
        names += [f"{camera}.{name}" for camera in self._camera_names for name in PER_CAMERA]
        return {name: self.get_parameter(name).value for name in names} | {"cameras": list(self._camera_names)}

    def _param(self, name: str):
        return self.get_parameter(name).value

    def _camera_param(self, camera: str, name: str):
        """A parameter's value as ``camera`` sees it (its own ``<camera>.<name>`` for the per-camera ones)."""
        return self._param(f"{camera}.{name}" if camera and name in PER_CAMERA else name)

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
                                  ego_motion=p["publish_odometry"], optimize=p["optimize"])
            if not measured:
                self._configure_camera_factors(p, predictor)
        except Exception as error:  # CheckpointError, BackendError, OSError, ValueError: one line, no traceback
            self.get_logger().error(f"configure failed: {type(error).__name__}: {error}")
            return TransitionCallbackReturn.FAILURE
        if predictor.device.type == "cpu" and p["device"] == "auto":
            self.get_logger().warning("no CUDA device: running on the CPU (slow); set device to silence this")
        if not predictor.trained:
            self.get_logger().warning("the checkpoint holds UNTRAINED weights: outputs are not depth or labels")
        relative = [name or "the camera" for name, channel in self._channels.items()
                    if not self._metric(channel, predictor)]
        if p["publish_odometry"] and relative:
            self.get_logger().warning(f"publish_odometry: depth is relative (no scale) for {', '.join(relative)}, "
                                      "so no odometry is published there; set scale_mode fixed/camera_height "
                                      "(odometry is never in model units)")
        self._batch_size = min(p["batch_size"] or (len(self._channels) if predictor.device.type == "cuda" else 1),
                               len(self._channels))
        # every task set the switched-on outputs can ask for (all outputs off: the default set)
        first = next(iter(self._channels.values()))
        task_sets = reachable_task_sets({key for key, toggle in TOGGLES.items() if p[toggle]},
                                        first.scale_tasks()) or [None]
        try:
            warmup_ms = warm_up(predictor, p["output_resolution"], render_settings(self._param), task_sets,
                                self._batch_size)
        except Exception as error:  # a backend that cannot run at all: fail configure, not the first frame
            self.get_logger().error(f"configure failed: warm-up prediction: {type(error).__name__}: {error}")
            return TransitionCallbackReturn.FAILURE
        for channel in self._channels.values():
            channel.stats.warmed_up(warmup_ms)
        sets = "; ".join("+".join(tasks) if tasks else "default" for tasks in task_sets)
        self.get_logger().info(f"model ready: {predictor.describe()}; warm-up ({len(task_sets)} prediction(s) at "
                               f"{predictor.input_size[0]}x{predictor.input_size[1]}: {sets}) {warmup_ms:.0f} ms; "
                               f"cameras: {', '.join(self._camera_names) or 'one'}, up to {self._batch_size} per "
                               "forward pass")
        for name, channel in self._channels.items():
            if channel.scale is not None:  # the predictor's "relative" above: the node scales each frame itself
                self.get_logger().info(f"{name + ': ' if name else ''}scale (applied per frame by the node): "
                                       f"{channel.scale.describe()}")
        self.predictor = predictor
        return TransitionCallbackReturn.SUCCESS

    def _configure_camera_factors(self, p: dict, predictor) -> None:
        """A camera with a scale_factor of its own gets its own constant scale source (ValueError naming the camera
        when it is not valid for scale_mode); the others use the predictor's."""
        from ..scale import resolve_scale

        for name, channel in self._channels.items():
            own = camera_values(p, name)["scale_factor"]
            try:
                channel.scale_source = (resolve_scale(p["scale_mode"], own or None, predictor.metadata,
                                                      p["model_path"]) if own != p["scale_factor"] else None)
            except ValueError as error:
                raise ValueError(f"camera {name}: {error}") from None

    @staticmethod
    def _metric(channel: CameraChannel, predictor) -> bool:
        """The camera's depth is in metres: a constant metric scale, or one measured per frame."""
        return (channel.scale_source or predictor.scale).is_metric or channel.scale is not None

    def _configure_scale(self, p: dict) -> bool:
        """scale_mode camera_height: each camera's scale state and its height source (TF only with tf2_ros); False
        (logged in one line) when a camera has no usable source."""
        from .tf_source import TfListener, tf2_available

        tf_ok = bool(p["ground_frame"]) and tf2_available()
        for name in self._channels:
            problem = height_source_problem(camera_values(p, name)["camera_height"], p["ground_frame"], tf_ok)
            if problem:
                self.get_logger().error(f"configure failed: {name + ': ' if name else ''}{problem}")
                return False
        if p["ground_frame"] and not tf_ok:
            self.get_logger().warning(f"ground_frame '{p['ground_frame']}' is set but tf2_ros cannot be imported (no "
                                      "system ROS 2 tf2): each camera's height is its camera_height parameter")
        self._stop_tf()
        self._tf = TfListener.start(self) if tf_ok else None
        for name, channel in self._channels.items():
            heights = CameraHeight(camera_values(p, name)["camera_height"], p["ground_frame"] if tf_ok else "",
                                   self._tf.buffer if self._tf else None, self._tf.latest if self._tf else None)
            channel.scale = CameraScaleState(heights, p["scale_window"], p["scale_min_samples"])
        return True

    def _stop_tf(self) -> None:
        if self._tf is not None:
            self._tf.stop()
            self._tf = None

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        p = self._values()
        for name, channel in self._channels.items():
            measured = channel.scale is not None
            if measured:
                channel.scale.reset()
            channel.ego = self.predictor.ego_motion_tracker() if p["publish_odometry"] else None
            self._ports[name] = CameraPorts(
                self, channel.prefix, lambda param, name=name: self._camera_param(name, param),
                self._metric(channel, self.predictor), measured, p["publish_odometry"],
                lambda msg, name=name: self._on_image(name, msg), channel.add_camera_info)
            channel.stamps.reset()
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._timers = [self.create_timer(p["diagnostics_period_sec"], self._publish_diagnostics)]
        if p["log_period_sec"] > 0:
            self._timers.append(self.create_timer(p["log_period_sec"], self._log_status))
        self._scheduler.reopen()
        self._worker = threading.Thread(target=self._work, name="sgdepth-inference", daemon=True)
        self._worker.start()
        for ports in self._ports.values():
            self.get_logger().info(f"active: {ports.image_sub.topic_name} → {', '.join(ports.topic_names())}")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_io()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_io()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        """Undo configure: the predictor, the TF listener, the cameras' scales."""
        self.predictor = None
        self._stop_tf()
        for channel in self._channels.values():
            channel.scale = channel.scale_source = None

    def _stop_io(self) -> None:
        """Stop the worker (after its current batch) and remove what activate created."""
        self._scheduler.close()
        if self._worker is not None:
            self._worker.join(timeout=30)
            self._worker = None
        for timer in self._timers:
            self.destroy_timer(timer)
        for ports in self._ports.values():
            ports.destroy(self)
        if self._diag_pub is not None:
            self.destroy_publisher(self._diag_pub)
        self._timers, self._ports, self._diag_pub = [], {}, None
        for channel in self._channels.values():
            channel.camera_infos.clear()

    # ---- executor thread: cheap checks only ----------------------------------------------------
    def _on_image(self, camera: str, msg) -> None:
        channel = self._channels[camera]
        channel.stats.received()
        frame = channel.admit(msg)
        if frame is None:
            return
        ports = self._ports.get(camera)
        if ports is None or not ports.wanted(channel.param):
            channel.stats.idle()
            return
        if self._scheduler.put(camera, frame) is not None:
            channel.stats.dropped()

    # ---- worker thread ---------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            batch = self._scheduler.take(self._batch_size)
            if not batch:
                return  # scheduler closed: deactivating
            try:
                self._process(batch)
            except Exception as error:  # never let one batch end the worker
                for camera, _ in batch:
                    self._channels[camera].reject("internal_error", f"{type(error).__name__}: {error}")

    def _process(self, batch: list) -> None:
        """Run one batch (camera, frame) and publish each camera's outputs on its own topics."""
        started = time.perf_counter()
        jobs = []
        for camera, frame in batch:
            channel = self._channels[camera]
            wanted = self._ports[camera].wanted(channel.param)
            if wanted:
                jobs.append((channel, frame, wanted))
            else:
                channel.stats.idle()
        results = process_frames(jobs, self.predictor, self._param("output_resolution"))
        for (channel, frame, _), out in zip(jobs, results):
            if out is None:
                continue
            self._ports[channel.name].publish(out.messages, out.metric)
            latency_ms = (self.get_clock().now().nanoseconds - frame.stamp_ns) / 1e6 if frame.stamped else None
            channel.stats.processed(latency_ms, out.timings, (time.perf_counter() - started) * 1e3)

    # ---- diagnostics -----------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        device = str(self.predictor.device) if self.predictor is not None else "unconfigured"
        stamp, node = self.get_clock().now().to_msg(), self.get_fully_qualified_name()
        statuses = []
        for name, channel in self._channels.items():
            snap = channel.stats.snapshot()
            previous, self._last_diag[name] = self._last_diag.get(name), snap
            level, summary = diagnostic_level(snap, previous, self._param("warn_input_output_ratio"))
            extra = channel.scale.diagnostics() if channel.scale is not None else None
            if extra is not None and extra["scale/metric"] == "false":
                summary += f"; depth relative (no camera-height scale yet: {extra.get('scale/relative_because', '')})"
            statuses.append(messages.diagnostics_status(
                snap, f"{node}/{name}: sgdepth inference" if name else f"{node}: sgdepth inference", device, level,
                summary, extra))
        self._diag_pub.publish(messages.diagnostics_array(statuses, stamp))

    def _log_status(self) -> None:
        for name, channel in self._channels.items():
            s = channel.stats.snapshot()
            errors = ", ".join(f"{k} {v}" for k, v in sorted(s["errors"].items())) or "none"
            timing = (f"latency p50 {s['latency_p50_ms']:.0f} p95 {s['latency_p95_ms']:.0f} ms, predict "
                      f"{s['predict_p50_ms']:.0f} ms (network {s['forward_p50_ms']:.0f} ms)"
                      if s["frames_processed"] else "no frame processed yet")
            idle = f", idle {s['frames_idle']} (no subscriber)" if s["frames_idle"] else ""
            self.get_logger().info(
                f"{name + ': ' if name else ''}in {s['input_rate_hz']:.1f} Hz, out {s['output_rate_hz']:.1f} Hz, "
                f"{timing}, dropped {s['frames_dropped']}{idle}, errors: {errors}{channel.scale_status()}")


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
