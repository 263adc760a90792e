"""Pose evaluation (spec §6.3): the reference's 5-frame-snippet ATE, plus whole-trajectory drift figures.

Conventions: poses are [N,4,4] float64. ``global_poses[i]`` is camera i → world (KITTI odometry ``poses.txt``).
A *relative* pose ``rel[i]`` is the transform the pose net predicts for the frame pair (i, i+1) with
``invert=False`` — SGDepth's ``('cam_T_cam', 0, 1)``, mapping points of camera i+1 into camera i — so the ground truth
is ``inv(G_i) · G_{i+1}`` and chaining ``rel[0] · rel[1] · …`` gives camera k → camera 0.

The snippet protocol (SfMLearner / monodepth2 / SGDepth ``eval_pose.py``): for every start frame, chain the
``track_length − 1`` relative poses of the snippet into ``track_length`` camera positions, translate the predicted
track so that its first position matches, fit one least-squares scale, and take ‖error‖₂ over the positions divided
by their count. Mean and std over all snippets.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TRACK_LENGTH = 5


def relative_from_global(global_poses: np.ndarray) -> np.ndarray:
    """[N,4,4] camera→world → [N−1,4,4] relative poses inv(G_i)·G_{i+1} (camera i+1 → camera i)."""
    g = np.asarray(global_poses, np.float64)
    return np.linalg.inv(g[:-1]) @ g[1:]


def chain_positions(relative: np.ndarray) -> np.ndarray:
    """[M,4,4] relative poses → [M+1,3] camera positions in the first camera's frame (the first is the origin)."""
    positions = [np.zeros(3)]
    pose = np.eye(4)
    for rel in relative:
        pose = pose @ rel
        positions.append(pose[:3, 3].copy())
    return np.stack(positions)


def snippet_ate(gt_xyz: np.ndarray, pred_xyz: np.ndarray) -> float:
    """ATE of one snippet: align the first positions, one least-squares scale, √Σ‖e‖² / number of positions.

    gt_xyz, pred_xyz: [T,3] (metres for the ground truth; any unit for the prediction)."""
    pred = pred_xyz + (gt_xyz[0] - pred_xyz[0])
    denom = float(np.sum(pred ** 2))
    scale = float(np.sum(gt_xyz * pred)) / denom if denom > 0 else 0.0
    return float(np.sqrt(np.sum((scale * pred - gt_xyz) ** 2)) / len(gt_xyz))


def snippet_ates(gt_relative: np.ndarray, pred_relative: np.ndarray, track_length: int = TRACK_LENGTH) -> np.ndarray:
    """ATE of every snippet of ``track_length`` frames (start frames 0 … N−track_length+1); [S] float64."""
    if gt_relative.shape != pred_relative.shape:
        raise ValueError(f"ground truth {gt_relative.shape} and prediction {pred_relative.shape} differ")
    steps = track_length - 1
    return np.array([snippet_ate(chain_positions(gt_relative[i:i + steps]), chain_positions(pred_relative[i:i + steps]))
                     for i in range(len(gt_relative) - steps + 1)])


@dataclass(frozen=True)
class TrajectoryErrors:
    """Whole-trajectory figures after one global least-squares scale (the prediction's unit is unknown).

    scale: metres per predicted unit; ate_rmse: RMS position error (m) of the scaled trajectory;
    drift_per_10m: mean translation error (m) over all sub-trajectories of 10 m path length, from their start frame
    (relative pose error, the KITTI odometry idea at a short segment length); path_length: metres driven.
    """

    scale: float
    ate_rmse: float
    drift_per_10m: float | None
    path_length: float


def trajectory_errors(gt_relative: np.ndarray, pred_relative: np.ndarray, segment_m: float = 10.0,
                      scale: float | None = None) -> TrajectoryErrors:
    """Chain the whole drive and compare; ``scale`` None fits one (least squares over all positions)."""
    gt = chain_positions(gt_relative)
    pred = chain_positions(pred_relative)
    if scale is None:
        denom = float(np.sum(pred ** 2))
        scale = float(np.sum(gt * pred)) / denom if denom > 0 else 0.0
    ate = float(np.sqrt(np.mean(np.sum((scale * pred - gt) ** 2, axis=1))))
    steps = np.linalg.norm(np.diff(gt, axis=0), axis=1)
    distance = np.concatenate([[0.0], np.cumsum(steps)])
    errors = []
    for start in range(len(gt)):
        ends = np.nonzero(distance >= distance[start] + segment_m)[0]
        if not ends.size:
            break
        end = ends[0]
        gt_seg = chain_positions(gt_relative[start:end])[-1]
        pred_seg = chain_positions(pred_relative[start:end])[-1] * scale
        errors.append(float(np.linalg.norm(gt_seg - pred_seg)))
    drift = float(np.mean(errors)) * (10.0 / segment_m) if errors else None
    return TrajectoryErrors(scale, ate, drift, float(distance[-1]))
