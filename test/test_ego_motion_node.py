"""publish_odometry: sgdepth_node as a real process over real DDS on loopback publishes the pose net's ego-motion.

A reference-format checkpoint (random weights, with the pose net) and ``scale_mode: fixed`` (so a scale exists):
the Odometry messages carry the parameterised frames and the image stamps, and their poses equal what the ROS-free
Predictor + EgoMotion compute for the same frames. A checkpoint without the pose net fails configure clearly.
"""
from __future__ import annotations

import time

import numpy as np

import rclpy  # part of the test environment (requirements-ros.txt): never skipped
from nav_msgs.msg import Odometry
from rclpy.qos import QoSProfile
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from sgdepth_ros.ros.launcher import NodeProcess
from sgdepth_ros.ros.probe import Probe
from test_node import ros_env, start_node  # noqa: F401 (the node tests' shared fixture and starter)
from sgdepth_ros.samples import road_scene

NET_W, NET_H = 320, 96
SCALE = 1.0
OFF = {name: False for name in ("publish_depth", "publish_depth_color", "publish_semantic", "publish_semantic_color",
                                "publish_overlay", "publish_points")}


def image_message(rgb: np.ndarray, sec: int, nanosec: int) -> Image:
    h = Header(frame_id="camera_optical")
    h.stamp.sec, h.stamp.nanosec = sec, nanosec
    msg = Image(header=h, height=rgb.shape[0], width=rgb.shape[1], encoding="rgb8", is_bigendian=0,
                step=rgb.shape[1] * 3)
    msg.data = rgb.tobytes()
    return msg


def frames(n: int) -> list[np.ndarray]:
    """A camera moving over a scene: a horizontal crop window sliding right by 6 px per frame."""
    wide = road_scene(160 + 6 * n, 80, seed=5)
    return [np.ascontiguousarray(wide[:, 6 * i:6 * i + 160]) for i in range(n)]


STAMPS = [(1_700_000_000, 0), (1_700_000_000, 100_000_000), (1_700_000_000, 200_000_000)]


def send_one_by_one(probe: Probe, node: NodeProcess, images: list[np.ndarray], stamps: list[tuple[int, int]]) -> None:
    """Send each frame and wait until the node's /diagnostics count it processed before sending the next."""
    def processed() -> int:
        return int(probe.latest_diagnostics().get("frames_processed", 0))

    for i, (rgb, (sec, nsec)) in enumerate(zip(images, stamps)):
        msg = image_message(rgb, sec, nsec)
        deadline = time.monotonic() + 60
        while processed() <= i:
            assert time.monotonic() < deadline, node.output[-3000:]
            probe.image_pub.publish(msg)  # a resend (lost during discovery) is a counted duplicate stamp
            probe.spin_until(lambda: processed() > i, 5.0)


def test_odometry_frames_stamps_and_poses(ros_env, reference_pth):
    from sgdepth_ros.predictor import Predictor

    node = start_node({"model_path": reference_pth, "input_width": NET_W, "input_height": NET_H,
                       "scale_mode": "fixed", "scale_factor": SCALE, "publish_odometry": True,
                       "odom_frame": "cam_odom", **OFF}, ros_env, "ego")
    probe = Probe([], namespace="/ego")
    received: list[Odometry] = []
    sub = probe.create_subscription(Odometry, "odometry", received.append, QoSProfile(depth=50))
    try:
        assert probe.spin_until(lambda: probe.image_pub.get_subscription_count() > 0
                                and sub.get_publisher_count() > 0, 60), node.output
        images = frames(3)
        send_one_by_one(probe, node, images, STAMPS)
        assert probe.spin_until(lambda: len(received) >= 2, 30), node.output[-3000:]
        # the first frame is the origin: one message per later frame, with that frame's stamp
        assert [(m.header.stamp.sec, m.header.stamp.nanosec) for m in received] == STAMPS[1:]
        assert {(m.header.frame_id, m.child_frame_id) for m in received} == {("cam_odom", "camera_optical")}

        # the same frames through the ROS-free path give the same poses
        predictor = Predictor(reference_pth, device="cpu", backend="torch", input_size=(NET_W, NET_H),
                              scale_mode="fixed", scale_factor=SCALE, ego_motion=True, tasks=("depth",))
        tracker = predictor.ego_motion_tracker()
        steps = [tracker.update(predictor.predict(rgb).network_input, SCALE, sec * 10**9 + nsec)
                 for rgb, (sec, nsec) in zip(images, STAMPS)]
        for msg, step in zip(received, steps[1:]):
            p = msg.pose.pose.position
            np.testing.assert_allclose([p.x, p.y, p.z], step.pose[:3, 3], rtol=1e-3, atol=1e-5)
            cov = np.reshape(msg.pose.covariance, (6, 6))
            assert np.all(np.diag(cov) > 0)
        assert np.reshape(received[1].pose.covariance, (6, 6))[0, 0] > np.reshape(received[0].pose.covariance,
                                                                                  (6, 6))[0, 0]
        assert node.returncode is None and "Traceback" not in node.output
    finally:
        probe.destroy_node()
        node.stop()


def test_checkpoint_without_pose_net_fails_configure_clearly(ros_env, ours_safetensors):
    node = start_node({"model_path": ours_safetensors, "input_width": NET_W, "input_height": NET_H,
                       "scale_mode": "fixed", "scale_factor": SCALE, "publish_odometry": True},
                      ros_env, "ego_nopose", wait_for="")
    assert node.wait(120) == 1
    out = node.output
    assert "configure failed" in out and "pose network" in out and "--keep-pose" in out
    assert "Traceback" not in out


def test_relative_depth_publishes_no_odometry(ros_env, reference_pth):
    """No scale (scale_mode relative): frames are processed, the pose net runs, and nothing goes out as metres."""
    node = start_node({"model_path": reference_pth, "input_width": NET_W, "input_height": NET_H,
                       "scale_mode": "relative", "publish_odometry": True, **OFF}, ros_env, "ego_rel")
    probe = Probe([], namespace="/ego_rel")
    received: list[Odometry] = []
    sub = probe.create_subscription(Odometry, "odometry", received.append, QoSProfile(depth=50))
    try:
        assert "no odometry is published" in node.output
        assert probe.spin_until(lambda: probe.image_pub.get_subscription_count() > 0
                                and sub.get_publisher_count() > 0, 60), node.output
        send_one_by_one(probe, node, frames(3), STAMPS)
        probe.spin_for(1.0)
        assert received == [] and node.returncode is None and "Traceback" not in node.output
    finally:
        probe.destroy_node()
        node.stop()
