"""One camera's ROS endpoints: its publishers and subscriptions, made at activate and destroyed at deactivate.

Topics are relative to the node's namespace, under the camera's prefix (``<camera>/``, or none for the node's single
unnamed camera): inputs ``image`` (or ``image/compressed``) and ``camera_info``; outputs as
:func:`messages.output_topics` names them (with a measured scale both the metric and the relative topics of depth and
points, and ``depth/scale``), the latched ``semantic/labels`` and, with ``publish_odometry``, ``odometry``.
"""
from __future__ import annotations

from typing import Any, Callable

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

try:  # rclpy ≥ Iron
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Float32, String

from . import messages
from .output_tasks import TOGGLES


def qos(reliability: str, depth: int) -> QoSProfile:
    """A keep-last profile of ``depth`` with reliability "best_effort" or "reliable"."""
    policy = ReliabilityPolicy.BEST_EFFORT if reliability == "best_effort" else ReliabilityPolicy.RELIABLE
    return QoSProfile(reliability=policy, history=HistoryPolicy.KEEP_LAST, depth=depth)


LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


class CameraPorts:
    """The publishers and subscriptions of one camera on ``node``.

    prefix: the camera's topic prefix; param: a parameter's value as this camera sees it; metric: depth and points
    are always in metres (a constant scale); measured: the scale is measured per frame (each frame goes to the metric
    or the relative topic); odometry: publish ``odometry``; on_image / on_camera_info: the subscription callbacks.
    """

    def __init__(self, node, prefix: str, param: Callable[[str], Any], metric: bool, measured: bool,
                 odometry: bool, on_image: Callable[[Any], None], on_camera_info: Callable[[Any], None]):
        out_qos = qos(param("output_qos_reliability"), param("output_qos_depth"))
        self.pubs: dict = {key: node.create_publisher(kind, prefix + topic, out_qos)
                           for key, (topic, kind) in messages.output_topics(metric or measured).items()}
        self.relative_pubs: dict = {}  # measured scale: depth, points → their relative topics
        if measured:
            self.relative_pubs = {key: node.create_publisher(kind, prefix + topic, out_qos)
                                  for key, (topic, kind) in messages.relative_topics().items()}
            self.pubs["scale"] = node.create_publisher(Float32, prefix + messages.SCALE_TOPIC, out_qos)
        if odometry:  # nav_msgs is imported only when asked for
            from .odometry import Odometry
            self.pubs["odometry"] = node.create_publisher(Odometry, prefix + "odometry", out_qos)
        labels = node.create_publisher(String, prefix + "semantic/labels", LATCHED)
        labels.publish(messages.labels_message())
        self._other_pubs = [labels]
        in_qos = qos(param("input_qos_reliability"), param("input_qos_depth"))
        if param("input_transport") == "compressed":
            image = node.create_subscription(CompressedImage, prefix + "image/compressed", on_image, in_qos)
        else:
            image = node.create_subscription(Image, prefix + "image", on_image, in_qos)
        self.info_sub = node.create_subscription(CameraInfo, prefix + "camera_info", on_camera_info, in_qos)
        # a second, transient-local subscription receives a latched CameraInfo published before the node started
        # (a volatile one only gets later messages); volatile publishers cannot match it, which is silenced
        latched_info = node.create_subscription(
            CameraInfo, prefix + "camera_info", on_camera_info, LATCHED,
            event_callbacks=SubscriptionEventCallbacks(incompatible_qos=lambda event: None))
        self.image_sub = image
        self._subs = [image, self.info_sub, latched_info]

    def info_publishers(self) -> int:
        return self.info_sub.get_publisher_count()

    def wanted(self, param: Callable[[str], Any]) -> set[str]:
        """Outputs that are switched on and have at least one subscriber (on either of their topics, for depth and
        points while the scale is measured)."""
        return {key for key, pub in self.pubs.items()
                if param(TOGGLES[key]) and (pub.get_subscription_count() > 0 or (
                    key in self.relative_pubs and self.relative_pubs[key].get_subscription_count() > 0))}

    def publish(self, messages_: list[tuple[str, Any]], metric: bool) -> None:
        """Publish one frame's (output key, message) pairs; depth and points of a frame without a metric scale go
        to their relative topics."""
        for key, msg in messages_:
            if key not in self.pubs:
                continue  # "scale" without a measured scale
            relative = key in self.relative_pubs and not metric
            (self.relative_pubs if relative else self.pubs)[key].publish(msg)

    def topic_names(self) -> list[str]:
        return [pub.topic_name for pub in [*self.pubs.values(), *self.relative_pubs.values()]]

    def destroy(self, node) -> None:
        for sub in self._subs:
            node.destroy_subscription(sub)
        for pub in [*self.pubs.values(), *self.relative_pubs.values(), *self._other_pubs]:
            node.destroy_publisher(pub)
        self._subs, self.pubs, self.relative_pubs, self._other_pubs = [], {}, {}, []
