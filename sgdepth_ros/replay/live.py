"""Live replay: play the bag over DDS to a real ``sgdepth_node`` process and record what it publishes.

The node runs as its own process on a loopback-only graph (``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``, the Fast DDS
profile for large images) under ``namespace``, its inputs remapped to the bag's topics. The domain is the caller's
``ROS_DOMAIN_ID`` when set, else a random one that no DDS participant on this machine uses
(:func:`sgdepth_ros.ros.domain.replay_domain_id`); ``LiveReplay.domain_id`` says which. The caller's process is left
as it was: the ROS environment goes to the node process, and this process's rclpy context, executor and node are its
own (the environment is set only while they are created, then restored).

This process plays the recorded image and CameraInfo messages verbatim at the bag's pace × ``rate`` (and ``/clock``
= bag time when ``use_sim_time``), subscribes to the outputs and pairs them with their frame by header stamp.

A frame is *delivered* when its depth and semantic images arrived (latency = arrival of its last output − the wall
time it was sent, both on this process's clock); it is *dropped* when a newer frame's outputs arrived first (the
node keeps only the newest frame while busy) or nothing came within ``drain_s`` after the last frame. The node's
own counters (frames received / processed / dropped, its stamp→publish latency) come from ``/diagnostics``, taken
once they have settled (two successive reports alike), not after a fixed wait.

With ``camera_height`` the node runs ``scale_mode: camera_height``: a frame's depth and points come on ``depth`` /
``points`` (metres) once the node has a scale, else on ``depth/relative`` / ``points/relative``. The node publishes
the factor of each metric frame on ``depth/scale`` (std_msgs/Float32, no header) just before that frame's depth, so
the n-th ``depth/scale`` message is the factor of the n-th metric ``depth`` message: both are reliable topics of one
node, delivered in order. A metric frame is scored once its factor has arrived (its depth taken back to model units,
as offline); one whose factor never arrives is counted in ``scale_unpaired`` and not scored. The node does not
publish its per-frame estimates (only the latest, in ``/diagnostics``), so live reports have none.
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Mapping

from ..ros.sync import stamp_ns
from .evaluate import FrameScale
from .frames import ReplayFrame
from .recorder import FrameRecorder

# outputs a frame needs to be scored (delivered); the others (colour views, points) only make it complete
REQUIRED = ("depth", "semantic")
SCALE_TOPIC = "depth/scale"  # the node's factor of each metric frame (scale_mode camera_height)
# the node's counters that stop changing once it has handled every frame it got
_COUNTERS = ("frames_received", "frames_processed", "frames_dropped", "frames_idle")


@contextmanager
def scoped_environ(changes: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` with ``changes`` applied inside the block, exactly as before after it (also on error)."""
    saved = {key: os.environ.get(key) for key in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass
class LiveSettings:
    """model: checkpoint path; rate: multiple of the bag's pace (> 0); use_sim_time: publish /clock and run the node
    on it; namespace: the node's; node_params: extra node parameters (override the defaults below);
    drain_s: how long to wait for outputs after the last frame; camera_height: metres, runs the node with
    ``scale_mode: camera_height`` (the scale measured from the road plane) instead of the fixed/relative scale."""

    model: str
    rate: float = 1.0
    use_sim_time: bool = False
    namespace: str = "/sgdepth"
    metric: bool = False
    scale_factor: float | None = None
    device: str = "auto"
    node_params: dict = field(default_factory=dict)
    drain_s: float = 10.0
    startup_timeout_s: float = 300.0
    camera_height: float | None = None

    def params(self) -> dict:
        """The node's parameters for a replay (scores need depth and labels at the camera's size)."""
        mode = "camera_height" if self.camera_height else "fixed" if self.metric else "relative"
        params = {"model_path": self.model, "device": self.device, "output_resolution": "input",
                  "scale_mode": mode, "scale_factor": 0.0 if self.camera_height else self.scale_factor or 0.0,
                  "input_qos_reliability": "reliable", "output_qos_depth": 10, "log_period_sec": 0.0,
                  "diagnostics_period_sec": 0.5, "use_sim_time": self.use_sim_time}
        if self.camera_height:
            params["camera_height"] = float(self.camera_height)
        params.update(self.node_params)
        return params


@dataclass
class _Pending:
    frame: ReplayFrame
    sent_ns: int
    outputs: dict = field(default_factory=dict)  # key → (arrival ns, message)
    metric: bool = True  # the depth came on its metric topic (not ``depth/relative``)


class LiveReplay:
    """Start the node, play frames, collect outputs: ``with LiveReplay(settings, output_keys, …) as live:``.

    ``domain_id`` / ``domain_source`` ("ROS_DOMAIN_ID": the caller's; "free": picked) are set on entering.
    ``relative_topics``: key → the topic an output takes while the node has no metric scale yet (scale_mode
    camera_height: ``depth/relative``, ``points/relative``); a frame's output counts on either of its key's topics.
    """

    def __init__(self, settings: LiveSettings, output_topics: dict[str, str], image_topic: str,
                 info_topic: str | None, compressed: bool, relative_topics: dict[str, str] | None = None):
        if not settings.rate > 0:
            raise ValueError(f"rate must be > 0, got {settings.rate}")
        self.settings = settings
        self.output_topics = output_topics  # key → topic relative to the namespace
        self.relative_topics = dict(relative_topics or {})
        # every subscribed topic → (key, metric): an output arrives on one of its key's topics
        self._topic_keys = {topic: (key, True) for key, topic in output_topics.items()}
        self._topic_keys.update({topic: (key, False) for key, topic in self.relative_topics.items()})
        self._measured = bool(settings.camera_height)
        self._scale_values: list[float] = []  # depth/scale messages, in arrival order
        self._metric_depth: list[int] = []  # stamps of the metric depth messages, in arrival order
        self._scale_sub = None
        self.image_topic, self.info_topic, self.compressed = image_topic, info_topic, compressed
        self.node = self.probe = None
        self.node_output = ""
        self.domain_id: int | None = None
        self.domain_source = ""
        self._context = self._executor = None
        self._clock_pub = None
        self._last_clock = -1  # newest /clock published (ns): the clock never goes back

    # -- lifetime ----------------------------------------------------------------------------------

    def __enter__(self) -> "LiveReplay":
        try:
            self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start(self) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.signals import SignalHandlerOptions

        from ..ros.domain import replay_domain_id
        from ..ros.launcher import NodeProcess, ros_environment
        from ..ros.probe import Probe

        self.domain_id, self.domain_source = replay_domain_id(os.environ)
        env = ros_environment(domain_id=self.domain_id)  # a copy of os.environ: for the node process
        image_remap = "image/compressed" if self.compressed else "image"
        remaps = ["-r", f"{image_remap}:={self.image_topic}", "-r", f"__ns:={self.settings.namespace}"]
        if self.info_topic:
            remaps += ["-r", f"camera_info:={self.info_topic}"]
        self.node = NodeProcess(self.settings.params(), env, extra_args=tuple(remaps)).start()
        # rcl and Fast DDS read the discovery range, profile file and log folder when the context and its first node
        # are created: set them for that moment only, in this process
        with scoped_environ({k: v for k, v in env.items() if os.environ.get(k) != v}):
            self._context = rclpy.Context()
            rclpy.init(context=self._context, domain_id=self.domain_id,
                       signal_handler_options=SignalHandlerOptions.NO)  # the caller's signal handling stays
            self._executor = SingleThreadedExecutor(context=self._context)
            self.probe = Probe(list(self._topic_keys), name="sgdepth_replay",
                               namespace=self.settings.namespace, compressed=self.compressed,
                               image_topic=self.image_topic, info_topic=self.info_topic or "camera_info",
                               context=self._context)
        self._executor.add_node(self.probe)
        if self._measured:
            from rclpy.qos import QoSProfile
            from std_msgs.msg import Float32

            self._scale_sub = self.probe.create_subscription(
                Float32, SCALE_TOPIC, lambda msg: self._scale_values.append(float(msg.data)), QoSProfile(depth=50))
        if self.settings.use_sim_time:
            from rclpy.qos import QoSProfile
            from rosgraph_msgs.msg import Clock

            self._clock_pub = self.probe.create_publisher(Clock, "/clock", QoSProfile(depth=10))
        self.node.wait_for_output("active:", timeout=self.settings.startup_timeout_s)
        if not self.probe.wait_for_subscribers(60) or (
                self._scale_sub is not None
                and not self.probe.spin_until(lambda: self._scale_sub.get_publisher_count() > 0, 60)):
            raise RuntimeError("the node's topics did not match within 60 s:\n" + self.node.output)

    def __exit__(self, *exc) -> None:
        """Stop the node; destroy this replay's node, executor and context (nothing else of rclpy)."""
        if self.probe is not None:
            self.probe.destroy_node()
            self.probe = None
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None
        if self._context is not None:
            self._context.try_shutdown()
            self._context = None
        if self.node is not None:
            self.node.stop()
            self.node_output = self.node.output

    # -- playing -----------------------------------------------------------------------------------

    def play(self, frames: Iterable[ReplayFrame], recorder: FrameRecorder, progress=None) -> dict:
        """Play every frame at its bag time / rate; hand delivered frames to ``recorder``.

        Returns ``{"sent", "delivered", "dropped", "incomplete", "latency_ms" (send → last output of each delivered
        frame), "depth_latency_ms" (send → depth), "wall_s" (first send → last delivery), "node": the final
        diagnostics, "node_alive": bool}``.
        """
        from rclpy.serialization import deserialize_message
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image

        probe = self.probe
        image_type = CompressedImage if self.compressed else Image
        pending: dict[int, _Pending] = {}
        self._stats = {"sent": 0, "delivered": 0, "dropped": 0, "incomplete": 0, "scale_unpaired": 0}
        self._latency, self._depth_latency = [], []
        self._last_delivery: float | None = None
        start_wall = time.monotonic()
        origin = None  # (first stamp, wall time it was due)
        for frame in frames:
            if origin is None:
                origin = (frame.stamp_ns, time.monotonic())
            due = origin[1] + (frame.stamp_ns - origin[0]) / 1e9 / self.settings.rate
            self._spin_until(due, origin, pending, recorder)
            recorder.write_inputs(frame)
            self._publish_clock(frame.stamp_ns)
            if frame.info_raw is not None:
                probe.info_pub.publish(deserialize_message(frame.info_raw, CameraInfo))
            probe.image_pub.publish(deserialize_message(frame.image_raw, image_type))
            pending[frame.stamp_ns] = _Pending(frame, probe.get_clock().now().nanoseconds)
            self._stats["sent"] += 1
            if progress is not None:
                progress.update(1)
            if self.node.returncode is not None:
                raise RuntimeError(f"sgdepth_node exited with {self.node.returncode} during the replay:\n"
                                   + self.node.output[-2000:])
        deadline = time.monotonic() + self.settings.drain_s
        while pending and time.monotonic() < deadline:
            self._spin_until(time.monotonic() + 0.1, origin, pending, recorder)
        for stamp in sorted(pending):
            self._finish(pending.pop(stamp), recorder)
        last = self._last_delivery or time.monotonic()
        return {**self._stats, "latency_ms": self._latency, "depth_latency_ms": self._depth_latency,
                "wall_s": last - start_wall, "node": self._final_diagnostics(origin, recorder),
                "node_alive": self.node.returncode is None}

    def _final_diagnostics(self, origin, recorder: FrameRecorder) -> dict:
        """The node's diagnostics once it is done: two successive statuses with the same frame counters, the last
        counting at least the delivered frames (waits up to ``drain_s``; else the newest status)."""
        deadline = time.monotonic() + max(self.settings.drain_s, 4 * self.settings.params()["diagnostics_period_sec"])
        while time.monotonic() < deadline and self.node.returncode is None:
            history = self.probe.diagnostics_history()
            if len(history) >= 2 and _counters(history[-1]) == _counters(history[-2]) \
                    and _counters(history[-1])[1] >= self._stats["delivered"]:
                return history[-1]
            self._spin_until(time.monotonic() + 0.1, origin, {}, recorder)
        return self.probe.latest_diagnostics()

    def _spin_until(self, wall_deadline: float, origin, pending: dict, recorder: FrameRecorder) -> None:
        while True:
            remaining = wall_deadline - time.monotonic()
            self._executor.spin_once(timeout_sec=max(0.0, min(0.01, remaining)))
            if origin is not None:
                self._publish_clock(origin[0] + int((time.monotonic() - origin[1]) * self.settings.rate * 1e9))
            self._collect(pending, recorder)
            if remaining <= 0:
                return

    def _publish_clock(self, stamp_ns: int) -> None:
        if self._clock_pub is None:
            return
        from builtin_interfaces.msg import Time
        from rosgraph_msgs.msg import Clock

        if stamp_ns <= self._last_clock:
            return
        self._last_clock = stamp_ns
        sec, nanosec = divmod(stamp_ns, 1_000_000_000)
        self._clock_pub.publish(Clock(clock=Time(sec=sec, nanosec=nanosec)))

    def _collect(self, pending: dict, recorder: FrameRecorder) -> None:
        """Move arrived outputs to their frames; finish complete frames; drop frames a newer one overtook."""
        for topic, (key, metric) in self._topic_keys.items():
            arrived = self.probe.messages[topic]
            for arrival_ns, msg in arrived:
                stamp = stamp_ns(msg.header)
                if self._measured and key == "depth" and metric:
                    self._metric_depth.append(stamp)
                entry = pending.get(stamp)
                if entry is not None:
                    entry.outputs[key] = (arrival_ns, msg)
                    if key == "depth":
                        entry.metric = metric
            arrived.clear()
        finished = [stamp for stamp, entry in pending.items()
                    if len(entry.outputs) == len(self.output_topics) and self._frame_scale(entry) is not False]
        for stamp in sorted(finished):
            self._finish(pending.pop(stamp), recorder)
        if finished:  # the node works newest-first: an older frame still waiting now will never come
            newest = max(finished)
            for stamp in sorted(s for s in pending if s < newest):
                self._finish(pending.pop(stamp), recorder)

    def _frame_scale(self, entry: _Pending) -> FrameScale | None | bool:
        """The frame's camera-height scale: None when the node does not measure one; False while a metric frame's
        factor has not arrived (see the module docstring)."""
        if not self._measured:
            return None
        if "depth" not in entry.outputs or not entry.metric:
            return FrameScale(None, None, None)
        stamp = stamp_ns(entry.outputs["depth"][1].header)
        index = next((i for i in range(len(self._metric_depth) - 1, -1, -1) if self._metric_depth[i] == stamp), None)
        if index is None or index >= len(self._scale_values):
            return False
        factor = self._scale_values[index]
        return FrameScale(factor, None, factor)

    def _finish(self, entry: _Pending, recorder: FrameRecorder) -> None:
        """Score a frame whose depth and labels arrived (``delivered``; ``incomplete`` too when another output is
        missing); a frame without them is ``dropped``, a metric one whose factor never arrived too
        (``scale_unpaired``)."""
        if not all(key in entry.outputs for key in REQUIRED):
            self._stats["dropped"] += 1
            return
        scale = self._frame_scale(entry)
        if scale is False:
            self._stats["dropped"] += 1
            self._stats["scale_unpaired"] += 1
            return
        if len(entry.outputs) < len(self.output_topics):
            self._stats["incomplete"] += 1
        latency = (max(t for t, _ in entry.outputs.values()) - entry.sent_ns) / 1e6
        self._latency.append(latency)
        self._depth_latency.append((entry.outputs["depth"][0] - entry.sent_ns) / 1e6)
        recorder.add(entry.frame, {key: msg for key, (_, msg) in entry.outputs.items()}, latency, scale)
        self._stats["delivered"] += 1
        self._last_delivery = time.monotonic()


def _counters(status: dict) -> tuple[int, ...]:
    """The node's frame counters (:data:`_COUNTERS`) of one diagnostics status; -1 where missing."""
    values = []
    for key in _COUNTERS:
        try:
            values.append(int(float(status[key])))
        except (KeyError, ValueError):
            values.append(-1)
    return tuple(values)
