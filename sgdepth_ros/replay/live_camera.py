"""One camera of a live replay: how the node is wired to the bag's topics for it, the probe that plays its frames and
records its outputs, and the pairing of outputs with frames (the rules are in :mod:`.live`).

A camera is the node's single unnamed camera (``name`` None: inputs ``image`` / ``camera_info``, outputs ``depth`` …
under the node's namespace) or one of its ``cameras`` (inputs ``<name>/image`` …, outputs ``<name>/depth`` …). Its
probe lives in the namespace of its outputs, so output topics are the same relative names either way.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..ros.sync import stamp_ns
from .evaluate import FrameScale
from .frames import ReplayFrame
from .recorder import FrameRecorder

# outputs a frame needs to be scored (delivered); the others (colour views, points) only make it complete
REQUIRED = ("depth", "semantic")
SCALE_TOPIC = "depth/scale"  # the node's factor of each metric frame (scale_mode camera_height)
NODE_NAME = "sgdepth"  # the node's name (sgdepth_ros.ros.node.NODE_NAME; not imported: that module loads torch)
# the node's counters that stop changing once it has handled every frame it got
COUNTERS = ("frames_received", "frames_processed", "frames_dropped", "frames_idle")


@dataclass
class _Pending:
    frame: ReplayFrame
    sent_ns: int
    outputs: dict = field(default_factory=dict)  # key → (arrival ns, message)
    metric: bool = True  # the depth came on its metric topic (not ``depth/relative``)


class LiveCamera:
    """One camera: ``name`` (None = the node's unnamed single camera), the bag's ``image_topic`` / ``info_topic``
    (None: no CameraInfo), ``compressed`` (CompressedImage input), ``output_topics``: key → topic relative to the
    camera's outputs (``depth`` …), ``relative_topics``: key → the topic an output takes while the node has no
    metric scale yet (scale_mode camera_height: ``depth/relative``, ``points/relative``), ``camera_height``: this
    camera's height in metres for the node (named cameras, scale_mode camera_height; None: the node-wide value).

    After :meth:`attach`: ``probe``; while playing: the frames in flight and ``stats``.
    """

    def __init__(self, name: str | None, image_topic: str, info_topic: str | None, compressed: bool,
                 output_topics: dict[str, str], relative_topics: dict[str, str] | None = None,
                 camera_height: float | None = None):
        self.name, self.image_topic, self.info_topic, self.compressed = name, image_topic, info_topic, compressed
        self.output_topics = dict(output_topics)
        self.relative_topics = dict(relative_topics or {})
        self.camera_height = camera_height
        # every subscribed topic → (key, metric): an output arrives on one of its key's topics
        self._topic_keys = {topic: (key, True) for key, topic in self.output_topics.items()}
        self._topic_keys.update({topic: (key, False) for key, topic in self.relative_topics.items()})
        self.probe = None
        self._measured = False
        self._scale_values: list[float] = []  # depth/scale messages, in arrival order
        self._metric_depth: list[int] = []  # stamps of the metric depth messages, in arrival order
        self._scale_sub = None
        self.pending: dict[int, _Pending] = {}
        self.stats = {"sent": 0, "delivered": 0, "dropped": 0, "incomplete": 0, "scale_unpaired": 0}
        self.latency: list[float] = []
        self.depth_latency: list[float] = []
        self.last_delivery: float | None = None  # monotonic time of the last delivered frame

    # -- the node's side ---------------------------------------------------------------------------

    @property
    def prefix(self) -> str:
        """The camera's topic prefix in the node's namespace ("" or ``<name>/``)."""
        return f"{self.name}/" if self.name else ""

    def remaps(self) -> list[str]:
        """The node's remapping arguments: its inputs for this camera → the bag's topics."""
        image = f"{self.prefix}image/compressed" if self.compressed else f"{self.prefix}image"
        remaps = ["-r", f"{image}:={self.image_topic}"]
        if self.info_topic:
            remaps += ["-r", f"{self.prefix}camera_info:={self.info_topic}"]
        return remaps

    def node_params(self) -> dict:
        """This camera's node parameters: ``input_transport`` (and its ``camera_height``), top-level for the unnamed
        camera, else to be nested under the camera's name."""
        params: dict = {"input_transport": "compressed" if self.compressed else "raw"}
        if self.name and self.camera_height:
            params["camera_height"] = float(self.camera_height)
        return params

    def status_name(self, namespace: str) -> str:
        """The name of this camera's /diagnostics status (``<node fqn>[/<name>]: sgdepth inference``)."""
        return f"{namespace.rstrip('/')}/{NODE_NAME}{'/' + self.name if self.name else ''}: sgdepth inference"

    # -- this process's side -----------------------------------------------------------------------

    def attach(self, namespace: str, context, measured: bool):
        """Make this camera's probe (a node of ``context``) in the namespace of its outputs; ``measured``: the node
        publishes ``depth/scale`` (scale_mode camera_height), subscribed here. Returns the probe."""
        from rclpy.qos import QoSProfile
        from std_msgs.msg import Float32

        from ..ros.probe import Probe

        base = namespace.rstrip("/")
        self._measured = measured
        self.probe = Probe(list(self._topic_keys), name=f"sgdepth_replay{'_' + self.name if self.name else ''}",
                           namespace=f"{base}/{self.name}" if self.name else namespace, compressed=self.compressed,
                           image_topic=self.image_topic, info_topic=self.info_topic or "camera_info",
                           context=context)
        if measured:
            self._scale_sub = self.probe.create_subscription(
                Float32, SCALE_TOPIC, lambda msg: self._scale_values.append(float(msg.data)), QoSProfile(depth=50))
        return self.probe

    def matched(self) -> bool:
        """The node subscribes to this camera's inputs and publishes each recorded output."""
        return self.probe.wait_for_subscribers(0) and (self._scale_sub is None
                                                       or self._scale_sub.get_publisher_count() > 0)

    def statuses(self, namespace: str) -> list[dict]:
        """The key/values of every /diagnostics status of this camera received so far, oldest first."""
        name = self.status_name(namespace)
        return [{kv.key: kv.value for kv in status.values} for _, msg in self.probe.messages["/diagnostics"]
                for status in msg.status if status.name == name]

    def publish(self, frame: ReplayFrame) -> None:
        """Send the frame's recorded CameraInfo and image, verbatim; it is in flight from now."""
        from rclpy.serialization import deserialize_message
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image

        if frame.info_raw is not None:
            self.probe.info_pub.publish(deserialize_message(frame.info_raw, CameraInfo))
        self.probe.image_pub.publish(deserialize_message(frame.image_raw, CompressedImage if self.compressed
                                                         else Image))
        self.pending[frame.stamp_ns] = _Pending(frame, self.probe.get_clock().now().nanoseconds)
        self.stats["sent"] += 1

    # -- pairing -----------------------------------------------------------------------------------

    def collect(self, recorder: FrameRecorder) -> None:
        """Move arrived outputs to their frames; finish complete frames; drop frames a newer one overtook."""
        for topic, (key, metric) in self._topic_keys.items():
            arrived = self.probe.messages[topic]
            for arrival_ns, msg in arrived:
                stamp = stamp_ns(msg.header)
                if self._measured and key == "depth" and metric:
                    self._metric_depth.append(stamp)
                entry = self.pending.get(stamp)
                if entry is not None:
                    entry.outputs[key] = (arrival_ns, msg)
                    if key == "depth":
                        entry.metric = metric
            arrived.clear()
        finished = [stamp for stamp, entry in self.pending.items()
                    if len(entry.outputs) == len(self.output_topics) and self._frame_scale(entry) is not False]
        for stamp in sorted(finished):
            self._finish(self.pending.pop(stamp), recorder)
        if finished:  # the node works newest-first per camera: an older frame still waiting now will never come
            newest = max(finished)
            for stamp in sorted(s for s in self.pending if s < newest):
                self._finish(self.pending.pop(stamp), recorder)

    def finish_all(self, recorder: FrameRecorder) -> None:
        """End of the replay: every frame still in flight is scored with what arrived, or dropped."""
        for stamp in sorted(self.pending):
            self._finish(self.pending.pop(stamp), recorder)

    def _frame_scale(self, entry: _Pending) -> FrameScale | None | bool:
        """The frame's camera-height scale: None when the node does not measure one; False while a metric frame's
        factor has not arrived (see :mod:`.live`)."""
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
            self.stats["dropped"] += 1
            return
        scale = self._frame_scale(entry)
        if scale is False:
            self.stats["dropped"] += 1
            self.stats["scale_unpaired"] += 1
            return
        if len(entry.outputs) < len(self.output_topics):
            self.stats["incomplete"] += 1
        latency = (max(t for t, _ in entry.outputs.values()) - entry.sent_ns) / 1e6
        self.latency.append(latency)
        self.depth_latency.append((entry.outputs["depth"][0] - entry.sent_ns) / 1e6)
        recorder.add(entry.frame, {key: msg for key, (_, msg) in entry.outputs.items()}, latency, scale)
        self.stats["delivered"] += 1
        self.last_delivery = time.monotonic()

    def result(self) -> dict:
        """``{"sent", "delivered", "dropped", "incomplete", "scale_unpaired", "latency_ms" (send → last output of
        each delivered frame), "depth_latency_ms" (send → depth)}``."""
        return {**self.stats, "latency_ms": self.latency, "depth_latency_ms": self.depth_latency}


def counters(status: dict) -> tuple[int, ...]:
    """The node's frame counters (:data:`COUNTERS`) of one diagnostics status; -1 where missing."""
    values = []
    for key in COUNTERS:
        try:
            values.append(int(float(status[key])))
        except (KeyError, ValueError):
            values.append(-1)
    return tuple(values)
