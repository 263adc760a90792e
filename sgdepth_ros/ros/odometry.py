"""Ego-motion → nav_msgs/Odometry at the node's edge (the only odometry-message module).

What the message says, and what it does not:
- ``header.frame_id`` = the ``odom_frame`` parameter; that frame is the camera's OPTICAL frame (x right, y down,
  z forward, REP 103 optical) at the first processed frame of the timeline. It is not a REP 105 ``odom`` frame
  (no gravity alignment, no base_link offset) unless someone publishes the transform that makes it one.
- ``child_frame_id`` = the image's ``header.frame_id`` (the camera's optical frame); ``header.stamp`` = the image
  stamp. ``pose``: camera(t) in ``odom_frame``, metres (scaled with the frame's scale). ``twist``: the velocity over
  the last step, in the child frame.
- Covariances: :func:`sgdepth_ros.ego_motion.covariances` — large, growing with the distance travelled, not
  calibrated (see :class:`sgdepth_ros.ego_motion.OdometryNoise`).
"""
from __future__ import annotations

from nav_msgs.msg import Odometry
from std_msgs.msg import Header

from ..ego_motion import EgoStep, OdometryNoise, covariances, twist
from ..transforms import rotation_to_quaternion


def odometry_message(step: EgoStep, image_header: Header, odom_frame: str,
                     noise: OdometryNoise = OdometryNoise()) -> Odometry:
    """One EgoStep of the camera whose image had ``image_header`` → Odometry (see the module docstring)."""
    msg = Odometry()
    msg.header.stamp = image_header.stamp
    msg.header.frame_id = odom_frame
    msg.child_frame_id = image_header.frame_id
    position, orientation = msg.pose.pose.position, msg.pose.pose.orientation
    position.x, position.y, position.z = (float(v) for v in step.pose[:3, 3])
    orientation.x, orientation.y, orientation.z, orientation.w = rotation_to_quaternion(step.pose[:3, :3])
    velocity = twist(step)
    if velocity is not None:
        linear, angular = velocity
        msg.twist.twist.linear.x, msg.twist.twist.linear.y, msg.twist.twist.linear.z = (float(v) for v in linear)
        msg.twist.twist.angular.x, msg.twist.twist.angular.y, msg.twist.twist.angular.z = (float(v) for v in angular)
    pose_cov, twist_cov = covariances(step, noise)
    msg.pose.covariance = [float(v) for v in pose_cov.ravel()]
    msg.twist.covariance = [float(v) for v in twist_cov.ravel()]
    return msg
