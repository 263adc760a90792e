"""Ego-motion from the pose net (sgdepth_ros.ego_motion, Predictor wiring, Odometry message), without DDS.

The chaining is checked with a stub pose function that answers the ground-truth relative motion of a known
trajectory (in model units: metric / SCALE), so what is asserted is the convention and the bookkeeping, not a
network's accuracy.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from sgdepth_ros.ego_motion import EgoMotion, OdometryNoise, covariances, scale_translation, twist
from sgdepth_ros.model import CheckpointError
from sgdepth_ros.predictor import Predictor
from sgdepth_ros.transforms import rotation_vector
from training.evaluation.pose import chain_positions, relative_from_global

SCALE = 2.5  # metres per model unit of the stub
H, W = 64, 96


def yaw(angle: float) -> np.ndarray:
    """Rotation about the optical y axis (down): a turn of a forward-looking camera."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def trajectory(n: int = 12) -> np.ndarray:
    """[n,4,4] camera → world: forward 1 m per frame along z, turning 2° per frame, a little bump in y."""
    poses, G = [], np.eye(4)
    for i in range(n):
        poses.append(G.copy())
        step = np.eye(4)
        step[:3, :3] = yaw(math.radians(2.0))
        step[:3, 3] = [0.0, 0.05 * (-1) ** i, 1.0]
        G = G @ step
    return np.stack(poses)


class StubPose:
    """PoseFn answering inv(G_a)·G_b in model units; the frame index travels in the network input's first pixel."""

    def __init__(self, global_poses: np.ndarray, scale: float = SCALE):
        self.G, self.scale, self.calls = global_poses, scale, []

    def __call__(self, previous, current):
        a, b = int(previous[0, 0, 0, 0]), int(current[0, 0, 0, 0])
        self.calls.append((a, b))
        return scale_translation(np.linalg.inv(self.G[a]) @ self.G[b], 1 / self.scale)[None]


def frame(i: int) -> np.ndarray:
    return np.full((3, H, W), float(i), np.float32)


def stamp(i: int) -> int:
    return 1_000_000_000 + i * 100_000_000  # 10 Hz


def test_known_relative_motions_chain_to_the_known_trajectory():
    G = trajectory()
    tracker = EgoMotion(StubPose(G))
    assert tracker.update(frame(0), SCALE, stamp(0)) is None  # the origin
    for i in range(1, len(G)):
        step = tracker.update(frame(i), SCALE, stamp(i))
        np.testing.assert_allclose(step.pose, np.linalg.inv(G[0]) @ G[i], atol=1e-9)
        np.testing.assert_allclose(step.relative, np.linalg.inv(G[i - 1]) @ G[i], atol=1e-9)
        assert step.dt == pytest.approx(0.1) and step.steps == i and step.scale == SCALE
    # the same convention as the pose evaluation (training/evaluation/pose.py): chaining its relatives agrees
    np.testing.assert_allclose(step.pose[:3, 3], chain_positions(relative_from_global(G))[-1], atol=1e-9)
    assert step.distance == pytest.approx(sum(np.linalg.norm([0.0, 0.05, 1.0]) for _ in range(len(G) - 1)))


def test_the_scale_makes_translation_metric_and_leaves_rotation_alone():
    G = trajectory(3)
    tracker = EgoMotion(StubPose(G))
    tracker.update(frame(0), SCALE, stamp(0))
    step = tracker.update(frame(1), 2 * SCALE, stamp(1))  # twice the true scale: twice the translation
    truth = np.linalg.inv(G[0]) @ G[1]
    np.testing.assert_allclose(step.relative[:3, 3], 2 * truth[:3, 3], atol=1e-9)
    np.testing.assert_allclose(step.relative[:3, :3], truth[:3, :3], atol=1e-9)


def test_no_scale_publishes_nothing_and_the_first_scale_covers_the_steps_before_it():
    G = trajectory(6)
    tracker = EgoMotion(StubPose(G))
    tracker.update(frame(0), None, stamp(0))
    assert tracker.update(frame(1), None, stamp(1)) is None  # model units are never handed out
    assert tracker.update(frame(2), None, stamp(2)) is None
    step = tracker.update(frame(3), SCALE, stamp(3))
    np.testing.assert_allclose(step.pose, np.linalg.inv(G[0]) @ G[3], atol=1e-9)  # origin kept: frame 0
    np.testing.assert_allclose(step.relative, np.linalg.inv(G[0]) @ G[3], atol=1e-9)
    assert step.dt == pytest.approx(0.3) and step.steps == 3
    step = tracker.update(frame(4), SCALE, stamp(4))
    np.testing.assert_allclose(step.relative, np.linalg.inv(G[3]) @ G[4], atol=1e-9)
    assert step.dt == pytest.approx(0.1)


def test_relative_mode_never_gives_a_step():
    G = trajectory(5)
    tracker = EgoMotion(StubPose(G))
    assert all(tracker.update(frame(i), None, stamp(i)) is None for i in range(5))


@pytest.mark.parametrize("how", ["reset", "stamp_back", "gap"])
def test_a_new_timeline_starts_a_new_origin(how):
    G = trajectory(8)
    stub = StubPose(G)
    tracker = EgoMotion(stub, max_gap_s=1.0)
    for i in range(4):
        tracker.update(frame(i), SCALE, stamp(i))
    if how == "reset":
        tracker.reset()
        origin_stamp = stamp(4)
    elif how == "stamp_back":
        origin_stamp = stamp(0)  # a bag restarted
    else:
        origin_stamp = stamp(4) + 2_000_000_000  # 2 s without a frame
    assert tracker.update(frame(4), SCALE, origin_stamp) is None  # frame 4 is the new origin
    assert tracker.resets == 1
    step = tracker.update(frame(5), SCALE, origin_stamp + 100_000_000)
    np.testing.assert_allclose(step.pose, np.linalg.inv(G[4]) @ G[5], atol=1e-9)
    assert step.steps == 1 and step.distance == pytest.approx(np.linalg.norm(step.relative[:3, 3]))
    assert (3, 4) not in stub.calls  # no pose net call across the break


def test_unstamped_frames_chain_without_a_dt_and_bad_input_is_rejected():
    G = trajectory(3)
    tracker = EgoMotion(StubPose(G))
    tracker.update(frame(0), SCALE)
    step = tracker.update(frame(1), SCALE)
    assert step.dt is None and twist(step) is None
    pose_cov, twist_cov = covariances(step)
    assert twist_cov[0, 0] == -1 and not twist_cov.ravel()[1:].any()  # "no estimate"
    with pytest.raises(ValueError, match="scale"):
        tracker.update(frame(2), 0.0)
    with pytest.raises(ValueError, match=r"\[3,H,W\]"):
        tracker.update(np.zeros((2, 3, H, W), np.float32), SCALE)


def test_a_new_input_size_starts_a_new_timeline():
    G = trajectory(3)
    tracker = EgoMotion(StubPose(G))
    tracker.update(frame(0), SCALE, stamp(0))
    assert tracker.update(np.full((3, H, 2 * W), 1.0, np.float32), SCALE, stamp(1)) is None
    assert tracker.resets == 1


def test_twist_is_the_step_velocity_in_the_current_camera_frame():
    G = trajectory(3)
    tracker = EgoMotion(StubPose(G))
    tracker.update(frame(0), SCALE, stamp(0))
    step = tracker.update(frame(1), SCALE, stamp(1))
    linear, angular = twist(step)
    R, t = step.relative[:3, :3], step.relative[:3, 3]
    np.testing.assert_allclose(linear, R.T @ t / 0.1, atol=1e-9)
    np.testing.assert_allclose(angular, [0.0, math.radians(2.0) / 0.1, 0.0], atol=1e-9)
    np.testing.assert_allclose(rotation_vector(yaw(0.3)), [0, 0.3, 0], atol=1e-12)


def test_pose_covariance_grows_with_the_distance_travelled():
    G = trajectory(10)
    tracker = EgoMotion(StubPose(G))
    tracker.update(frame(0), SCALE, stamp(0))
    steps = [tracker.update(frame(i), SCALE, stamp(i)) for i in range(1, 10)]
    variances = [covariances(s)[0][0, 0] for s in steps]
    assert all(b > a for a, b in zip(variances, variances[1:]))
    noise = OdometryNoise()
    sigma = noise.position_floor + noise.position_per_m * steps[-1].distance
    assert math.sqrt(variances[-1]) == pytest.approx(sigma)
    pose_cov, twist_cov = covariances(steps[-1])
    for cov in (pose_cov, twist_cov):
        assert np.all(np.diag(cov) > 0) and np.count_nonzero(cov - np.diag(np.diag(cov))) == 0


def test_a_long_chain_stays_a_rigid_transform():
    rng = np.random.default_rng(0)

    def noisy(previous, current):
        T = np.eye(4)
        T[:3, :3] = yaw(0.01) + rng.normal(0, 1e-6, (3, 3))  # fp32-like non-orthogonality
        T[:3, 3] = [0, 0, 0.4]
        return T[None]

    tracker = EgoMotion(noisy)
    tracker.update(frame(0), SCALE)
    for _ in range(3000):
        step = tracker.update(frame(0), SCALE)
    R = step.pose[:3, :3]
    assert np.abs(R @ R.T - np.eye(3)).max() < 1e-9 and np.linalg.det(R) == pytest.approx(1.0)


# ---- the Predictor's wiring ------------------------------------------------------------------
def test_a_checkpoint_without_pose_net_is_a_clear_error(ours_safetensors):
    with pytest.raises(CheckpointError, match=r"pose network.*--keep-pose"):
        Predictor(ours_safetensors, device="cpu", backend="torch", ego_motion=True)


def test_without_ego_motion_the_pose_net_is_dropped(reference_pth, rgb):
    predictor = Predictor(reference_pth, device="cpu", backend="torch", input_size=(96, 64))
    assert predictor.pose_net is None and predictor.backend.model.pose is None
    assert predictor.predict(rgb).network_input is None
    with pytest.raises(RuntimeError, match="ego_motion=True"):
        predictor.ego_motion_tracker()


def test_predictor_runs_the_pose_net_between_consecutive_frames(reference_pth, model, rgb):
    import torch

    from sgdepth_ros.preprocess import normalize, resize_rgb

    predictor = Predictor(reference_pth, device="cpu", backend="torch", input_size=(96, 64), ego_motion=True,
                          scale_mode="fixed", scale_factor=3.0)
    first = predictor.predict(rgb)
    second = predictor.predict(rgb[:, ::-1].copy())
    assert first.network_input.shape == (3, 64, 96) and first.network_input.dtype == np.float32
    np.testing.assert_array_equal(first.network_input, normalize([resize_rgb(rgb, (96, 64))])[0])
    T = predictor.relative_pose(first.network_input[None], second.network_input[None])
    with torch.no_grad():
        expected = model.pose(torch.from_numpy(first.network_input[None]),
                              torch.from_numpy(second.network_input[None]), invert=False)[0].double().numpy()
    np.testing.assert_allclose(T[0], expected, rtol=1e-4, atol=1e-5)  # pose(previous, current, invert=False)

    tracker = predictor.ego_motion_tracker()
    assert tracker.update(first.network_input, first.scale, 1) is None
    step = tracker.update(second.network_input, second.scale, 2)
    np.testing.assert_allclose(step.relative[:3, 3], 3.0 * expected[:3, 3], rtol=1e-4, atol=1e-5)


def test_odometry_message_frames_stamp_pose_and_covariance():
    from std_msgs.msg import Header

    from sgdepth_ros.ros.odometry import odometry_message
    from sgdepth_ros.transforms import quaternion_to_rotation

    G = trajectory(4)
    tracker = EgoMotion(StubPose(G))
    for i in range(4):
        step = tracker.update(frame(i), SCALE, stamp(i))
    header = Header(frame_id="camera_optical_frame")
    header.stamp.sec, header.stamp.nanosec = 1, 300_000_000
    msg = odometry_message(step, header, "camera_odom")
    assert (msg.header.frame_id, msg.child_frame_id) == ("camera_odom", "camera_optical_frame")
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (1, 300_000_000)
    p, q = msg.pose.pose.position, msg.pose.pose.orientation
    np.testing.assert_allclose([p.x, p.y, p.z], step.pose[:3, 3])
    np.testing.assert_allclose(quaternion_to_rotation((q.x, q.y, q.z, q.w)), step.pose[:3, :3], atol=1e-9)
    np.testing.assert_allclose(np.reshape(msg.pose.covariance, (6, 6)), covariances(step)[0])
    np.testing.assert_allclose(np.reshape(msg.twist.covariance, (6, 6)), covariances(step)[1])
    assert msg.twist.twist.linear.z == pytest.approx(twist(step)[0][2])


def test_a_file_written_with_keep_pose_serves_ego_motion(model, tmp_path):
    from sgdepth_ros.model import save_checkpoint

    path = save_checkpoint(model, tmp_path / "with_pose.safetensors", {"provenance": {"source": "test"}},
                           inference_only=False)
    predictor = Predictor(path, device="cpu", backend="torch", input_size=(96, 64), ego_motion=True)
    x = np.zeros((1, 3, 64, 96), np.float32)
    T = predictor.relative_pose(x, x)
    assert T.shape == (1, 4, 4) and T.dtype == np.float64
    np.testing.assert_allclose(T[0, :3, :3] @ T[0, :3, :3].T, np.eye(3), atol=1e-5)


def test_the_odometry_path_imports_no_torch_rosbags_or_training():
    import subprocess
    import sys

    code = ("import sys, sgdepth_ros.ego_motion, sgdepth_ros.ros.odometry; "
            "print(sorted(m for m in ('torch', 'rosbags', 'training', 'matplotlib') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout
