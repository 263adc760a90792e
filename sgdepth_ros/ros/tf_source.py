"""TF for the camera height (``scale_mode: camera_height`` with ``ground_frame``): tf2_ros only where it is importable.

tf2_ros comes with a system ROS 2; no tf2 wheel exists on PyPI, so a node started from the PyPI wheels has no TF
and says so at configure (:func:`tf2_available`). Nothing else in the package imports tf2.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def tf2_available() -> bool:
    """True when ``tf2_ros`` imports (a system ROS 2 with tf2 sourced)."""
    try:
        import tf2_ros  # noqa: F401
    except Exception:  # ImportError, or a broken install whose shared libraries do not load
        return False
    return True


@dataclass
class TfListener:
    """A tf2 buffer filled by a listener on the node's own /tf and /tf_static subscriptions (spun by the node's
    executor). ``latest``: the lookup time that asks for the newest transform."""

    buffer: Any
    listener: Any
    latest: Any

    @classmethod
    def start(cls, node) -> "TfListener":
        from rclpy.time import Time
        from tf2_ros import Buffer, TransformListener

        buffer = Buffer()
        return cls(buffer, TransformListener(buffer, node, spin_thread=False), Time())

    def stop(self) -> None:
        """Remove the listener's subscriptions (rclpy ≥ Humble has ``unregister``)."""
        unregister = getattr(self.listener, "unregister", None)
        if unregister is not None:
            unregister()
