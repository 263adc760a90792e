"""Offered QoS profiles recorded per topic in a bag (what ``ros2 bag play`` will offer back).

Two profiles, as the publishers the bag stands in for would offer them:

* ``SENSOR_QOS`` — images, camera infos, /tf: reliable, volatile, keep-last 10 (rclpy's
  default profile; a best-effort subscriber still matches a reliable offer).
* ``STATIC_TF_QOS`` — /tf_static: reliable, transient-local, keep-last 1, as tf2_ros'
  StaticTransformBroadcaster offers it, so that playback latches the static transforms for
  late-joining listeners.

Durations (deadline, lifespan, liveliness lease) are written as 0 s 0 ns, the RMW "default"
value, which every rosbag2 metadata version decodes and rmw treats as "not set" (infinite).
"""
from __future__ import annotations

from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

_UNSET = QosTime(sec=0, nsec=0)


def offered_qos(depth: int, transient_local: bool = False) -> Qos:
    """A reliable keep-last ``depth`` profile; transient-local (latched) or volatile durability."""
    return Qos(
        history=QosHistory.KEEP_LAST,
        depth=depth,
        reliability=QosReliability.RELIABLE,
        durability=QosDurability.TRANSIENT_LOCAL if transient_local else QosDurability.VOLATILE,
        deadline=_UNSET,
        lifespan=_UNSET,
        liveliness=QosLiveliness.AUTOMATIC,
        liveliness_lease_duration=_UNSET,
        avoid_ros_namespace_conventions=False,
    )


SENSOR_QOS = offered_qos(depth=10)
STATIC_TF_QOS = offered_qos(depth=1, transient_local=True)
