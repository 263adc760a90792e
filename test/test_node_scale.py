"""``scale_mode: camera_height`` in the real node (its own process, real DDS on loopback, a random ROS_DOMAIN_ID):
the released-weights layout (a reference-format model.pth made from the shipped model, which therefore stores no
scale) on frames of the synthetic world's held-out test drive, camera 1.65 m above the road.

The first frames (before ``scale_min_samples`` frames with road) go to ``depth/relative`` and ``points/relative``;
then ``depth`` and ``points`` carry metres and ``depth/scale`` the factor, which is compared with the ground truth's
median scaling ratio (median(gt) / median(model-unit depth), the evaluators' convention, ``median_ratio``). A stamp
jump back (a bag loop) starts over. A camera_height node without a height source refuses to start.
"""
from __future__ import annotations

import importlib.util
import math
import time

import cv2
import numpy as np
import pytest
import torch

from sgdepth_ros.default_model import default_model_path
from sgdepth_ros.metrics.depth import evaluation_mask, median_ratio
from sgdepth_ros.model import load_checkpoint
from sgdepth_ros.ros.pointcloud import unpack_points

import rclpy  # part of the test environment (requirements-ros.txt): never skipped
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Float32, Header

from sgdepth_ros.ros.probe import Probe
from test_node import ros_env, start_node  # noqa: F401 (the node tests' shared fixture and starter)

# make_default_model.sh trains the shipped model on `synth --drives 12 --frames 80 --seed 7` (and, first, on drives
# 0-5 of the same towns): the last drive (index 11) is the held-out test drive
SEED, DRIVE, DRIVE_FRAMES = 7, 11, 80
FRAME_INDICES = tuple(range(0, DRIVE_FRAMES, 10))  # 8 frames, 1 s apart on the drive
IMG_W, IMG_H = 416, 128
NET_W, NET_H = 320, 96  # the shipped model's training size (a model.pth carries no size: set explicitly)
CAMERA_HEIGHT_M = 1.65
MIN_SAMPLES = 3  # the node's default scale_min_samples
T0 = 1_700_000_000
TOPICS = ["depth", "depth/relative", "points", "points/relative"]


@pytest.fixture(scope="module")
def reference_checkpoint(tmp_path_factory) -> str:
    """The shipped model saved in the released-weights layout: a bare state_dict, no metadata, no stored scale."""
    path = tmp_path_factory.mktemp("reference") / "model.pth"
    torch.save(load_checkpoint(default_model_path()).state_dict(), path)
    return str(path)


@pytest.fixture(scope="module")
def drive():
    """Frames of the held-out test drive: (rgb 416×128 uint8, ground-truth depth in metres, NaN = sky), and K."""
    from sgdepth_training.synth.camera import kitti_camera
    from sgdepth_training.synth.render import Renderer
    from sgdepth_training.synth.world import make_world

    camera = kitti_camera(IMG_W, IMG_H)
    renderer = Renderer(make_world(SEED, DRIVE_FRAMES, DRIVE), camera, threads=2)
    try:
        frames = [renderer.render(i, 1.0, 0.0, np.random.default_rng([SEED, DRIVE, i, 1])) for i in FRAME_INDICES]
    finally:
        renderer.close()
    return [(f.rgb, f.depth) for f in frames], camera.K


def ground_truth_scale(reference_checkpoint: str, frames) -> float:
    """Median over the frames of median(gt)/median(model-unit depth), capped protocol, at the camera's size."""
    from sgdepth_ros.predictor import Predictor

    predictor = Predictor(reference_checkpoint, device="cpu", backend="torch", input_size=(NET_W, NET_H),
                          scale_mode="relative", tasks=("depth",), output_resolution="input")
    ratios = []
    for rgb, gt in frames:
        mask = evaluation_mask(gt, "capped")
        ratios.append(median_ratio(gt[mask], predictor.predict(rgb).depth[mask]))
    return float(np.median(ratios))


def header(stamp_s: float) -> Header:
    h = Header(frame_id="camera_optical_frame")
    h.stamp.sec, h.stamp.nanosec = int(stamp_s), int(round((stamp_s % 1) * 1e9))
    return h


def image_msg(rgb: np.ndarray, h: Header) -> Image:
    msg = Image(header=h, height=rgb.shape[0], width=rgb.shape[1], encoding="rgb8", is_bigendian=0,
                step=rgb.shape[1] * 3)
    msg.data = rgb.tobytes()
    return msg


def camera_info(h: Header, K: np.ndarray) -> CameraInfo:
    k = [float(v) for v in K.reshape(-1)]
    return CameraInfo(header=h, width=IMG_W, height=IMG_H, k=k, p=[*k[:3], 0.0, *k[3:6], 0.0, *k[6:], 0.0],
                      distortion_model="plumb_bob", d=[0.0] * 5, r=[1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0])


def depth_array(msg: Image) -> np.ndarray:
    assert msg.encoding == "32FC1"
    return np.frombuffer(bytes(msg.data), np.float32).reshape(msg.height, -1)[:, : msg.width]


def frames_fed(diag: dict) -> int:
    return sum(int(diag.get(f"scale/{kind}", 0)) for kind in ("accepted", "rejected", "missing"))


class Feed:
    """Sends one frame at a time and waits for its depth (on either topic) and its cloud."""

    def __init__(self, probe: Probe, K: np.ndarray):
        self.probe, self.K = probe, K
        self.scales: list[float] = []
        probe.create_subscription(Float32, "depth/scale", lambda m: self.scales.append(m.data), QoSProfile(depth=50))

    def outputs(self, h: Header) -> dict:
        return {topic: msg for topic in TOPICS for msg in self.probe.received(topic) if msg.header.stamp == h.stamp}

    def send(self, rgb: np.ndarray, stamp_s: float, timeout: float = 90.0) -> dict:
        h = header(stamp_s)
        done = lambda: {"depth", "depth/relative"} & set(self.outputs(h)) and {"points", "points/relative"} & set(
            self.outputs(h))
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline:
            # re-sent if unanswered after 5 s: a message sent while discovery settles can be lost (a duplicate
            # stamp of a frame that did arrive is refused by the node, so no frame is measured twice)
            self.probe.info_pub.publish(camera_info(h, self.K))
            self.probe.image_pub.publish(image_msg(rgb, h))
            self.probe.spin_until(done, min(5.0, deadline - time.monotonic()))
        out = self.outputs(h)
        assert done(), f"no depth/points for the frame at {stamp_s}: got {sorted(out)}"
        return out


@pytest.fixture(scope="module")
def camera_height_node(ros_env, reference_checkpoint):
    node = start_node({"model_path": reference_checkpoint, "input_width": NET_W, "input_height": NET_H,
                       "scale_mode": "camera_height", "camera_height": CAMERA_HEIGHT_M,
                       "publish_depth_color": False, "publish_semantic_color": False, "publish_overlay": False},
                      ros_env, "height")
    yield node
    node.stop()


def test_metric_depth_from_the_camera_height_on_a_synthetic_drive(camera_height_node, reference_checkpoint, drive):
    frames, K = drive
    probe = Probe(TOPICS, namespace="/height")
    feed = Feed(probe, K)
    try:
        assert probe.wait_for_subscribers(60), camera_height_node.output
        results = []
        for n, (rgb, _) in enumerate(frames):
            out = feed.send(rgb, T0 + n * 0.1)
            metric = "depth" in out
            assert ("points" in out) == metric and ("depth/relative" in out) != metric, sorted(out)
            if metric:  # the factor is published with each metric frame (its own topic: may arrive just after)
                probe.spin_until(lambda: len(feed.scales) == sum(r[0] for r in results) + 1, 10)
            results.append((metric, out))
        kinds = [metric for metric, _ in results]
        # before min_samples frames with road there is no scale; once there is one it stays (same timeline)
        assert kinds[: MIN_SAMPLES - 1] == [False] * (MIN_SAMPLES - 1) and kinds[-1], kinds
        assert kinds == sorted(kinds), kinds
        assert len(feed.scales) == sum(kinds), (feed.scales, kinds)

        truth = ground_truth_scale(reference_checkpoint, frames)
        scale = feed.scales[-1]
        error = scale / truth - 1
        print(f"\ncamera-height scale ×{scale:.3f} m/unit vs ground-truth median ratio ×{truth:.3f}: "
              f"{100 * error:+.1f} %; per frame {['%.2f' % s for s in feed.scales]}")
        assert abs(error) < 0.25, (scale, truth)

        # depth and points carry metres: over the metric frames the published depth matches the ground truth's
        # median (the per-image median ratio gt/published ≈ 1), and the cloud's z is that depth
        ratios = []
        for (metric, out), (_, gt) in zip(results, frames):
            if not metric:
                continue
            depth = depth_array(out["depth"])
            gt_net = cv2.resize(gt, (NET_W, NET_H), interpolation=cv2.INTER_NEAREST)
            mask = evaluation_mask(gt_net, "capped") & np.isfinite(depth)
            ratios.append(median_ratio(gt_net[mask], depth[mask]))
            z = unpack_points(bytes(out["points"].data))["z"]
            assert np.median(z) == pytest.approx(np.nanmedian(depth[::2, ::2]), rel=0.1)
        assert abs(np.median(ratios) - 1) < 0.25, ratios

        # every frame fed the filter once: accepted, rejected as an outlier, or missing (no road, no CameraInfo)
        assert probe.spin_until(lambda: frames_fed(probe.latest_diagnostics()) == len(frames), 10)
        diag = probe.latest_diagnostics()
        assert diag["scale/mode"] == "camera_height" and diag["scale/metric"] == "true"
        assert float(diag["scale/factor"]) == pytest.approx(scale, rel=1e-5)
        assert diag["scale/height_source"] == "parameter" and float(diag["scale/camera_height_m"]) == 1.65
        assert int(diag["scale/samples"]) >= MIN_SAMPLES and math.isfinite(float(diag["scale/spread"]))

        # a bag loop: the stamps jump back by more than a second → a new timeline, the filter starts over
        out = feed.send(frames[0][0], T0 - 10.0)
        assert "depth/relative" in out and "depth" not in out
        assert probe.spin_until(lambda: probe.latest_diagnostics().get("scale/timeline_resets") == "1", 10)
        assert probe.latest_diagnostics()["scale/metric"] == "false"
        assert "stamps jumped back" in camera_height_node.output
        assert camera_height_node.returncode is None and "Traceback" not in camera_height_node.output
    finally:
        probe.destroy_node()


def test_camera_height_without_a_height_source_refuses_to_start(ros_env, reference_checkpoint):
    node = start_node({"model_path": reference_checkpoint, "scale_mode": "camera_height"}, ros_env, "noheight",
                      wait_for="")
    assert node.wait(120) == 2
    assert "scale_mode camera_height needs camera_height > 0 or ground_frame with tf2_ros available" in node.output
    assert "Traceback" not in node.output


@pytest.mark.skipif(importlib.util.find_spec("tf2_ros") is not None, reason="tf2_ros is importable here")
def test_a_ground_frame_without_tf2_fails_configure_with_what_to_set(ros_env, reference_checkpoint):
    node = start_node({"model_path": reference_checkpoint, "scale_mode": "camera_height",
                       "ground_frame": "base_footprint"}, ros_env, "notf", wait_for="")
    assert node.wait(120) == 1
    out = node.output
    assert "configure failed: scale_mode camera_height needs camera_height > 0 or ground_frame with tf2_ros " \
           "available (ground_frame 'base_footprint' is set, but tf2_ros cannot be imported" in out
    assert "Traceback" not in out
