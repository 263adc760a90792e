"""`sgdepth-ros replay --scale-mode camera_height`: the third scaling row (camera height) beside median and fixed, the
per-frame scale (estimate, filtered, ground truth's, error), the camera height read from the bag's /tf_static, and
clear errors when no height can be had.

The drive (8 frames, 416×128, camera 1.65 m above the road, /tf_static base_link → camera_link →
camera_optical_frame) is rendered once per module; the model is the shipped default checkpoint.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import pytest

from sgdepth_ros.bag import BagWriter, read_messages, rotation_to_quaternion
from sgdepth_ros.replay.evaluate import EvalSettings, FrameScale, ReplayEvaluator
from sgdepth_ros.replay.tf_height import (CameraHeight, camera_height_from_bag, camera_height_from_transforms,
                                          static_transforms)

from replay_runner import FRAMES, replay, report

METRICS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")
FAST = ("--backend", "torch", "--device", "cpu")
# camera_link (x forward, y left, z up) → optical (x right, y down, z forward)
R_LINK_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
IDENTITY = (0.0, 0.0, 0.0, 1.0)


@pytest.fixture(scope="module")
def height_run(drive_bag, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("height")
    done = replay(drive_bag, "--out", out, "--scale-mode", "camera_height", *FAST)
    assert done.returncode == 0, done.stdout + done.stderr
    return {"out": out, "report": report(out), "stdout": done.stdout}


# -- offline replay with the camera-height scale ------------------------------------------------------------------


def test_offline_replay_reports_the_camera_height_row_and_per_frame_scales(height_run):
    summary, out = height_run["report"], height_run["out"]
    height = summary["camera_height"]
    assert height["height_m"] == pytest.approx(1.65)
    assert height["height_source"].startswith("bag /tf_static: base_link → camera_link → camera_optical_frame")
    assert summary["settings"]["scale_mode"] == "camera_height"
    assert height["frames"] == height["frames_with_estimate"] == height["frames_with_ground_truth"] == FRAMES
    assert height["frames_with_scale"] == height["frames_scored"] == FRAMES - 2  # the filter needs 3 estimates
    frames = summary["per_frame"]
    assert [r["scale_filtered"] is None for r in frames] == [True, True] + [False] * (FRAMES - 2)
    for r in frames:
        assert abs(r["scale_estimate"] / r["scale_gt"] - 1) < 0.25, r
        assert r["scale_estimate_error"] == pytest.approx(r["scale_estimate"] / r["scale_gt"] - 1)
        if r["scale_filtered"] is not None:
            assert r["scale_error"] == pytest.approx(r["scale_filtered"] / r["scale_gt"] - 1)
            assert abs(r["scale_error"]) < 0.25, r
    scored = [r for r in frames if "abs_rel_camera_height" in r]
    assert height["metrics"]["abs_rel"] == pytest.approx(np.mean([r["abs_rel_camera_height"] for r in scored]))
    assert height["median_same_frames"]["abs_rel"] == pytest.approx(np.mean([r["abs_rel"] for r in scored]))
    errors = np.abs([r["scale_error"] for r in scored])
    assert height["scale_error"]["median_abs"] == pytest.approx(np.median(errors))
    filtered = np.array([r["scale_filtered"] for r in scored])
    assert height["jitter"] == pytest.approx(filtered.std() / filtered.mean())
    # the three rows, the section and its plot
    text = (out / "report.md").read_text()
    assert "| median scaling |" in text and "| fixed scale ×" in text
    assert f"| camera height 1.65 m ({FRAMES - 2} frames) | {height['metrics']['abs_rel']:.3f} |" in text
    assert "## Scale from the camera height" in text and "camera_height_scale.png" in text
    assert (out / "camera_height_scale.png").is_file()
    assert "camera height 1.65 m (bag /tf_static" in height_run["stdout"]
    assert summary["depth"]["fixed"]["scale"] > 0  # the checkpoint's factor still makes the fixed row


def test_frames_before_the_first_scale_go_to_the_relative_topics(height_run):
    """As the node: no metres are claimed before the filter has a scale (depth/relative, points/relative)."""
    counts: dict[str, int] = {}
    for m in read_messages(height_run["report"]["outputs"]["bag"]):
        counts[m.topic] = counts.get(m.topic, 0) + 1
    assert counts["/sgdepth/depth/relative"] == counts["/sgdepth/points/relative"] == 2
    assert counts["/sgdepth/depth"] == counts["/sgdepth/points"] == FRAMES - 2
    assert counts["/sgdepth/semantic"] == FRAMES


def test_the_evaluator_takes_the_applied_factor_off_before_every_row():
    """Depth handed over in metres with FrameScale(applied=s) scores like the same depth in model units: median and
    fixed rows unchanged, and the camera-height row equals the fixed row when the filtered scale is the fixed one."""
    rng = np.random.default_rng(0)
    gt = rng.uniform(2.0, 60.0, (40, 60)).astype(np.float32)
    model = (gt / 50.0 * rng.uniform(0.8, 1.25, gt.shape)).astype(np.float32)  # model units, ~50 m/unit
    plain = ReplayEvaluator(EvalSettings("capped", scale=50.0))
    measured = ReplayEvaluator(EvalSettings("capped", scale=50.0, camera_height_m=1.65,
                                            camera_height_source="test"))
    plain.add(gt, model, None, None)
    record = measured.add(gt, model * np.float32(48.0), None, None, scale=FrameScale(48.0, 49.0, 50.0))
    a, b = plain.summary()["depth"], measured.summary()
    for row in ("median", "fixed"):
        for name in METRICS:
            assert b["depth"][row]["metrics"][name] == pytest.approx(a[row]["metrics"][name], rel=1e-5), (row, name)
    for name in METRICS:
        assert b["camera_height"]["metrics"][name] == pytest.approx(a["fixed"]["metrics"][name], rel=1e-5)
    truth = float(np.median(gt / model))
    assert record["scale_gt"] == pytest.approx(truth, rel=1e-5)
    assert record["scale_error"] == pytest.approx(50.0 / truth - 1, rel=1e-4)
    assert record["scale_estimate_error"] == pytest.approx(49.0 / truth - 1, rel=1e-4)
    assert b["camera_height"]["height_source"] == "test"
    assert plain.summary()["camera_height"] is None  # other modes: no section


# -- live: the node's scale_mode camera_height --------------------------------------------------------------------


def test_live_replay_scores_the_nodes_camera_height_scale(drive_bag, height_run, tmp_path):
    """The node measures the scale itself (scale_mode camera_height, camera_height from the bag's TF via the replay).
    Asserted is what the design guarantees, whatever a busy machine drops: every metric frame's factor arrives on
    depth/scale and takes its depth back to the offline model units (same per-frame scores), the node's filtered scale
    is a median of the offline per-frame estimates of frames up to it, and once metric a drive stays metric."""
    env = {k: v for k, v in os.environ.items() if k != "ROS_DOMAIN_ID"}
    done = replay(drive_bag, "--out", tmp_path, "--mode", "live", "--rate", "0.5", "--use-sim-time",
                  "--scale-mode", "camera_height", "--node-param", "backend=torch", "--device", "cpu",
                  "--drain", "120", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    live, offline = report(tmp_path), height_run["report"]
    assert live["settings"]["scale_mode"] == "camera_height"
    assert "scale applied by the node: metric from the camera height (camera_height 1.65 m)" \
        in live["model_description"]
    frames = live["frames"]
    assert frames["sent"] == FRAMES and frames["delivered"] >= 1 and frames["scale_unpaired"] == 0
    offline_frames = {f["index"]: f for f in offline["per_frame"]}
    metric_seen = False
    for record in live["per_frame"]:
        twin = offline_frames[record["index"]]
        for name in ("abs_rel", "a1", "ratio", "abs_rel_fixed", "scale_gt"):
            assert record[name] == pytest.approx(twin[name], rel=1e-4), (record["index"], name)
        assert record["scale_estimate"] is None  # the node publishes no per-frame estimate
        if record["scale_filtered"] is None:
            assert not metric_seen, record
            continue
        metric_seen = True
        estimates = [offline_frames[i]["scale_estimate"] for i in range(record["index"] + 1)]
        assert min(estimates) * (1 - 1e-6) <= record["scale_filtered"] <= max(estimates) * (1 + 1e-6)
        assert record["scale_error"] == pytest.approx(record["scale_filtered"] / record["scale_gt"] - 1)
    height = live["camera_height"]
    assert height["frames"] == frames["delivered"] and height["height_source"].startswith("bag /tf_static")
    assert height["frames_scored"] == sum(r["scale_filtered"] is not None for r in live["per_frame"])


# -- where the camera height comes from ---------------------------------------------------------------------------


def _args(bag: Path, **kwargs) -> argparse.Namespace:
    return argparse.Namespace(bag=str(bag), **{"scale_mode": "camera_height", "camera_height": None,
                                               "ground_frame": None, **kwargs})


def test_the_parameter_wins_over_tf_and_is_named(drive_bag):
    from sgdepth_ros.commands.replay import _camera_height

    assert _camera_height(_args(drive_bag, camera_height=1.5), "/camera/image_raw") == (1.5, "--camera-height")
    height, source = _camera_height(_args(drive_bag), "/camera/image_raw")
    assert height == pytest.approx(1.65) and "/tf_static" in source
    assert _camera_height(_args(drive_bag, scale_mode="auto"), "/camera/image_raw") == (None, None)
    with pytest.raises(ValueError, match="only with --scale-mode camera_height"):
        _camera_height(_args(drive_bag, scale_mode="auto", camera_height=1.5), "/camera/image_raw")


def test_a_bag_without_tf_and_no_height_is_refused_with_what_to_set(drive_bag, tmp_path, replay_here):
    bare = tmp_path / "no_tf"
    with BagWriter(bare) as writer:
        for m in read_messages(drive_bag):
            if m.topic not in ("/tf_static", "/tf"):
                writer.write_raw(m.topic, m.timestamp_ns, m.msgtype, m.rawdata)
    done = replay_here(bare, "--out", tmp_path / "out", "--scale-mode", "camera_height", *FAST)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "/tf_static" in done.stderr and "--camera-height" in done.stderr
    assert not (tmp_path / "out" / "report.json").exists()


def test_a_bag_without_camera_info_is_refused_for_camera_height(drive_bag, tmp_path, replay_here):
    """The road plane needs the intrinsics: no CameraInfo topic is an argument error, not a replay of relative
    frames."""
    bare = tmp_path / "no_info"
    with BagWriter(bare) as writer:
        for m in read_messages(drive_bag):
            if m.topic != "/camera/camera_info":
                writer.write_raw(m.topic, m.timestamp_ns, m.msgtype, m.rawdata)
    done = replay_here(bare, "--out", tmp_path / "out", "--scale-mode", "camera_height", "--camera-height", "1.65",
                       *FAST)
    assert done.returncode == 2 and "CameraInfo" in done.stderr and "Traceback" not in done.stderr


def write_static_bag(path: Path, transforms: list) -> Path:
    with BagWriter(path) as writer:
        writer.write_static_transforms(1_000_000_000, transforms)
    return path


def pitched(degrees: float) -> tuple:
    """camera_link pitched down by ``degrees`` (about its y axis, left)."""
    a = np.deg2rad(degrees)
    R = np.array([[np.cos(a), 0.0, np.sin(a)], [0.0, 1.0, 0.0], [-np.sin(a), 0.0, np.cos(a)]])
    return rotation_to_quaternion(R)


def test_height_from_a_bag_written_with_tf_static(tmp_path):
    """base_footprint → base_link (0.4 m up) → camera_link (1.25 m up, 1.2 m ahead, pitched 5°) → optical frame:
    1.65 m over base_footprint, 1.25 m over base_link; the pitch does not change the height of the origin."""
    bag = write_static_bag(tmp_path / "tf", [
        ("base_footprint", "base_link", (0.0, 0.0, 0.4), IDENTITY),
        ("base_link", "camera_link", (1.2, 0.0, 1.25), pitched(5.0)),
        ("camera_link", "camera_optical_frame", (0.0, 0.0, 0.0), rotation_to_quaternion(R_LINK_OPTICAL))])
    height = camera_height_from_bag(bag, "camera_optical_frame")
    assert height == CameraHeight(pytest.approx(1.65), "base_footprint", "camera_optical_frame",
                                  ("base_footprint", "base_link", "camera_link", "camera_optical_frame"))
    assert camera_height_from_bag(bag, "/camera_optical_frame", ("base_link",)).height_m == pytest.approx(1.25)
    assert "base_footprint → base_link → camera_link → camera_optical_frame" in height.describe()


def test_a_ground_frame_below_base_link_is_reached_through_their_common_parent(tmp_path):
    """base_link → base_footprint (0.3 m down), base_link → camera_link (1.35 m up): 1.65 m over the footprint."""
    bag = write_static_bag(tmp_path / "tf", [
        ("base_link", "base_footprint", (0.0, 0.0, -0.3), IDENTITY),
        ("base_link", "camera_link", (1.0, 0.0, 1.35), IDENTITY),
        ("camera_link", "camera_optical_frame", (0.0, 0.0, 0.0), rotation_to_quaternion(R_LINK_OPTICAL))])
    height = camera_height_from_bag(bag, "camera_optical_frame")
    assert height.height_m == pytest.approx(1.65) and height.ground_frame == "base_footprint"
    assert height.chain == ("base_footprint", "base_link", "camera_link", "camera_optical_frame")


def test_unconnected_frames_and_a_camera_below_ground_are_refused(tmp_path):
    bag = write_static_bag(tmp_path / "tf", [
        ("base_link", "lidar", (0.0, 0.0, 1.9), IDENTITY),
        ("rig", "camera_optical_frame", (0.0, 0.0, 0.0), rotation_to_quaternion(R_LINK_OPTICAL))])
    with pytest.raises(ValueError, match="connects none of the ground frames") as caught:
        camera_height_from_bag(bag, "camera_optical_frame")
    assert "base_link, camera_optical_frame, lidar, rig" in str(caught.value)
    assert "--camera-height" in str(caught.value) and "--ground-frame" in str(caught.value)
    under = write_static_bag(tmp_path / "under", [("base_link", "camera", (0.0, 0.0, -0.5), IDENTITY)])
    with pytest.raises(ValueError, match="not a camera above the road"):
        camera_height_from_bag(under, "camera")
    with pytest.raises(ValueError, match="loop"):
        camera_height_from_transforms({"a": ("b", np.eye(4)), "b": ("a", np.eye(4))}, "a")


def test_the_last_static_message_wins(tmp_path):
    """A re-published /tf_static (e.g. a recalibrated mount) replaces the earlier transform of the same child."""
    path = tmp_path / "tf"
    with BagWriter(path) as writer:
        writer.write_static_transforms(1_000_000_000, [("base_link", "camera", (0.0, 0.0, 1.5), IDENTITY)])
        writer.write_static_transforms(2_000_000_000, [("base_link", "camera", (0.0, 0.0, 1.7), IDENTITY)])
    assert static_transforms(path)["camera"][1][2, 3] == pytest.approx(1.7)
    assert camera_height_from_bag(path, "camera").height_m == pytest.approx(1.7)
