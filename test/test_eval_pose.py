"""Pose evaluation: the snippet-ATE protocol (spec §6.3) on exact and distorted trajectories, and ``eval-pose`` on a
generated KITTI-odometry tree and a synthetic-world drive folder."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from sgdepth_ros.cli import main
from sgdepth_ros.imageio import write_rgb
from sgdepth_ros.samples import road_scene
from sgdepth_training.data.kitti import write_poses
from sgdepth_training.evaluation.pose import (chain_positions, relative_from_global, snippet_ate, snippet_ates,
                                              trajectory_errors)


def drive(n: int = 30, speed: float = 1.0, yaw_rate: float = 0.02) -> np.ndarray:
    """[n,4,4] camera→world poses of a camera driving forward (+z) on a gentle left curve."""
    poses, pose = [], np.eye(4)
    for _ in range(n):
        poses.append(pose.copy())
        c, s = math.cos(yaw_rate), math.sin(yaw_rate)
        step = np.eye(4)
        step[:3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
        step[2, 3] = speed
        pose = pose @ step
    return np.stack(poses)


def test_relative_poses_chain_back_to_the_trajectory():
    g = drive()
    rel = relative_from_global(g)
    positions = chain_positions(rel)
    np.testing.assert_allclose(positions, (np.linalg.inv(g[0]) @ g)[:, :3, 3], atol=1e-9)


def test_snippet_ate_is_zero_for_the_truth_at_any_scale_and_grows_with_errors():
    rel = relative_from_global(drive())
    scaled = rel.copy()
    scaled[:, :3, 3] *= 0.037  # model units: the protocol fits the scale
    assert np.allclose(snippet_ates(rel, scaled), 0, atol=1e-9)
    noisy = scaled.copy()
    noisy[::2, 0, 3] += 0.01  # sideways jitter every other step
    ates = snippet_ates(rel, noisy)
    assert len(ates) == len(rel) - 3 and ates.mean() > 0.01
    # one snippet by hand: a pure-scale prediction of a straight line has zero error, an offset one does not
    gt = np.array([[0, 0, 0], [0, 0, 1], [0, 0, 2]], float)
    assert snippet_ate(gt, gt * 3 + 5) == pytest.approx(0, abs=1e-12)
    assert snippet_ate(gt, gt + [[0, 0, 0], [1, 0, 0], [0, 0, 0]]) > 0


def test_trajectory_errors_scale_ate_and_drift():
    rel = relative_from_global(drive(n=40, speed=1.0))
    scaled = rel.copy()
    scaled[:, :3, 3] *= 0.5
    exact = trajectory_errors(rel, scaled)
    assert exact.scale == pytest.approx(2.0) and exact.ate_rmse == pytest.approx(0, abs=1e-9)
    assert exact.drift_per_10m == pytest.approx(0, abs=1e-9) and exact.path_length == pytest.approx(39.0)
    long = rel.copy()
    long[:, 2, 3] *= 1.05  # 5 % too long forward: ~0.5 m per 10 m at the true scale
    assert trajectory_errors(rel, long, scale=1.0).drift_per_10m == pytest.approx(0.5, rel=0.1)
    short = trajectory_errors(rel[:5], rel[:5])
    assert short.drift_per_10m is None


@pytest.fixture(scope="module")
def odometry_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("odom")
    for seq in ("09", "10"):
        (root / "sequences" / seq / "image_2").mkdir(parents=True)
        for i in range(7):
            write_rgb(root / "sequences" / seq / "image_2" / f"{i:06d}.png", road_scene(96, 64, seed=i))
        write_poses(root / "poses" / f"{seq}.txt", drive(7))
    return root


def test_eval_pose_on_a_kitti_odometry_tree(odometry_tree, reference_pth, tmp_path, capsys):
    out = tmp_path / "pose.json"
    code = main(["eval-pose", "--model", reference_pth, "--data", str(odometry_tree), "--width", "64", "--height",
                 "64", "--device", "cpu", "--json", str(out), "--no-progress"])
    text = capsys.readouterr().out
    assert code == 0
    assert text.count("Trajectory error:") == 2
    report = json.loads(out.read_text())
    assert set(report["sequences"]) == {"09", "10"}
    assert report["sequences"]["09"]["snippets"] == 3 and report["sequences"]["09"]["frames"] == 7


def test_eval_pose_on_a_synthetic_drive_folder(tmp_path, reference_pth, capsys):
    drive_dir = tmp_path / "2011_09_26" / "2011_09_26_drive_0001_sync"
    (drive_dir / "image_02" / "data").mkdir(parents=True)
    for i in range(6):
        write_rgb(drive_dir / "image_02" / "data" / f"{i:010d}.png", road_scene(96, 64, seed=10 + i))
    write_poses(drive_dir / "poses.txt", drive(6))
    code = main(["eval-pose", "--model", reference_pth, "--layout", "drive", "--data", str(drive_dir), "--width",
                 "64", "--height", "64", "--device", "cpu", "--no-progress"])
    assert code == 0 and "Trajectory error:" in capsys.readouterr().out


def test_eval_pose_refuses_checkpoints_without_a_pose_net_and_missing_data(odometry_tree, ours_safetensors, tmp_path,
                                                                           capsys):
    code = main(["eval-pose", "--model", ours_safetensors, "--data", str(odometry_tree), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "no pose network" in err and "--keep-pose" in err
    code = main(["eval-pose", "--model", ours_safetensors, "--data", str(tmp_path / "nowhere"), "--device", "cpu"])
    assert code == 2 and "no such image folder" in capsys.readouterr().err
