"""The ROS 2 side of sgdepth_ros: the ``sgdepth_node`` lifecycle node and its small parts.

ROS-free helpers (``image_codec``, ``camera_model``, ``pointcloud``, ``frame_scheduler``,
``stats``, ``params``) hold the logic and are unit-tested without a ROS graph; ``messages``
and ``node`` are the thin rclpy adapter. Nothing below ``sgdepth_ros.predictor`` imports this.
"""
