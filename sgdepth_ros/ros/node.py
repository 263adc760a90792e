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
"""
from __future__ import annotations

import itertools
import signal
import sys
import threading
import time
from dataclasses import dataclass

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
from std_msgs.msg import String

from . import messages
from .camera_model import has_distortion, scale_geometry
from .frame_slot import LatestSlot
from .image_codec import InputError, decode_compressed, image_message_to_rgb
from .outputs import RenderSettings, render, warm_up
from .params import PARAMS, validate, validate_together
from .stats import NodeStats, RateLimitedLog, StampOrder, diagnostic_level, stamp_problem
from .sync import CameraInfoPairing, stamp_ns

NODE_NAME = "sgdepth"
_TOGGLES = {"depth": "publish_depth", "depth_info": "publish_depth", "depth_color": "publish_depth_color",
            "semantic": "publish_semantic", "semantic_color": "publish_semantic_color",
            "overlay": "publish_overlay", "points": "publish_points"}
# network tasks each output needs (the point cloud carries a label field, so it needs both)
_OUTPUT_TASKS = {"depth": ("depth",), "depth_info": ("depth",), "depth_color": ("depth",),
                 "semantic": ("segmentation",), "semantic_color": ("segmentation",), "overlay": ("segmentation",),
                 "points": ("depth", "segmentation")}
_PARAM_TYPES = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
                float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING}


class ParameterError(ValueError):
    """Start-up parameters that cannot be used (the message lists each with its valid range)."""


@dataclass
class _Frame:
    msg: object
    stamp_ns: int
    stamped: bool = True  # False: a zero header stamp (served, but no latency sample)


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
        self._stamps = StampOrder()
        self._camera_infos = CameraInfoPairing()
        self._distortion_warned = False
        self._slot = LatestSlot()
        self._worker: threading.Thread | None = None
        self._pubs: dict = {}  # output key → publisher
        self._other_pubs: list = []  # labels metadata, diagnostics
        self._subs: list = []
        self._timers: list = []
        self._info_sub = None
        self._last_diag: dict | None = None
        self._guard_change_state()

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
    def _guard_change_state(self) -> None:
        """Answer success=false to a ``~/change_state`` request that is not valid in the current state.

        rclpy 7.1 (Jazzy) checks a transition given by label but not one given by id: an id that is not
        valid in the current state (activate while active, 99) raises out of its service callback, ends
        ``rclpy.spin`` and the process (ros2/rclpy#1209, fixed in later rclpy). The request is checked
        against the current state's transitions first; anything else the callback raises is logged and
        answered success=false too. Without that service (another rclpy layout) nothing is wrapped.
        """
        service = getattr(self, "_service_change_state", None)
        machine = getattr(self, "_state_machine", None)
        if service is None or machine is None:
            return
        delegate = service.callback

        def change_state(request, response):
            transition = request.transition
            try:
                if not transition.label:
                    valid = {t[0]: t[1] for t in machine.available_transitions}
                    if transition.id not in valid:
                        self._report("bad_transition", f"change_state: transition id {transition.id} is not valid "
                                     f"in state '{machine.current_state[1]}' (valid: "
                                     f"{', '.join(f'{i} {label}' for i, label in sorted(valid.items()))}); refused")
                        response.success = False
                        return response
                return delegate(request, response)
            except Exception as error:  # never let a service request end the node
                self.get_logger().error(f"change_state {transition.id} '{transition.label}' failed: "
                                        f"{type(error).__name__}: {error}")
                response.success = False
                return response

        service.callback = change_state

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        from ..predictor import Predictor  # torch is imported here, not at node start

        p = self._values()
        path = p["model_path"]
        if not path:
            self.get_logger().error("configure failed: set the parameter model_path to a checkpoint "
                                    "(.safetensors of sgdepth_ros or a released SGDepth model.pth)")
            return TransitionCallbackReturn.FAILURE
        size = (p["input_width"], p["input_height"]) if p["input_width"] and p["input_height"] else None
        try:  # the scale follows the one rule of sgdepth_ros.scale (scale_mode auto/fixed/relative)
            predictor = Predictor(path, device=p["device"], precision=p["precision"], input_size=size,
                                  backend=p["backend"], scale_mode=p["scale_mode"],
                                  scale_factor=p["scale_factor"] or None, threads=p["cpu_threads"] or None)
        except Exception as error:  # CheckpointError, BackendError, OSError, …: one line, no traceback
            self.get_logger().error(f"configure failed: {type(error).__name__}: {error}")
            return TransitionCallbackReturn.FAILURE
        if predictor.device.type == "cpu" and p["device"] == "auto":
            self.get_logger().warning("no CUDA device: running on the CPU (slow); set device to silence this")
        if not predictor.trained:
            self.get_logger().warning("the checkpoint holds UNTRAINED weights: outputs are not depth or labels")
        # every task set the switched-on outputs can ask for (all outputs off: the default set)
        task_sets = reachable_task_sets({key for key, toggle in _TOGGLES.items() if p[toggle]}) or [None]
        try:
            warmup_ms = warm_up(predictor, p["output_resolution"], self._render_settings(), task_sets)
        except Exception as error:  # a backend that cannot run at all: fail configure, not the first frame
            self.get_logger().error(f"configure failed: warm-up prediction: {type(error).__name__}: {error}")
            return TransitionCallbackReturn.FAILURE
        self.stats.warmed_up(warmup_ms)
        sets = "; ".join("+".join(tasks) if tasks else "default" for tasks in task_sets)
        self.get_logger().info(f"model ready: {predictor.describe()}; warm-up ({len(task_sets)} prediction(s) at "
                               f"{predictor.input_size[0]}x{predictor.input_size[1]}: {sets}) {warmup_ms:.0f} ms")
        self.predictor = predictor
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        p = self._values()
        metric = self.predictor.is_metric
        out_qos = _qos(p["output_qos_reliability"], p["output_qos_depth"])
        self._pubs = {key: self.create_publisher(kind, topic, out_qos)
                      for key, (topic, kind) in messages.output_topics(metric).items()}
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        labels_pub = self.create_publisher(String, "semantic/labels", latched)
        labels_pub.publish(messages.labels_message())
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
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
        self._stamps.reset()
        self._slot.reopen()
        self._worker = threading.Thread(target=self._work, name="sgdepth-inference", daemon=True)
        self._worker.start()
        self.get_logger().info(f"active: {image_sub.topic_name} → {', '.join(p.topic_name for p in self._pubs.values())}")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_io()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.predictor = None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_io()
        self.predictor = None
        return TransitionCallbackReturn.SUCCESS

    def _stop_io(self) -> None:
        """Stop the worker (after its current frame) and remove what activate created."""
        self._slot.close()
        if self._worker is not None:
            self._worker.join(timeout=30)
            self._worker = None
        for timer in self._timers:
            self.destroy_timer(timer)
        for sub in self._subs:
            self.destroy_subscription(sub)
        for pub in [*self._pubs.values(), *self._other_pubs]:
            self.destroy_publisher(pub)
        self._timers, self._subs, self._pubs, self._other_pubs, self._info_sub = [], [], {}, [], None
        self._camera_infos.clear()

    # ---- executor thread: cheap checks only ----------------------------------------------------
    def _on_image(self, msg) -> None:
        self.stats.received()
        sec, nanosec = msg.header.stamp.sec, msg.header.stamp.nanosec
        problem = stamp_problem(sec, nanosec)
        if problem == "bad_stamp":
            self._reject(problem, f"image stamp sec={sec} nanosec={nanosec} is malformed (need sec ≥ 0 and "
                         "nanosec < 1e9); frame skipped")
            return
        stamp = stamp_ns(msg.header)
        if problem == "zero_stamp":  # served (tf reads stamp 0 as 'latest'), counted, no order check or latency
            self._reject(problem, "image stamp is 0: the driver does not stamp its frames; outputs carry stamp 0 "
                         "and no latency is measured")
        else:
            kind = self._stamps.check(stamp)
            if kind:
                self._reject(kind, f"image stamp {stamp} ns is not newer than the previous one; frame skipped")
                return
        if not self._wanted():
            self.stats.idle()
            return
        if self._slot.put(_Frame(msg, stamp, stamped=problem is None)) is not None:
            self.stats.dropped()

    def _on_camera_info(self, msg: CameraInfo) -> None:
        sec, nanosec = msg.header.stamp.sec, msg.header.stamp.nanosec
        if stamp_problem(sec, nanosec) == "bad_stamp":  # no pairing key: counted here, never again as unmatched
            self._reject("bad_stamp", f"camera_info stamp sec={sec} nanosec={nanosec} is malformed; discarded")
            return
        try:
            geometry = messages.camera_info_geometry(msg)
        except InputError as error:
            self._reject(error.kind, f"camera_info discarded: {error}")
            self._camera_infos.add_rejected(stamp_ns(msg.header))  # its image pairs with it, uncounted
            return
        if has_distortion(msg.d) and not self._distortion_warned:
            self._distortion_warned = True
            self.get_logger().warning(
                f"camera_info has non-zero distortion D={list(msg.d)}: sgdepth never undistorts and projects "
                "with P, so subscribe it to the rectified image (image_rect); warned once")
        self._camera_infos.add(stamp_ns(msg.header), geometry.width, geometry.height, (msg, geometry))

    def _reject(self, kind: str, message: str) -> None:
        self.stats.error(kind)
        self._report(kind, message)

    def _wanted(self) -> set[str]:
        """Outputs that are switched on and have at least one subscriber."""
        return {key for key, pub in self._pubs.items()
                if self._param(_TOGGLES[key]) and pub.get_subscription_count() > 0}

    # ---- worker thread ---------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            frame = self._slot.take()
            if frame is None:
                return  # slot closed: deactivating
            try:
                self._process(frame)
            except Exception as error:  # never let one frame end the worker
                self._reject("internal_error", f"{type(error).__name__}: {error}")

    def _process(self, frame: _Frame) -> None:
        started = time.perf_counter()
        wanted = self._wanted()
        if not wanted:
            self.stats.idle()
            return
        max_pixels = self._param("max_image_pixels")
        try:
            if isinstance(frame.msg, CompressedImage):
                rgb = decode_compressed(frame.msg.data, max_pixels, frame.msg.format)
            else:
                rgb = image_message_to_rgb(frame.msg, max_pixels)
        except InputError as error:
            self._reject(error.kind, f"image discarded: {error}")
            return
        try:
            prediction = self.predictor.predict(rgb, output_resolution=self._param("output_resolution"),
                                                tasks=tasks_for_outputs(wanted))
        except Exception as error:
            self._reject("inference_error", f"{type(error).__name__}: {error}")
            return
        # paired after inference: a CameraInfo sent with the image has had the inference time to arrive
        camera = self._camera_for(frame, rgb.shape[1], rgb.shape[0]) if wanted & {"depth_info", "points"} else None
        height, width = (prediction.depth if prediction.depth is not None else prediction.labels).shape
        geometry = scale_geometry(camera[1], width, height) if camera else None
        outputs = render(prediction, wanted, self._render_settings(), geometry)
        for key, msg in messages.output_messages(outputs, frame.msg.header, camera[0] if camera else None,
                                                 geometry, wanted).items():
            self._pubs[key].publish(msg)
        latency_ms = (self.get_clock().now().nanoseconds - frame.stamp_ns) / 1e6 if frame.stamped else None
        self.stats.processed(latency_ms, prediction.timings, (time.perf_counter() - started) * 1e3)

    def _render_settings(self) -> RenderSettings:
        return RenderSettings(**{name: self._param(name) for name in RenderSettings.__dataclass_fields__})

    def _camera_for(self, frame: _Frame, width: int, height: int):
        """The (CameraInfo, geometry) paired with this frame's stamp and size, or None."""
        publishers = self._info_sub.get_publisher_count() > 0
        result = self._camera_infos.pair(  # the rule lives in sync.CameraInfoPairing (replay uses it too)
            frame.stamp_ns, width, height, int(self._param("camera_info_tolerance_sec") * 1e9),
            self._param("camera_info_fallback_latest"), self._param("camera_info_wait_sec") if publishers else 0.0)
        if result.how == "camera_info_size" or (result.how == "camera_info_unmatched" and publishers):
            self._reject(result.how, f"{result.reason}; depth/camera_info and points skipped for this frame")
        return result.item

    # ---- diagnostics -----------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        snap = self.stats.snapshot()
        previous, self._last_diag = self._last_diag, snap
        level, summary = diagnostic_level(snap, previous, self._param("warn_input_output_ratio"))
        device = str(self.predictor.device) if self.predictor is not None else "unconfigured"
        self._diag_pub.publish(messages.diagnostics_message(
            snap, self.get_clock().now().to_msg(), f"{self.get_fully_qualified_name()}: sgdepth inference", device, level, summary))

    def _log_status(self) -> None:
        s = self.stats.snapshot()
        errors = ", ".join(f"{k} {v}" for k, v in sorted(s["errors"].items())) or "none"
        timing = (f"latency p50 {s['latency_p50_ms']:.0f} p95 {s['latency_p95_ms']:.0f} ms, predict "
                  f"{s['predict_p50_ms']:.0f} ms (network {s['forward_p50_ms']:.0f} ms)"
                  if s["frames_processed"] else "no frame processed yet")
        idle = f", idle {s['frames_idle']} (no subscriber)" if s["frames_idle"] else ""
        self.get_logger().info(
            f"in {s['input_rate_hz']:.1f} Hz, out {s['output_rate_hz']:.1f} Hz, {timing}, "
            f"dropped {s['frames_dropped']}{idle}, errors: {errors}")


def tasks_for_outputs(wanted: set[str]) -> tuple[str, ...]:
    """The network tasks ("depth", "segmentation") that the wanted outputs need: only their decoder tails run."""
    return tuple(sorted({task for key in wanted for task in _OUTPUT_TASKS[key]}))


def reachable_task_sets(keys: set[str]) -> list[tuple[str, ...]]:
    """Every task set :func:`tasks_for_outputs` gives for a non-empty subset of ``keys`` (the outputs that are
    switched on), sorted: what the warm-up at configure runs, so no wanted output meets a cold graph."""
    keys = sorted(keys)
    return sorted({tasks_for_outputs(set(subset)) for r in range(1, len(keys) + 1)
                   for subset in itertools.combinations(keys, r)})


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
