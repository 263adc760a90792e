"""rosbag2 writing and reading on the ``rosbags`` library (no rclpy import, usable off-ROS).

``BagWriter`` writes images, compressed images, camera infos and tf into a new MCAP or SQLite3
bag (used by the synthetic world's exporter); ``read_messages`` iterates a bag (replay
evaluation). Modules: ``writer``, ``reader``, ``messages`` (numpy → message objects), ``qos``
(offered profiles), ``transforms`` (rotation ⇄ quaternion).
"""
from .reader import BagMessage, read_messages
from .transforms import quaternion_to_rotation, rotation_to_quaternion
from .writer import BagWriter

__all__ = ["BagMessage", "BagWriter", "quaternion_to_rotation", "read_messages", "rotation_to_quaternion"]
