"""What both replay modes do with a frame's outputs: score them, keep a few for the preview, write the output bag.

Offline and live hand over the same thing, the node's output messages of one frame (offline renders them with the
node's own code, live receives them over DDS), so accuracy, previews and the output bag come from one path and the
two modes can only differ in what the node delivered.

Output bag (MCAP by default): the recorded input messages verbatim (image, CameraInfo, the ground truth used), then
the outputs under ``<namespace>/<topic>`` (``/sgdepth/depth`` …), all at the input's header stamp so that
``ros2 bag play`` shows outputs in step with their images.
"""
from __future__ import annotations


from ..bag import BagWriter
from ..ros.image_codec import scalar_message_to_array
from ..ros.sync import stamp_ns
from .evaluate import FrameScale, ReplayEvaluator
from .frames import ReplayFrame
from .preview import PreviewFrame

IMAGE_TYPE = "sensor_msgs/msg/Image"


class FrameRecorder:
    """Args:
        evaluator: accumulates accuracy. topics: node key → full output topic name and its message type
            (``{"depth": ("/sgdepth/depth", "sensor_msgs/msg/Image"), …}``).
        bag: an open BagWriter for the output bag, or None. preview_indices: frame indices to keep for the preview.
        relative_topics: where a frame's outputs go when its depth is not metric (scale_mode camera_height before
            the first scale: ``depth/relative``, ``points/relative``); keys missing here use ``topics``.
        pooled: a second evaluator every frame also goes to (several cameras: the one of all cameras together).
    """

    def __init__(self, evaluator: ReplayEvaluator, topics: dict[str, tuple[str, str]], bag: BagWriter | None,
                 preview_indices: set[int] = frozenset(), input_topics: dict[str, str] | None = None,
                 relative_topics: dict[str, tuple[str, str]] | None = None, pooled: ReplayEvaluator | None = None):
        self.evaluator, self.topics, self.bag = evaluator, topics, bag
        self.pooled = pooled
        self.relative_topics = relative_topics or {}
        self.preview_indices = set(preview_indices)
        self.input_topics = input_topics or {}
        self.previews: list[PreviewFrame] = []
        self.per_frame: list[dict] = []
        self._written: set[tuple[str, int]] = set()  # (topic, stamp) of ground truth already in the bag
        self.delivered = 0
        self.without_ground_truth = 0  # delivered frames with neither depth nor label ground truth

    def write_inputs(self, frame: ReplayFrame) -> None:
        """The frame's recorded messages into the output bag (call once per frame, delivered or not)."""
        if self.bag is None:
            return
        self.bag.write_raw(self.input_topics["image"], frame.stamp_ns, frame.image_msgtype, frame.image_raw)
        if frame.info_raw is not None:
            self.bag.write_raw(self.input_topics["camera_info"], frame.stamp_ns, "sensor_msgs/msg/CameraInfo",
                               frame.info_raw)
        for topic, msgtype, stamp, raw in frame.gt_raw:
            if (topic, stamp) not in self._written:  # one LiDAR sweep may serve several images: write it once
                self._written.add((topic, stamp))
                self.bag.write_raw(topic, stamp, msgtype, raw)

    def add(self, frame: ReplayFrame, outputs: dict, latency_ms: float | None = None,
            scale: FrameScale | None = None) -> dict:
        """One delivered frame. ``outputs``: node key → rclpy message (at least depth and semantic for scores).
        ``scale``: the frame's camera-height scale (scale_mode camera_height); its depth is metric when
        ``scale.applied`` is set, else it goes to the ``relative_topics``."""
        from rclpy.serialization import serialize_message

        self.delivered += 1
        if frame.depth_gt is None and frame.labels_gt is None:
            self.without_ground_truth += 1
        depth = scalar_message_to_array(outputs["depth"]) if "depth" in outputs else None
        labels = scalar_message_to_array(outputs["semantic"]) if "semantic" in outputs else None
        record = {"index": frame.index, "stamp_ns": frame.stamp_ns}
        if latency_ms is not None:
            record["latency_ms"] = latency_ms
        record.update(self.evaluator.add(frame.depth_gt, depth, frame.labels_gt, labels, frame.gt_source, scale))
        if self.pooled is not None:
            self.pooled.add(frame.depth_gt, depth, frame.labels_gt, labels, frame.gt_source, scale)
        self.per_frame.append(record)
        if frame.index in self.preview_indices:
            self.previews.append(PreviewFrame(frame.stamp_ns, frame.rgb, depth, frame.depth_gt, labels,
                                              frame.labels_gt))
        if self.bag is not None:
            relative = scale is not None and scale.applied is None
            for key, msg in outputs.items():
                if key in self.topics:
                    topic, msgtype = self.relative_topics.get(key, self.topics[key]) if relative else self.topics[key]
                    self.bag.write_raw(topic, stamp_ns(msg.header), msgtype, serialize_message(msg))
        return record
