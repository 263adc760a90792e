"""Rotation ⇄ quaternion conversion and pose validation: re-exported from :mod:`sgdepth_ros.transforms`, the one
implementation (it lives outside ``bag`` so that the node path can use it without importing rosbags)."""
from ..transforms import check_quaternion, check_translation, quaternion_to_rotation, rotation_to_quaternion

__all__ = ["check_quaternion", "check_translation", "quaternion_to_rotation", "rotation_to_quaternion"]
