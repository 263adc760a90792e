"""Bag replay evaluation (`sgdepth-ros replay`) on a rendered synthetic drive bag: oracle, offline = trainer's
evaluator, live = offline, honest drops, LiDAR ground truth, damaged bags, topic errors and the output bag.

The drive (conftest's drive_bag: 8 frames, 416×128, ground-truth depth and labels) is rendered once per module; the
model is the shipped default checkpoint (320×96).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from sgdepth_ros.bag import BagWriter, read_messages
from sgdepth_ros.default_model import default_model_path
from sgdepth_ros.predictor import Prediction
from sgdepth_ros.replay.evaluate import EvalSettings, ReplayEvaluator
from sgdepth_ros.replay.frames import FrameReader
from sgdepth_ros.replay.offline import run_offline
from sgdepth_ros.replay.recorder import FrameRecorder
from sgdepth_ros.replay.topics import TopicError, list_topics, resolve_topics
from sgdepth_ros.ros.messages import output_topics

from replay_runner import FRAMES, HEIGHT, WIDTH, replay, report

METRICS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")
# camera ← lidar: a LiDAR (x forward, y left, z up) 0.3 m above and 0.2 m behind the camera, yawed by 2°
_YAW = np.deg2rad(2.0)
CAMERA_FROM_LIDAR = np.eye(4)
CAMERA_FROM_LIDAR[:3, :3] = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]]) @ np.array(
    [[np.cos(_YAW), -np.sin(_YAW), 0.0], [np.sin(_YAW), np.cos(_YAW), 0.0], [0.0, 0.0, 1.0]])
CAMERA_FROM_LIDAR[:3, 3] = (0.0, -0.3, -0.2)


def without_domain_id() -> dict:
    """This process's environment without ROS_DOMAIN_ID: live replay then picks a free domain itself."""
    return {k: v for k, v in os.environ.items() if k != "ROS_DOMAIN_ID"}


@pytest.fixture(scope="module")
def offline_run(drive_bag, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("offline")
    done = replay(drive_bag, "--out", out, "--backend", "torch", "--device", "cpu")
    assert done.returncode == 0, done.stderr
    return {"out": out, "report": report(out), "stdout": done.stdout}


def copy_bag(src: Path, dst: Path, storage: str = "mcap", convert=None) -> Path:
    """Rewrite a bag message by message; ``convert(writer, message)`` may write something else instead."""
    with BagWriter(dst, storage=storage) as writer:
        for m in read_messages(src):
            if convert is None or not convert(writer, m):
                writer.write_raw(m.topic, m.timestamp_ns, m.msgtype, m.rawdata)
    return dst


# -- the oracle ------------------------------------------------------------------------------------------------


class OraclePredictor:
    """Returns each frame's own ground truth (found by its image), as a metric prediction."""

    def __init__(self, bag: Path, topics, camera_from_lidar=None):
        self.truth = {f.rgb.tobytes(): (f.depth_gt, f.labels_gt) for f in FrameReader(bag, topics, camera_from_lidar)}

    def predict(self, rgb: np.ndarray) -> Prediction:
        depth, labels = self.truth[rgb.tobytes()]
        depth = np.where(depth > 0, depth, np.float32(1000.0)).astype(np.float32)  # sky: far, never evaluated
        labels = np.where(labels == 255, 0, labels).astype(np.uint8)  # 255 = ignore: any class will do
        return Prediction(depth, None, labels, True, rgb, {"forward": 1.0})


def run_oracle(bag: Path, **topic_args) -> tuple[dict, FrameRecorder]:
    topics = resolve_topics(list_topics(bag), **topic_args)
    transform = CAMERA_FROM_LIDAR if topics.lidar else None
    evaluator = ReplayEvaluator(EvalSettings("capped", scale=1.0, pred_is_metric=True))
    keys = output_topics(True)
    recorder = FrameRecorder(evaluator, {k: (f"/sgdepth/{t}", f"sensor_msgs/msg/{c.__name__}")
                                         for k, (t, c) in keys.items()}, None)
    result = run_offline(FrameReader(bag, topics, transform), OraclePredictor(bag, topics, transform), recorder)
    return {**evaluator.summary(), "sent": result["sent"]}, recorder


def test_an_oracle_predictor_scores_perfectly(drive_bag):
    summary, recorder = run_oracle(drive_bag)
    assert summary["sent"] == FRAMES and recorder.delivered == FRAMES
    depth = summary["depth"]
    assert depth["frames"] == FRAMES and depth["ground_truth"] == "dense"
    for scaling in ("median", "fixed"):
        m = depth[scaling]["metrics"]
        assert m["abs_rel"] < 1e-6 and m["rmse"] < 1e-4 and m["a1"] == 1.0, (scaling, m)
    assert all(b["pixels"] == 0 or b["abs_rel"] < 1e-6 for b in depth["bins"])
    assert sum(b["pixels"] for b in depth["bins"]) > 0.5 * FRAMES * WIDTH * HEIGHT
    seg = summary["segmentation"]
    assert seg["miou"] == 1.0 and seg["pixel_acc"] == 1.0 and seg["frames"] == FRAMES


def test_a_wrong_prediction_is_not_scored_perfectly(drive_bag):
    """The oracle check can fail: scale the oracle's depth by 1.5 and shift its labels."""
    topics = resolve_topics(list_topics(drive_bag))
    evaluator = ReplayEvaluator(EvalSettings("capped", scale=1.0, pred_is_metric=True))
    for frame in FrameReader(drive_bag, topics):
        depth = np.where(frame.depth_gt > 0, frame.depth_gt * 1.5, 1000.0).astype(np.float32)
        evaluator.add(frame.depth_gt, depth, frame.labels_gt, (frame.labels_gt + 1) % 19)
    summary = evaluator.summary()
    assert summary["depth"]["fixed"]["metrics"]["abs_rel"] > 0.2  # 0.5 where unclamped
    assert summary["depth"]["median"]["metrics"]["abs_rel"] < 1e-6  # median scaling removes a pure scale
    assert summary["segmentation"]["miou"] == 0.0


# -- offline = the trainer's evaluator ------------------------------------------------------------------------


def test_offline_metrics_equal_the_trainers_evaluator(drive_bag, offline_run):
    from sgdepth_ros.model import load_checkpoint
    from sgdepth_ros.preprocess import resize_rgb
    from sgdepth_training.evaluation.runner import evaluate_depth, evaluate_segmentation

    model = load_checkpoint(default_model_path())
    meta = model.metadata
    size = (meta["input_size"]["width"], meta["input_size"]["height"])
    scale = meta["scale"]["factor"]
    frames = list(FrameReader(drive_bag, resolve_topics(list_topics(drive_bag))))

    def color(rgb):
        return torch.from_numpy(resize_rgb(rgb, size).copy()).permute(2, 0, 1).float() / 255.0

    depth_set = [{("color", 0): color(f.rgb), "depth_gt": torch.from_numpy(f.depth_gt)[None]} for f in frames]
    seg_set = [{"color": color(f.rgb), "segmentation": torch.from_numpy(f.labels_gt.astype(np.int64))}
               for f in frames]
    common = dict(protocol="capped", min_depth=meta["min_depth"], max_depth=meta["max_depth"],  # its depth range
                  min_depth_eval=1e-3, max_depth_eval=80.0, progress=False)
    median = evaluate_depth(model, depth_set, scaling="median", **common)
    fixed = evaluate_depth(model, depth_set, scaling="fixed", fixed_scale=scale, **common)
    seg = evaluate_segmentation(model, seg_set, progress=False)

    ours = offline_run["report"]["depth"]
    assert ours["frames"] == median.count == FRAMES
    for name in METRICS:
        assert ours["median"]["metrics"][name] == pytest.approx(median.metrics[name], rel=1e-4, abs=1e-6), name
        assert ours["fixed"]["metrics"][name] == pytest.approx(fixed.metrics[name], rel=1e-4, abs=1e-6), name
    assert ours["median"]["ratio"]["median"] == pytest.approx(median.ratio_summary["median"], rel=1e-4)
    assert ours["fixed"]["scale"] == pytest.approx(scale)
    theirs = offline_run["report"]["segmentation"]
    assert seg.scores["void_pixels"] == 0  # the trainer's 20-way argmax never picked void here, so both agree
    assert theirs["miou"] == pytest.approx(seg.scores["miou"], abs=1e-9)
    assert theirs["pixel_acc"] == pytest.approx(seg.scores["pixel_acc"], abs=1e-9)


def test_offline_report_files_and_output_bag(drive_bag, offline_run):
    out, summary = offline_run["out"], offline_run["report"]
    assert summary["complete"] and summary["errors"] == []
    assert summary["frames"]["sent"] == summary["frames"]["delivered"] == FRAMES and summary["frames"]["dropped"] == 0
    assert summary["topics"] == {"image": "/camera/image_raw", "camera_info": "/camera/camera_info",
                                 "depth_gt": "/ground_truth/depth", "semantic_gt": "/ground_truth/semantic",
                                 "lidar": None}
    for name in ("report.md", "preview.png", "error_vs_distance.png", "per_class_iou.png", "latency.png"):
        assert (out / name).is_file(), name
    assert "AbsRel" in offline_run["stdout"] and "report.md" in offline_run["stdout"]
    text = (out / "report.md").read_text()
    assert f"{summary['depth']['median']['metrics']['abs_rel']:.3f}" in text
    # the output bag: the inputs verbatim + every output of every frame, stamped like its input
    bag = Path(summary["outputs"]["bag"])
    by_topic: dict[str, list] = {}
    for m in read_messages(bag):
        by_topic.setdefault(m.topic, []).append(m)
    expected = {"/camera/image_raw", "/camera/camera_info", "/ground_truth/depth", "/ground_truth/semantic",
                "/sgdepth/depth", "/sgdepth/depth/camera_info", "/sgdepth/depth/color", "/sgdepth/semantic",
                "/sgdepth/semantic/color", "/sgdepth/semantic/overlay", "/sgdepth/points"}
    assert set(by_topic) == expected
    assert all(len(messages) == FRAMES for messages in by_topic.values())
    inputs = {m.timestamp_ns: m.rawdata for m in read_messages(drive_bag, ["/camera/image_raw"])}
    assert {m.timestamp_ns: m.rawdata for m in by_topic["/camera/image_raw"]} == inputs
    depth = by_topic["/sgdepth/depth"][0].msg
    assert (depth.encoding, depth.width, depth.height) == ("32FC1", WIDTH, HEIGHT)
    assert depth.header.frame_id == by_topic["/camera/image_raw"][0].msg.header.frame_id
    assert {m.msg.header.stamp.sec * 10**9 + m.msg.header.stamp.nanosec for m in by_topic["/sgdepth/points"]} \
        == set(inputs)


# -- live ------------------------------------------------------------------------------------------------------


def test_live_replay_through_the_node_scores_its_frames_as_offline_does(drive_bag, offline_run, tmp_path):
    """Each frame the node delivers scores exactly what offline scores for it. How many a busy machine drops at half
    speed is not decided here (bench-replay measures it): only what the design guarantees is asserted."""
    done = replay(drive_bag, "--out", tmp_path, "--mode", "live", "--rate", "0.5", "--use-sim-time",
                  "--node-param", "backend=torch", "--device", "cpu", "--drain", "120", env=without_domain_id())
    assert done.returncode == 0, done.stdout + done.stderr
    live, offline = report(tmp_path), offline_run["report"]
    frames = live["frames"]
    assert frames["sent"] == FRAMES and frames["delivered"] + frames["dropped"] == FRAMES
    assert frames["delivered"] >= 1  # the newest frame is never dropped
    offline_frames = {f["index"]: f for f in offline["per_frame"]}
    assert len(live["per_frame"]) == frames["delivered"] == live["depth"]["frames"]
    for record in live["per_frame"]:
        for name in ("abs_rel", "a1", "ratio", "abs_rel_fixed", "miou"):
            assert record[name] == pytest.approx(offline_frames[record["index"]][name], rel=1e-5, abs=1e-7), \
                (record["index"], name)
    if frames["dropped"] == 0:  # then the whole-bag numbers are offline's too
        for scaling in ("median", "fixed"):
            for name in METRICS:
                assert live["depth"][scaling]["metrics"][name] == pytest.approx(
                    offline["depth"][scaling]["metrics"][name], rel=1e-5, abs=1e-7), (scaling, name)
        assert live["segmentation"]["miou"] == pytest.approx(offline["segmentation"]["miou"], abs=1e-9)
    assert live["latency_ms"]["count"] == frames["delivered"] and live["latency_ms"]["p50"] > 0
    assert int(live["node"]["frames_processed"]) == frames["delivered"]
    assert frames["dropped_by_node"] + frames["lost"] == frames["dropped"]
    # with /clock = bag time the node's own stamp→publish latency is meaningful (not decades of wall vs bag time)
    assert 0 <= float(live["node"]["latency_p50_ms"]) < 60_000
    assert len(list(read_messages(live["outputs"]["bag"], ["/sgdepth/depth"]))) == frames["delivered"]
    # no ROS_DOMAIN_ID given: a free domain was picked and named in the report
    settings = live["settings"]
    assert settings["ros_domain_id_source"] == "free" and 1 <= settings["ros_domain_id"] <= 101


def test_live_replay_faster_than_the_node_reports_its_drops(drive_bag, tmp_path):
    """At 1000× the frames go out back to back (~1 ms apart), far faster than any inference: the node must drop
    some, and always delivers the newest."""
    done = replay(drive_bag, "--out", tmp_path, "--mode", "live", "--rate", "1000", "--device", "cpu",
                  "--drain", "120")
    assert done.returncode == 0, done.stdout + done.stderr
    summary = report(tmp_path)
    frames, node = summary["frames"], summary["node"]
    assert frames["sent"] == FRAMES
    assert 0 < frames["delivered"] < FRAMES and frames["dropped"] == FRAMES - frames["delivered"]
    assert int(node["frames_processed"]) == frames["delivered"]
    assert frames["dropped_by_node"] + frames["lost"] == frames["dropped"]
    assert summary["depth"]["frames"] == frames["delivered"] == summary["latency_ms"]["count"]
    assert f"dropped {frames['dropped']} of {FRAMES}" in (tmp_path / "report.md").read_text()
    assert f"{frames['dropped']} dropped" in done.stdout


# -- LiDAR ground truth ---------------------------------------------------------------------------------------


def lidar_bag(drive_bag: Path, dst: Path) -> Path:
    """The drive with its dense depth replaced by a LiDAR cloud: every ground-truth pixel centre back-projected,
    moved into the LiDAR frame, stamped 20 ms after its image."""
    infos = {m.timestamp_ns: m.msg for m in read_messages(drive_bag, ["/camera/camera_info"])}
    lidar_from_camera = np.linalg.inv(CAMERA_FROM_LIDAR)

    def convert(writer, m) -> bool:
        if m.topic == "/ground_truth/depth":
            depth = np.frombuffer(m.msg.data.tobytes(), "<f4").reshape(m.msg.height, m.msg.width)
            K = infos[m.timestamp_ns].k.reshape(3, 3)
            v, u = np.nonzero(np.isfinite(depth) & (depth > 0))
            z = depth[v, u].astype(np.float64)
            cam = np.stack([(u - K[0, 2]) * z / K[0, 0], (v - K[1, 2]) * z / K[1, 1], z, np.ones_like(z)])
            writer.write_point_cloud("/velodyne_points", m.timestamp_ns + 20_000_000, "velodyne",
                                     (lidar_from_camera @ cam)[:3].T)
            return True
        return False

    return copy_bag(drive_bag, dst, convert=convert)


def test_lidar_ground_truth_gives_the_dense_scores(drive_bag, offline_run, tmp_path):
    bag = lidar_bag(drive_bag, tmp_path / "lidar_bag")
    topics = resolve_topics(list_topics(bag))
    assert topics.lidar == "/velodyne_points" and topics.depth_gt is None
    summary, _ = run_oracle(bag)
    assert summary["depth"]["ground_truth"] == "lidar" and summary["depth"]["frames"] == FRAMES
    assert summary["depth"]["fixed"]["metrics"]["abs_rel"] < 1e-5
    # the real model scored against the projected cloud = against the dense depth it came from
    transform = " ".join(f"{v:.12g}" for v in CAMERA_FROM_LIDAR.reshape(-1))
    done = replay(bag, "--out", tmp_path / "out", "--backend", "torch", "--device", "cpu",
                  "--lidar-transform", transform)
    assert done.returncode == 0, done.stderr
    lidar, dense = report(tmp_path / "out")["depth"], offline_run["report"]["depth"]
    for name in METRICS:
        assert lidar["median"]["metrics"][name] == pytest.approx(dense["median"]["metrics"][name], rel=1e-4), name
    names = {m.topic for m in read_messages(report(tmp_path / "out")["outputs"]["bag"])}
    assert "/velodyne_points" in names


def test_lidar_without_its_transform_is_refused(drive_bag, tmp_path, replay_here):
    bag = lidar_bag(drive_bag, tmp_path / "lidar_bag")
    done = replay_here(bag, "--out", tmp_path / "out")
    assert done.returncode == 2 and "--lidar-transform" in done.stderr


# -- bag formats, topics, damage --------------------------------------------------------------------------------


def test_sqlite3_bag_with_jpeg_images_is_replayed(drive_bag, tmp_path):
    def to_jpeg(writer, m) -> bool:
        if m.topic != "/camera/image_raw":
            return False
        rgb = np.frombuffer(m.msg.data.tobytes(), np.uint8).reshape(m.msg.height, m.msg.width, 3)
        writer.write_compressed("/camera/image_raw/compressed", m.timestamp_ns, m.msg.header.frame_id, rgb,
                                quality=95)
        return True

    bag = copy_bag(drive_bag, tmp_path / "jpeg_bag", storage="sqlite3", convert=to_jpeg)
    assert list(bag.glob("*.db3"))
    summary, _ = run_oracle(bag)
    assert summary["sent"] == FRAMES and summary["depth"]["fixed"]["metrics"]["abs_rel"] < 1e-6


def test_a_missing_topic_is_named_with_what_the_bag_holds(drive_bag, tmp_path, replay_here):
    done = replay_here(drive_bag, "--out", tmp_path, "--image", "/front/image")
    assert done.returncode == 2
    assert "/front/image" in done.stderr and "/camera/image_raw" in done.stderr and "sensor_msgs/msg/Image" \
        in done.stderr
    with pytest.raises(TopicError, match="is sensor_msgs/msg/CameraInfo"):
        resolve_topics(list_topics(drive_bag), image="/camera/camera_info")


def test_an_earlier_replay_is_kept_unless_overwrite(drive_bag, offline_run):
    done = replay(drive_bag, "--out", offline_run["out"], "--max-frames", "1")
    assert done.returncode == 1 and "--overwrite" in done.stderr


def test_a_truncated_bag_keeps_the_frames_before_the_cut(drive_bag, tmp_path):
    """A recording cut short (crash, full disk): an MCAP without its end is read up to the cut."""
    bag = copy_bag(drive_bag, tmp_path / "cut")
    mcap = next(bag.glob("*.mcap"))
    data = mcap.read_bytes()
    mcap.write_bytes(data[: int(len(data) * 0.7)])
    done = replay(bag, "--out", tmp_path / "out", "--backend", "torch", "--device", "cpu")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "PARTIAL" in done.stdout and "truncated" in done.stdout
    summary = report(tmp_path / "out")
    assert not summary["complete"] and len(summary["errors"]) == 1 and str(mcap) in summary["errors"][0]
    frames = summary["frames"]
    assert 0 < frames["delivered"] < FRAMES
    # the last image may have lost its ground truth to the cut: counted, not scored
    assert summary["depth"]["frames"] + frames["unreadable_kinds"].get("depth_gt_missing", 0) == frames["delivered"]
    assert "Partial results" in (tmp_path / "out" / "report.md").read_text()
    assert len(list(read_messages(summary["outputs"]["bag"], ["/sgdepth/depth"]))) == frames["delivered"]


def test_a_damaged_sqlite_bag_is_named(drive_bag, tmp_path):
    bag = copy_bag(drive_bag, tmp_path / "cut", storage="sqlite3")
    db = next(bag.glob("*.db3"))
    db.write_bytes(db.read_bytes()[: db.stat().st_size // 2])
    done = replay(bag, "--out", tmp_path / "out")
    assert done.returncode == 2 and str(bag) in done.stderr and "not a readable rosbag2 bag" in done.stderr


# -- parts ------------------------------------------------------------------------------------------------------


def test_distance_bins_weigh_pixels_and_leave_empty_bins_nan():
    from sgdepth_ros.metrics.distance_bins import DistanceBins

    bins = DistanceBins((0.0, 10.0, 20.0, 40.0))
    bins.update(np.array([5.0, 5.0, 15.0]), np.array([5.0, 6.0, 30.0]))
    bins.update(np.array([8.0, 50.0]), np.array([8.0, 50.0]))  # 50 m is outside every bin
    near, mid, far = bins.rows()
    assert near["pixels"] == 3 and near["abs_rel"] == pytest.approx(0.2 / 3) and near["a1"] == pytest.approx(1.0)
    assert near["rmse"] == pytest.approx(np.sqrt(1 / 3))
    assert mid["pixels"] == 1 and mid["abs_rel"] == pytest.approx(1.0) and mid["a1"] == 0.0
    assert far["pixels"] == 0 and np.isnan(far["abs_rel"])
    with pytest.raises(ValueError, match="increasing"):
        DistanceBins((0.0, 0.0, 5.0))


def test_single_channel_images_decode_with_padding_and_byte_order():
    from sgdepth_ros.ros.image_codec import InputError, decode_scalar_image

    depth = np.array([[1.5, np.nan], [3.0, 0.25]], np.float32)
    padded = np.zeros((2, 12), np.uint8)
    padded[:, :8] = depth.astype(">f4").view(np.uint8)
    np.testing.assert_array_equal(decode_scalar_image("32FC1", 2, 2, 12, True, padded.tobytes()), depth)
    mm = np.array([[1000, 0]], np.uint16)
    assert decode_scalar_image("16UC1", 2, 1, 4, False, mm.tobytes()).tolist() == [[1000, 0]]
    with pytest.raises(InputError, match="8 bytes of data < step 4") as error:
        decode_scalar_image("mono8", 4, 4, 4, False, bytes(8))
    assert error.value.kind == "short_data"
    with pytest.raises(InputError, match="single-channel"):
        decode_scalar_image("rgb8", 1, 1, 3, False, bytes(3))


def test_frames_pair_by_stamp_and_count_what_is_missing(tmp_path):
    """CameraInfo only once (latched), labels missing for one frame, a corrupt image: the frames still come."""
    K = np.array([[100.0, 0, 16], [0, 100.0, 8], [0, 0, 1]])
    rgb = np.full((16, 32, 3), 90, np.uint8)
    with BagWriter(tmp_path / "bag") as w:
        w.write_camera_info("/cam/camera_info", 5, "cam", K, 32, 16)
        for i in range(4):
            stamp = 10 + i * 100_000_000
            w.write_image("/cam/image_raw", stamp, "cam", rgb, "rgb8")
            w.write_image("/gt/depth", stamp, "cam", np.full((16, 32), 2.0 + i, np.float32), "32FC1")
            if i != 2:
                w.write_image("/gt/semantic", stamp, "cam", np.full((16, 32), i, np.uint8), "mono8")
        w.write_message("/cam/image_raw", 10 + 4 * 100_000_000, _broken_image(w))
    topics = resolve_topics(list_topics(tmp_path / "bag"))
    assert (topics.image, topics.camera_info, topics.depth_gt, topics.semantic_gt) == (
        "/cam/image_raw", "/cam/camera_info", "/gt/depth", "/gt/semantic")
    reader = FrameReader(tmp_path / "bag", topics)
    frames = list(reader)
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert all(f.K is not None and np.allclose(f.K, K) for f in frames)
    assert [float(f.depth_gt[0, 0]) for f in frames] == [2.0, 3.0, 4.0, 5.0]
    assert [None if f.labels_gt is None else int(f.labels_gt[0, 0]) for f in frames] == [0, 1, None, 3]
    assert reader.unreadable == {"semantic_gt_missing": 1, "short_data": 1} and reader.errors == []


def _broken_image(writer):
    """An rgb8 Image whose data is shorter than step × height."""
    from sgdepth_ros.bag import messages

    msg = messages.image(writer._types, 10 + 4 * 100_000_000, "cam", np.zeros((16, 32, 3), np.uint8), "rgb8")
    msg.data = msg.data[:100]
    return msg


def test_ambiguous_cameras_need_a_name(tmp_path):
    with BagWriter(tmp_path / "bag") as w:
        for topic in ("/left/image_raw", "/right/image_raw"):
            w.write_image(topic, 1, "cam", np.zeros((4, 4, 3), np.uint8), "rgb8")
    topics = list_topics(tmp_path / "bag")
    with pytest.raises(TopicError, match="candidates: /left/image_raw, /right/image_raw"):
        resolve_topics(topics)
    assert resolve_topics(topics, image="/right/image_raw").image == "/right/image_raw"
