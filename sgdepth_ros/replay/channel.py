"""One camera of a replay as the command sees it: its topics, frame reader, evaluator and recorder, and its part of the
report (topics, frames, accuracy, latency, node counters). A single-camera replay has one, unnamed; ``--cameras``
one per camera.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .evaluate import ReplayEvaluator
from .frames import FrameReader
from .recorder import FrameRecorder
from .topics import ReplayTopics

LATENCY_WHAT = {"live": "send → last output arrival, wall clock (live)",
                "offline": "predictor time per frame, in process (offline)"}


@dataclass
class Channel:
    """name: the camera (None: the single unnamed one); in_bag: its image messages in the bag; compressed: its images
    are CompressedImage; camera_height / height_source: scale_mode camera_height (else None); full / relative: node
    output key → (full topic, type) of its metric and relative outputs (see :func:`output_table`)."""

    name: str | None
    topics: ReplayTopics
    in_bag: int
    compressed: bool
    camera_height: float | None
    height_source: str | None
    full: dict
    relative: dict | None
    reader: FrameReader
    evaluator: ReplayEvaluator
    recorder: FrameRecorder

    def label(self, text: str) -> str:
        """``text`` prefixed with the camera's name (unchanged for the unnamed camera)."""
        return f"camera {self.name}: {text}" if self.name else text


def output_table(prefix: str, metric: bool, with_camera_info: bool) -> dict[str, tuple[str, str]]:
    """The node's outputs of one camera: key → (``<prefix>/<topic>``, message type); without a CameraInfo the node
    publishes no depth/camera_info and no points."""
    from ..ros.messages import output_topics

    keys = output_topics(metric)
    if not with_camera_info:
        keys = {k: v for k, v in keys.items() if k not in ("depth_info", "points")}
    return {key: (f"{prefix}/{topic}", f"sensor_msgs/msg/{kind.__name__}") for key, (topic, kind) in keys.items()}


def percentiles(samples: list[float], what: str) -> dict | None:
    """p50 / p95 / mean / max / count of ``samples`` (ms), with what they measure and the samples; None when empty."""
    if not samples:
        return None
    a = np.asarray(samples, np.float64)
    return {"what": what, "p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)),
            "mean": float(a.mean()), "max": float(a.max()), "count": int(a.size), "samples": [float(v) for v in a]}


def _int(node: dict | None, key: str) -> int | None:
    try:
        return int(float(node[key])) if node and key in node else None
    except ValueError:
        return None


def node_counters(node: dict | None, use_sim_time: bool) -> dict | None:
    """The node's diagnostics for the report: without sim time its stamp→publish latencies compare bag stamps with
    the wall clock, so they are left out (and the report says why)."""
    node = node or None
    if node and not use_sim_time:
        node = {k: v for k, v in node.items() if not k.startswith("latency_")}
        node["latency_note"] = "stamp→publish latency needs --use-sim-time (bag stamps vs wall clock)"
    return node


def camera_summary(channel: Channel, result: dict, mode: str, node: dict | None, by_height: bool) -> dict:
    """The report's part of one camera: topics, frames, depth, segmentation, camera_height, latency_ms,
    latency_depth_ms, node. ``result``: what the run says of the camera (sent, latency_ms, and live:
    depth_latency_ms, incomplete, scale_unpaired); ``node``: its diagnostics (:func:`node_counters`)."""
    reader, recorder, evaluator = channel.reader, channel.recorder, channel.evaluator
    sent = result.get("sent", recorder.delivered)
    delivered = recorder.delivered
    dropped_by_node = _int(node, "frames_dropped")
    return {
        "topics": channel.topics.as_dict(),
        "frames": {"in_bag": channel.in_bag, "sent": sent, "delivered": delivered,
                   "dropped": sent - delivered, "incomplete": result.get("incomplete"),
                   "scale_unpaired": result.get("scale_unpaired") if by_height else None,
                   "dropped_by_node": dropped_by_node,
                   "lost": (sent - delivered - dropped_by_node) if dropped_by_node is not None else None,
                   "evaluated_depth": evaluator.evaluated_depth, "evaluated_semantic": evaluator.evaluated_semantic,
                   "without_ground_truth": recorder.without_ground_truth,
                   "unreadable": sum(reader.unreadable.values()), "unreadable_kinds": dict(reader.unreadable)},
        **evaluator.summary(),
        "latency_ms": percentiles(result.get("latency_ms", []), LATENCY_WHAT[mode]),
        "latency_depth_ms": percentiles(result.get("depth_latency_ms", []), "send → depth arrival (live)"),
        "node": node,
    }


def nothing_evaluated(channel: Channel, sent: int) -> str | None:
    """Why no frame of the camera was evaluated (an error of the run), or None when some were."""
    reader, image_topic = channel.reader, channel.topics.image
    if channel.recorder.delivered:
        return None
    if sent:
        return f"the node delivered none of the {sent} frames sent (depth and labels of a frame never both arrived)"
    unreadable = dict(reader.unreadable)
    if unreadable:
        kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(unreadable.items()))
        return f"no image on {image_topic} could be decoded ({kinds}): 0 frames evaluated"
    return (f"no message of {image_topic} could be read although the bag's index lists {channel.in_bag}: its "
            f"metadata.yaml does not match its storage files ({reader.messages} messages read on the replayed "
            f"topics)")
