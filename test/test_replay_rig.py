"""Replay of a multi-camera bag (``sgdepth-ros replay BAG --cameras …``): per-camera and overall scores, per-camera
latency and drops, offline and live (one node process with ``cameras``), and the errors that name cameras.

The bag is written here in the issue-15 layout: three cameras of different sizes (``left`` JPEG-compressed), 4 frames
each at the same stamps, CameraInfo and ground-truth depth and labels per camera. The model is the shipped default
checkpoint (320×96), as in the other replay tests.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from sgdepth_ros.bag import BagWriter, read_messages
from sgdepth_ros.replay.frames import ReplayFrame
from sgdepth_ros.replay.rig import bag_cameras, merged_frames, resolve_rig
from sgdepth_ros.replay.rig_report import overall_frames
from sgdepth_ros.replay.topics import TopicError, list_topics
from sgdepth_ros.samples import road_scene

from replay_runner import replay, report

FRAMES = 4
T0, DT = 1_700_000_000_000_000_000, 100_000_000
CAMERAS = {"front": (96, 48, False), "left": (64, 48, True), "rear": (80, 40, False)}  # width, height, compressed
METRICS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")


def _truth(width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """K, ground-truth depth (a flat road 1.5 m below the camera, 70 m above the horizon) and labels (road, sky)."""
    f, cy = 0.9 * width, height / 2
    K = np.array([[f, 0, width / 2], [0, f, cy], [0, 0, 1]])
    v = np.arange(height, dtype=np.float64)[:, None] + 0.5 - cy
    depth = np.where(v > 0, np.clip(1.5 * f / np.maximum(v, 1e-6), 1.0, 70.0), 70.0)
    depth = np.repeat(depth, width, axis=1).astype(np.float32)
    labels = np.where(v > 0, 0, 10).repeat(width, axis=1).astype(np.uint8)  # road below the horizon, sky above
    return K, depth, labels


@pytest.fixture(scope="module")
def rig_bag(tmp_path_factory) -> Path:
    bag = tmp_path_factory.mktemp("rig") / "rig_bag"
    with BagWriter(bag) as writer:
        for i in range(FRAMES):
            stamp = T0 + i * DT
            for c, (name, (width, height, compressed)) in enumerate(CAMERAS.items()):
                frame_id = f"{name}_optical_frame"
                K, depth, labels = _truth(width, height)
                rgb = road_scene(width, height, seed=10 * c + i)
                writer.write_camera_info(f"/{name}/camera_info", stamp, frame_id, K, width, height)
                if compressed:
                    writer.write_compressed(f"/{name}/image_raw/compressed", stamp, frame_id, rgb, quality=90)
                else:
                    writer.write_image(f"/{name}/image_raw", stamp, frame_id, rgb, "rgb8")
                writer.write_image(f"/{name}/ground_truth/depth", stamp, frame_id, depth, "32FC1")
                writer.write_image(f"/{name}/ground_truth/semantic", stamp, frame_id, labels, "mono8")
    return bag


def image_topic(name: str) -> str:
    return f"/{name}/image_raw" + ("/compressed" if CAMERAS[name][2] else "")


@pytest.fixture(scope="module")
def rig_offline(rig_bag, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("rig_offline")
    done = replay(rig_bag, "--cameras", "all", "--out", out, "--backend", "torch", "--device", "cpu")
    assert done.returncode == 0, done.stdout + done.stderr
    return {"out": out, "report": report(out), "stdout": done.stdout}


@pytest.fixture(scope="module")
def single_offline(rig_bag, tmp_path_factory) -> dict:
    """Each camera replayed alone, its topics named (the single-camera path)."""
    reports = {}
    for name in CAMERAS:
        out = tmp_path_factory.mktemp(f"single_{name}")
        done = replay(rig_bag, "--image", image_topic(name), "--camera-info", f"/{name}/camera_info",
                      "--depth-gt", f"/{name}/ground_truth/depth", "--semantic-gt", f"/{name}/ground_truth/semantic",
                      "--out", out, "--backend", "torch", "--device", "cpu")
        assert done.returncode == 0, done.stdout + done.stderr
        reports[name] = report(out)
    return reports


# -- which cameras, which topics ----------------------------------------------------------------------------------


def test_the_cameras_of_a_bag_and_their_topics(rig_bag):
    topics = list_topics(rig_bag)
    assert bag_cameras(topics) == ["front", "left", "rear"]
    rig = resolve_rig(topics, "all", bag=str(rig_bag))
    assert list(rig) == ["front", "left", "rear"]
    assert rig["left"].as_dict() == {"image": "/left/image_raw/compressed", "camera_info": "/left/camera_info",
                                     "depth_gt": "/left/ground_truth/depth",
                                     "semantic_gt": "/left/ground_truth/semantic", "lidar": None}
    assert list(resolve_rig(topics, "rear, front")) == ["rear", "front"]  # the order given


def test_a_camera_the_bag_lacks_is_named_with_the_cameras_it_has(rig_bag, tmp_path):
    done = replay(rig_bag, "--cameras", "front,right", "--out", tmp_path)
    assert done.returncode == 2
    assert "no camera right" in done.stderr and "its cameras: front, left, rear" in done.stderr
    assert not (tmp_path / "report.json").exists()
    with pytest.raises(TopicError, match="not a camera name"):
        resolve_rig(list_topics(rig_bag), "front,front/left")
    with pytest.raises(TopicError, match="more than once"):
        resolve_rig(list_topics(rig_bag), "front,front")
    done = replay(rig_bag, "--cameras", "all", "--image", "/front/image_raw", "--out", tmp_path)
    assert done.returncode == 2 and "--image" in done.stderr and "/<camera>/" in done.stderr


def test_several_cameras_without_cameras_suggest_cameras_all(rig_bag, tmp_path):
    done = replay(rig_bag, "--out", tmp_path)
    assert done.returncode == 2
    assert "cannot tell which topic is the camera image" in done.stderr
    assert "--cameras all" in done.stderr and "front, left, rear" in done.stderr


def test_frames_of_all_cameras_come_in_stamp_order():
    def frames(stamps):
        return [ReplayFrame(i, s, "", None, b"", "", np.zeros((1, 1, 3), np.uint8)) for i, s in enumerate(stamps)]

    merged = merged_frames({"a": frames([1, 3, 3, 5]), "b": frames([2, 3]), None: frames([0])})
    assert [(name, f.stamp_ns) for name, f in merged] == [(None, 0), ("a", 1), ("b", 2), ("a", 3), ("a", 3),
                                                          ("b", 3), ("a", 5)]


def test_overall_counts_are_sums_and_unknown_stays_unknown():
    cameras = {"a": {"frames": {"sent": 4, "delivered": 3, "lost": None, "unreadable_kinds": {"short_data": 1}}},
               "b": {"frames": {"sent": 2, "delivered": 2, "lost": 0, "unreadable_kinds": {"short_data": 2}}}}
    assert overall_frames(cameras) == {"sent": 6, "delivered": 5, "lost": None,
                                       "unreadable_kinds": {"short_data": 3}}


# -- offline ----------------------------------------------------------------------------------------------------


def test_offline_per_camera_scores_equal_single_camera_replays(rig_offline, single_offline):
    summary = rig_offline["report"]
    assert summary["complete"] and summary["errors"] == [] and summary["settings"]["cameras"] == list(CAMERAS)
    for name, single in single_offline.items():
        part = summary["cameras"][name]
        assert part["topics"] == single["topics"]
        assert part["frames"] == single["frames"], name
        for row in ("median", "fixed"):
            for metric in METRICS:
                assert part["depth"][row]["metrics"][metric] == pytest.approx(
                    single["depth"][row]["metrics"][metric], rel=1e-6, abs=1e-9), (name, row, metric)
        for ours, theirs in zip(part["depth"]["bins"], single["depth"]["bins"], strict=True):
            assert ours == pytest.approx(theirs, nan_ok=True), name
        for key in ("miou", "pixel_acc", "pixels"):
            assert part["segmentation"][key] == pytest.approx(single["segmentation"][key]), (name, key)
        for ours, theirs in zip(part["per_frame"], single["per_frame"], strict=True):
            ours, theirs = ({k: v for k, v in r.items() if k != "latency_ms"} for r in (ours, theirs))
            assert ours == pytest.approx(theirs, rel=1e-6, abs=1e-9), name
        assert part["latency_ms"]["count"] == FRAMES and part["latency_ms"]["p50"] > 0


def test_offline_overall_pools_every_frame_of_every_camera(rig_offline):
    summary = rig_offline["report"]
    cameras = summary["cameras"]
    frames = summary["frames"]
    assert frames["sent"] == frames["delivered"] == 3 * FRAMES and frames["dropped"] == 0
    assert frames["in_bag"] == sum(c["frames"]["in_bag"] for c in cameras.values())
    depth = summary["depth"]
    assert depth["frames"] == 3 * FRAMES
    for metric in METRICS:  # a mean over frames: each camera weighs by its frames
        expected = sum(c["depth"]["frames"] * c["depth"]["median"]["metrics"][metric]
                       for c in cameras.values()) / depth["frames"]
        assert depth["median"]["metrics"][metric] == pytest.approx(expected, rel=1e-9), metric
    assert [b["pixels"] for b in depth["bins"]] == [sum(c["depth"]["bins"][k]["pixels"] for c in cameras.values())
                                                    for k in range(len(depth["bins"]))]
    seg = summary["segmentation"]
    assert seg["pixels"] == sum(c["segmentation"]["pixels"] for c in cameras.values())
    assert seg["frames"] == 3 * FRAMES
    assert summary["latency_ms"]["count"] == 3 * FRAMES
    assert "pooled" in summary["pooling"]


def test_offline_report_table_console_and_output_bag(rig_bag, rig_offline):
    summary, out = rig_offline["report"], rig_offline["out"]
    text = (out / "report.md").read_text()
    assert "## Cameras" in text and "| **overall** |" in text
    for name in CAMERAS:
        abs_rel = summary["cameras"][name]["depth"]["median"]["metrics"]["abs_rel"]
        assert f"| {name} | {FRAMES} | {FRAMES} | 0 | {abs_rel:.3f} |" in text
        assert f"`{image_topic(name)}`" in text
    stdout = rig_offline["stdout"]
    assert "3 cameras, 12 of 12 frames delivered" in stdout and "overall (all cameras pooled)" in stdout
    rows = [line.split() for line in stdout.splitlines()]
    for name, sent in (*((name, FRAMES) for name in CAMERAS), ("overall", 3 * FRAMES)):
        assert [name, str(sent), str(sent), "0"] in [row[:4] for row in rows], name
    by_topic: dict[str, list] = {}
    for m in read_messages(summary["outputs"]["bag"]):
        by_topic.setdefault(m.topic, []).append(m)
    for name in CAMERAS:
        for topic in (image_topic(name), f"/{name}/camera_info", f"/{name}/ground_truth/depth",
                      f"/{name}/ground_truth/semantic", f"/sgdepth/{name}/depth", f"/sgdepth/{name}/semantic",
                      f"/sgdepth/{name}/points", f"/sgdepth/{name}/depth/camera_info"):
            assert len(by_topic.get(topic, [])) == FRAMES, topic
        depth = by_topic[f"/sgdepth/{name}/depth"][0].msg
        assert (depth.width, depth.height) == CAMERAS[name][:2]
        assert depth.header.frame_id == f"{name}_optical_frame"
    inputs = {m.timestamp_ns: m.rawdata for m in read_messages(rig_bag, ["/left/image_raw/compressed"])}
    assert {m.timestamp_ns: m.rawdata for m in by_topic["/left/image_raw/compressed"]} == inputs
    assert (out / "preview.png").is_file()


def test_offline_camera_height_scale_is_measured_per_camera(tmp_path):
    """A rendered two-camera drive (synth --rig front,left: heights 1.65 and 1.55 m in /tf_static): each camera's
    scale filter sees only its own frames, so every per-frame estimate and filtered scale is that of the camera
    replayed alone, with its own height from TF."""
    from sgdepth_training.synth.generate import SynthConfig, generate

    generate(SynthConfig(out=tmp_path / "synth", drives=1, frames=6, seed=1, formats=("bag",), width=320, height=96,
                         workers=1, rig="front,left"), progress=False)
    bag = next((tmp_path / "synth" / "bags").iterdir())
    common = ("--scale-mode", "camera_height", "--backend", "torch", "--device", "cpu", "--previews", "0")
    done = replay(bag, "--cameras", "front,left", "--out", tmp_path / "rig", *common)
    assert done.returncode == 0, done.stdout + done.stderr
    rig = report(tmp_path / "rig")["cameras"]
    heights = set()
    for name in ("front", "left"):
        done = replay(bag, "--image", f"/{name}/image_raw", "--camera-info", f"/{name}/camera_info", "--depth-gt",
                      f"/{name}/ground_truth/depth", "--semantic-gt", f"/{name}/ground_truth/semantic",
                      "--out", tmp_path / name, *common)
        assert done.returncode == 0, done.stdout + done.stderr
        alone = report(tmp_path / name)
        ours = rig[name]["camera_height"]
        assert ours["height_m"] == alone["camera_height"]["height_m"] and name in ours["height_source"]
        heights.add(ours["height_m"])
        assert ours["frames_with_scale"] > 0  # the drive has road: the filter did produce scales
        for key in ("scale_estimate", "scale_filtered", "scale_gt", "abs_rel_camera_height"):
            for ours, theirs in zip(rig[name]["per_frame"], alone["per_frame"], strict=True):
                a, b = ours.get(key), theirs.get(key)
                assert (a is None and b is None) or a == pytest.approx(b, rel=1e-6), (name, key, ours["index"])
    assert len(heights) == 2  # two cameras, two heights


# -- live -------------------------------------------------------------------------------------------------------


def test_live_replay_of_the_rig_through_one_node(rig_bag, rig_offline, tmp_path):
    """One node process with cameras [front, left, rear] (left compressed): each delivered frame scores exactly what
    offline scores for it, counts add up per camera and match the node's per-camera diagnostics. How many a busy
    machine drops is not decided here: only what the design guarantees is asserted."""
    env = {k: v for k, v in os.environ.items() if k != "ROS_DOMAIN_ID"}
    done = replay(rig_bag, "--cameras", "all", "--out", tmp_path, "--mode", "live", "--rate", "0.5",
                  "--use-sim-time", "--node-param", "backend=torch", "--device", "cpu", "--drain", "120", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    live, offline = report(tmp_path), rig_offline["report"]
    bag_topics: dict[str, int] = {}
    for m in read_messages(live["outputs"]["bag"]):
        bag_topics[m.topic] = bag_topics.get(m.topic, 0) + 1
    for name in CAMERAS:
        part, twin = live["cameras"][name], offline["cameras"][name]
        frames = part["frames"]
        assert frames["sent"] == FRAMES and frames["delivered"] + frames["dropped"] == FRAMES, (name, frames)
        assert frames["delivered"] >= 1  # the newest frame of each camera is never dropped
        assert int(part["node"]["frames_processed"]) == frames["delivered"], (name, part["node"])
        assert frames["dropped_by_node"] + frames["lost"] == frames["dropped"]
        assert part["latency_ms"]["count"] == frames["delivered"] == len(part["per_frame"])
        offline_frames = {r["index"]: r for r in twin["per_frame"]}
        for record in part["per_frame"]:
            for key in ("abs_rel", "a1", "ratio", "abs_rel_fixed", "miou"):
                assert record[key] == pytest.approx(offline_frames[record["index"]][key], rel=1e-5, abs=1e-7), \
                    (name, record["index"], key)
        assert bag_topics[f"/sgdepth/{name}/depth"] == frames["delivered"]
        assert bag_topics[image_topic(name)] == FRAMES
    overall = live["frames"]
    assert overall["sent"] == 3 * FRAMES
    assert overall["delivered"] == sum(c["frames"]["delivered"] for c in live["cameras"].values())
    assert live["latency_ms"]["count"] == overall["delivered"]
    text = (tmp_path / "report.md").read_text()
    assert "Node diagnostics per camera" in text and "frames_processed" in text


def test_live_replay_of_one_compressed_camera(rig_bag, rig_offline, tmp_path):
    """One camera of CompressedImage messages replayed live on its own (the unnamed camera, today's topics): the node
    is started with input_transport compressed, so it takes them (it used to listen on 'image' and never matched)."""
    env = {k: v for k, v in os.environ.items() if k != "ROS_DOMAIN_ID"}
    done = replay(rig_bag, "--image", "/left/image_raw/compressed", "--camera-info", "/left/camera_info",
                  "--depth-gt", "/left/ground_truth/depth", "--semantic-gt", "/left/ground_truth/semantic",
                  "--out", tmp_path, "--mode", "live", "--rate", "0.5", "--node-param", "backend=torch",
                  "--device", "cpu", "--drain", "120", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    live = report(tmp_path)
    frames = live["frames"]
    assert frames["sent"] == FRAMES and frames["delivered"] >= 1 and "cameras" not in live
    offline_frames = {r["index"]: r for r in rig_offline["report"]["cameras"]["left"]["per_frame"]}
    for record in live["per_frame"]:
        for key in ("abs_rel", "a1", "miou"):
            assert record[key] == pytest.approx(offline_frames[record["index"]][key], rel=1e-5, abs=1e-7), key
    assert len(list(read_messages(live["outputs"]["bag"], ["/sgdepth/depth"]))) == frames["delivered"]
