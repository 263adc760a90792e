"""The synthetic world renders a camera rig (issue 15): per-camera KITTI trees, one bag with per-camera topics.

One small rig dataset (3 drives × 4 frames, built-in front,left,right,rear at front size 160×48, KITTI + Cityscapes +
bag) and the same settings without --rig are generated per module; checks read them back through the KITTI loader,
eval-depth, rosbags and the rig file parser, as users will.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sgdepth_ros.bag import quaternion_to_rotation, read_messages
from sgdepth_training.data.kitti import KittiRawDepthDataset, read_poses
from sgdepth_training.data.splits import read_split_file
from sgdepth_training.synth import layout
from sgdepth_training.synth.camera import kitti_camera
from sgdepth_training.synth.generate import SynthConfig, generate, render_rig_task, render_task
from sgdepth_training.synth.rig import R_LINK_OPTICAL, load_rig_file, parse_rig, rpy_to_rotation

W, H, DRIVES, FRAMES, SEED = 160, 48, 3, 4, 3
RIG = "front,left,right,rear"
CAMS = RIG.split(",")
REPO = Path(__file__).resolve().parents[1]
ROAD_TRAIN_ID = 0


def _config(out: Path, **kwargs) -> SynthConfig:
    settings = dict(drives=DRIVES, frames=FRAMES, seed=SEED, width=W, height=H, cityscapes_width=64,
                    cityscapes_height=32, cityscapes_every=2, workers=1)
    settings.update(kwargs)
    return SynthConfig(out, **settings)


@pytest.fixture(scope="module")
def rig_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rig") / "data"
    generate(_config(out, rig=RIG), progress=False)
    return out


@pytest.fixture(scope="module")
def single_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("single") / "data"
    generate(_config(out, formats=("kitti", "cityscapes")), progress=False)
    return out


def _bag(root: Path, drive: int = 0) -> Path:
    return root / "bags" / layout.drive_name(SEED, drive).removesuffix("_sync")


def _by_topic(bag: Path) -> dict[str, list]:
    out: dict[str, list] = {}
    for m in read_messages(bag):
        out.setdefault(m.topic, []).append(m)
    return out


def _pose(translation, quaternion) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = quaternion_to_rotation(quaternion)
    T[:3, 3] = translation
    return T


def _tf(stamped) -> tuple[str, str, np.ndarray]:
    t, q = stamped.transform.translation, stamped.transform.rotation
    return stamped.header.frame_id, stamped.child_frame_id, _pose((t.x, t.y, t.z), (q.x, q.y, q.z, q.w))


def _image(msg) -> np.ndarray:
    dtype = np.float32 if msg.encoding == "32FC1" else np.uint8
    channels = 3 if msg.encoding in ("rgb8", "bgr8") else 1
    shape = (msg.height, msg.width, channels) if channels > 1 else (msg.height, msg.width)
    return np.frombuffer(bytes(msg.data), dtype).reshape(shape)


def _base_to_optical(by_topic: dict, cam: str) -> np.ndarray:
    """4×4 <cam>_optical_frame in base_link, composed from the bag's /tf_static."""
    tfs = {child: (parent, T) for parent, child, T in map(_tf, by_topic["/tf_static"][-1].msg.transforms)}
    parent, link = tfs[f"{cam}_link"]
    assert parent == "base_link"
    parent, optical = tfs[f"{cam}_optical_frame"]
    assert parent == f"{cam}_link"
    return link @ optical


def test_rig_bag_has_per_camera_topics_frame_ids_and_tf(rig_data):
    rig = parse_rig(RIG, W, H)
    by_topic = _by_topic(_bag(rig_data))
    expected = {"/tf", "/tf_static"}
    for cam in CAMS:
        expected |= {f"/{cam}/image_raw", f"/{cam}/camera_info", f"/{cam}/ground_truth/depth",
                     f"/{cam}/ground_truth/semantic"}
    assert set(by_topic) == expected  # no /camera/… nor /ground_truth/… of the single-camera bag
    stamps = [m.timestamp_ns for m in by_topic["/tf"]]
    assert len(stamps) == FRAMES and np.all(np.diff(stamps) == 100_000_000)
    for cam in rig:
        c = cam.camera
        for suffix, msgtype, encoding in (("image_raw", "sensor_msgs/msg/Image", "rgb8"),
                                          ("camera_info", "sensor_msgs/msg/CameraInfo", None),
                                          ("ground_truth/depth", "sensor_msgs/msg/Image", "32FC1"),
                                          ("ground_truth/semantic", "sensor_msgs/msg/Image", "mono8")):
            messages = by_topic[f"/{cam.name}/{suffix}"]
            assert [m.timestamp_ns for m in messages] == stamps  # every camera at every frame's stamp
            for m in messages:
                assert m.msgtype == msgtype
                assert m.msg.header.frame_id == f"{cam.name}_optical_frame"
                assert (m.msg.width, m.msg.height) == (c.width, c.height)
                if encoding:
                    assert m.msg.encoding == encoding
        np.testing.assert_allclose(np.reshape(by_topic[f"/{cam.name}/camera_info"][0].msg.k, (3, 3)), c.K)
    assert [(c.camera.width, c.camera.height) for c in rig] == [(160, 48), (124, 77), (124, 77), (132, 41)]
    # /tf_static: one latched message, base_link → <cam>_link (the mount) → <cam>_optical_frame for every camera
    assert len(by_topic["/tf_static"]) == 1
    tfs = {child: (parent, T) for parent, child, T in map(_tf, by_topic["/tf_static"][0].msg.transforms)}
    assert len(tfs) == 2 * len(CAMS)
    for cam in rig:
        parent, link = tfs[cam.link]
        assert parent == "base_link"
        np.testing.assert_allclose(link[:3, 3], cam.xyz, atol=1e-9)
        np.testing.assert_allclose(link[:3, :3], rpy_to_rotation(*cam.rpy), atol=1e-9)
        parent, optical = tfs[cam.optical_frame]
        assert parent == cam.link
        np.testing.assert_allclose(optical[:3, :3], R_LINK_OPTICAL, atol=1e-12)
        np.testing.assert_allclose(optical[:3, 3], 0)
    front = tfs["front_link"][1]
    assert front[2, 3] == pytest.approx(1.65) and front[0, 3] == pytest.approx(1.0)
    for name, yaw in (("left", 90), ("right", -90), ("rear", 180)):
        forward = tfs[f"{name}_link"][1][:3, 0]
        assert math.degrees(math.atan2(forward[1], forward[0])) == pytest.approx(yaw, abs=1e-6)
        assert 1.5 <= tfs[f"{name}_link"][1][2, 3] <= 1.7
    for m in by_topic["/tf"]:
        (tf,) = m.msg.transforms
        assert (tf.header.frame_id, tf.child_frame_id) == ("odom", "base_link")


def test_front_camera_tree_and_cityscapes_equal_the_single_camera_output(rig_data, single_data):
    """The rig's front camera is today's camera: its KITTI tree is byte-for-byte the one written without --rig."""
    single = sorted(p.relative_to(single_data / "kitti") for p in (single_data / "kitti").rglob("*") if p.is_file())
    front = sorted(p.relative_to(rig_data / "rig" / "front") for p in (rig_data / "rig" / "front").rglob("*")
                   if p.is_file())
    assert single == front and len(single) > 4 * DRIVES * FRAMES
    for name in single:
        assert (single_data / "kitti" / name).read_bytes() == (rig_data / "rig" / "front" / name).read_bytes(), name
    # Cityscapes stays the front mount's with the Cityscapes camera, with or without a rig
    city = sorted(p.relative_to(single_data) for p in (single_data / "cityscapes").rglob("*.png"))
    assert city
    for name in city:
        assert (single_data / name).read_bytes() == (rig_data / name).read_bytes(), name
    # without --rig nothing of the rig appears
    assert not (single_data / "rig").exists()
    manifest = json.loads((single_data / "synth.json").read_text())
    assert "rig" not in manifest and "rig" not in manifest["config"]
    assert not (rig_data / "kitti").exists()


def test_the_rig_front_renders_exactly_what_the_single_camera_renders():
    task = (5, 1, 10, parse_rig("front,rear", 160, 48), 6, 0.0, 0.0)
    front, rear = render_rig_task(task)
    single = render_task((5, 1, 10, kitti_camera(160, 48), 6, 0.0, 0.0))
    for field in ("rgb", "depth", "label_ids", "instance_ids", "pose"):
        np.testing.assert_array_equal(getattr(front, field), getattr(single, field), err_msg=field)
    assert rear.depth.shape == (41, 132) and not np.array_equal(rear.pose, front.pose)


def test_every_camera_sees_the_road_at_the_flat_road_depth_of_its_mount(rig_data):
    """Road pixels lie on the plane z = 0 of base_link: depth = −h / (R·ray)_z with the mount and K from the bag."""
    by_topic = _by_topic(_bag(rig_data, 1))
    for cam in CAMS:
        T = _base_to_optical(by_topic, cam)
        K = np.reshape(by_topic[f"/{cam}/camera_info"][0].msg.k, (3, 3))
        road_pixels = 0
        for i in range(FRAMES):
            depth = _image(by_topic[f"/{cam}/ground_truth/depth"][i].msg).astype(np.float64)
            labels = _image(by_topic[f"/{cam}/ground_truth/semantic"][i].msg)
            h, w = depth.shape
            v, u = np.mgrid[0:h, 0:w].astype(np.float64)
            rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
            down = rays @ T[:3, :3].T  # ray (z = 1 in the camera) in base_link axes
            road = labels == ROAD_TRAIN_ID
            road_pixels += road.sum()
            plane = -T[2, 3] / down[..., 2][road]
            np.testing.assert_allclose(depth[road], plane, rtol=1e-4, err_msg=f"{cam} frame {i}")
            # the world goes on behind the start: almost no ray looking down more than 1.5° finds nothing (sky)
            elevation = np.degrees(np.arcsin(down[..., 2] / np.linalg.norm(down, axis=-1)))
            void = np.isnan(depth) & (elevation < -1.5)
            assert void.mean() < 0.002, (cam, i, void.mean())
            assert (np.isnan(depth) == (labels == 10)).all()  # sky (trainId 10) and only sky has no depth
        # the right camera sees only the 3 m of road up to the kerb (and parked cars on it)
        assert road_pixels > 0.02 * FRAMES * depth.size, (cam, road_pixels)


def test_rear_camera_road_depth_at_a_known_pixel():
    """The rear camera 1.6 m up, level, looking back: the pixel 40 rows below the centre sees the road fy·h/40 away."""
    (rear,) = parse_rig("rear", 1242, 375)
    c = rear.camera
    frame = render_rig_task((2, 0, 5, (rear,), 0, 0.0, 0.0))[0]
    u, v = int(c.cx), int(round(c.cy)) + 40
    assert frame.label_ids[v, u] == 7  # road (labelId)
    assert frame.depth[v, u] == pytest.approx(c.fy * 1.6 / (v - c.cy), rel=1e-4)


def test_per_camera_trees_load_and_agree_with_the_rig_geometry(rig_data):
    """Each <out>/rig/<cam>/ is a KITTI raw root: the loader reads it at its own size and K; its poses are the
    ego motion of /tf seen through that camera's mount."""
    rig = parse_rig(RIG, W, H)
    by_topic = _by_topic(_bag(rig_data))
    odom_base = [_tf(m.msg.transforms[0])[2] for m in by_topic["/tf"]]
    for cam in rig:
        root = rig_data / "rig" / cam.name
        split = root / "splits" / layout.SPLIT_NAME / "train_files.txt"
        assert read_split_file(split)
        c = cam.camera
        sample = KittiRawDepthDataset(root, split, height=c.height, width=c.width)[0]
        assert sample[("color", 0)].shape == (3, c.height, c.width)
        assert sample["depth_gt"].shape == (1, c.height, c.width)
        np.testing.assert_allclose(sample["K"][:3, :3].numpy(), c.K, rtol=1e-5)
        calib = next(root.glob("*/calib_cam_to_cam.txt")).read_text()
        assert f"S_rect_02: {float(c.width):.6e} {float(c.height):.6e}" in calib
        poses = read_poses(root / layout.drive_folder(SEED, 0) / "poses.txt")
        B = _base_to_optical(by_topic, cam.name)
        for i in range(FRAMES):
            np.testing.assert_allclose(poses[i], np.linalg.inv(B) @ odom_base[i] @ B, atol=1e-5)


def test_eval_depth_runs_on_one_camera_tree_unchanged(rig_data, tmp_path):
    from sgdepth_ros.cli import main
    from sgdepth_ros.model import SGDepth, save_checkpoint
    import torch

    torch.manual_seed(0)
    checkpoint = tmp_path / "model.safetensors"
    save_checkpoint(SGDepth(pose_layers=None).eval(), checkpoint, {"provenance": {"source": "test_synth_rig"}})
    root = rig_data / "rig" / "rear"
    out = tmp_path / "rear.json"
    assert main(["eval-depth", "--model", str(checkpoint), "--data", str(root), "--split-file",
                 str(root / "splits" / layout.SPLIT_NAME / "test_files.txt"), "--gt", "png", "--protocol", "capped",
                 "--intrinsics", "calib", "--width", "128", "--height", "64", "--device", "cpu", "--no-progress",
                 "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["count"] == 2 and all(math.isfinite(v) for v in doc["metrics"].values())


def test_manifest_and_rig_file_describe_the_rig(rig_data):
    rig = parse_rig(RIG, W, H)
    manifest = json.loads((rig_data / "synth.json").read_text())
    assert manifest["config"]["rig"] == RIG
    assert [r["name"] for r in manifest["rig"]] == CAMS
    for entry, cam in zip(manifest["rig"], rig):
        assert (entry["width"], entry["height"], entry["fx"], entry["cx"]) == (
            cam.camera.width, cam.camera.height, cam.camera.fx, cam.camera.cx)
        np.testing.assert_allclose(entry["base_to_optical"], cam.base_to_optical(), atol=1e-8)
        assert entry["kitti_root"] == f"rig/{cam.name}" and (rig_data / entry["kitti_root"]).is_dir()
        assert entry["topics"]["image"] == f"/{cam.name}/image_raw"
        assert entry["frame_id"] == f"{cam.name}_optical_frame"
    assert manifest["counts"]["kitti_frames"] == DRIVES * FRAMES * len(CAMS)
    assert load_rig_file(rig_data / "rig" / "rig.yaml") == rig  # exactly: --rig OUT/rig/rig.yaml renders it again


def test_the_example_rig_file_is_the_builtin_rig():
    example = load_rig_file(REPO / "config" / "rig_example.yaml")
    builtin = parse_rig(RIG)
    assert [c.name for c in example] == CAMS
    for a, b in zip(example, builtin):
        for field in ("width", "height", "fx", "fy", "cx", "cy"):
            assert getattr(a.camera, field) == pytest.approx(getattr(b.camera, field), rel=1e-9), (a.name, field)
        np.testing.assert_allclose(a.base_to_optical(), b.base_to_optical(), atol=1e-12)


def test_worker_processes_write_the_same_rig_files_as_one_process(tmp_path):
    outs = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        generate(SynthConfig(out, frames=3, seed=1, width=W, height=H, formats=("kitti", "bag"), rig=RIG,
                             exposure_jitter=0.2, noise_sigma=0.02, workers=workers), progress=False)
        outs.append(out)
    names = sorted(p.relative_to(outs[0]) for p in outs[0].rglob("*") if p.is_file() and p.name != "synth.json")
    assert len([n for n in names if n.suffix == ".png"]) == 4 * 3 * len(CAMS)
    assert any(n.suffix == ".mcap" for n in names)
    assert names == sorted(p.relative_to(outs[1]) for p in outs[1].rglob("*")
                           if p.is_file() and p.name != "synth.json")
    for name in names:
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name


GOOD = {"name": "cam", "width": 64, "height": 48, "fx": 50.0, "xyz": [0.0, 0.0, 1.5]}


@pytest.mark.parametrize("entries, message", [
    ([{**GOOD, "width": 20}], "cameras[0] (cam): width must be an integer in [32, 4096], got 20"),
    ([{**GOOD, "height": 64.5}], "cameras[0] (cam): height must be an integer in [32, 4096], got 64.5"),
    ([{**GOOD, "name": "1cam"}], "cameras[0]: name must match ^[A-Za-z][A-Za-z0-9_]*$, got '1cam'"),
    ([GOOD, {**GOOD, "xyz": [0.0, 0.5, 1.5]}], "camera name 'cam' appears twice"),
    ([{**GOOD, "name": f"c{i}"} for i in range(9)], "cameras must be a list of 1 to 8 cameras"),
    ([{**GOOD, "hfov_deg": 90}], "cameras[0] (cam): give either fx (pixels) or hfov_deg"),
    ([{k: v for k, v in GOOD.items() if k != "fx"}], "give either fx (pixels) or hfov_deg"),
    ([{**GOOD, "fov": 90}], "cameras[0] (cam): unknown field(s) fov"),
    ([{**GOOD, "xyz": [0.0, 0.0, -1.0]}], "cameras[0] (cam): xyz[2] (height above the road, m) must be in [0.2, 20]"),
    ([{**GOOD, "xyz": [0.0, 1.5]}], "cameras[0] (cam): xyz must be a list of 3 numbers"),
    ([{**GOOD, "rpy_deg": [0, 0, 400]}], "cameras[0] (cam): rpy_deg must be a list of 3 numbers in [-360, 360]"),
    ([{**GOOD, "cx": 100}], "cameras[0] (cam): cx must be a number in [0, 63], got 100"),
    ([{**GOOD, "fx": float("nan")}], "cameras[0] (cam): fx must be a number"),
    ([{**GOOD, "fx": 10 ** 400}], "cameras[0] (cam): fx must be a number"),
    ([{k: v for k, v in GOOD.items() if k != "xyz"}], "cameras[0] (cam): xyz is missing"),
])
def test_bad_rig_files_are_rejected_naming_the_file_and_the_field(tmp_path, entries, message):
    import yaml

    path = tmp_path / "my_rig.yaml"
    path.write_text(yaml.safe_dump({"cameras": entries}))
    with pytest.raises(ValueError) as exc:
        parse_rig(str(path))
    assert str(path) in str(exc.value) and message in str(exc.value), str(exc.value)


@pytest.mark.parametrize("text, message", [
    ("cameras: [", "not valid YAML"),
    ("- front", "expected a mapping with a 'cameras' list"),
    ("cameras: []\nextra: 1", "unknown key(s) extra"),
])
def test_malformed_rig_files_are_rejected_naming_the_file(tmp_path, text, message):
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(ValueError) as exc:
        parse_rig(str(path))
    assert str(path) in str(exc.value) and message in str(exc.value), str(exc.value)


@pytest.mark.parametrize("spec, size, message", [
    ("front,top", (W, H), "unknown built-in camera 'top'; built-in: front, left, right, rear"),
    ("front,front", (W, H), "camera name 'front' appears twice"),
    ("front,rear", (64, 32), "built-in camera rear at --width 64 --height 32 would be 53x27; each side must be in "
                             "[32, 4096]"),
    ("missing.yaml", (W, H), "rig file missing.yaml: cannot read it"),
])
def test_bad_builtin_rigs_are_rejected(spec, size, message):
    with pytest.raises(ValueError) as exc:
        parse_rig(spec, *size)
    assert message in str(exc.value), str(exc.value)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sgdepth_ros.cli", "synth", *args], capture_output=True, text=True,
                          timeout=300)


def test_cli_writes_a_jpeg_sqlite_rig_bag_and_rejects_a_bad_rig_file(tmp_path):
    out = tmp_path / "s"
    r = _cli("--out", str(out), "--frames", "3", "--width", "160", "--height", "48", "--formats", "bag",
             "--bag-storage", "sqlite3", "--bag-image", "jpeg", "--workers", "1", "--rig", "front,rear")
    assert r.returncode == 0, r.stderr
    assert "2 cameras (front, rear)" in r.stdout
    bag = _bag_path(out)
    assert list(bag.glob("*.db3"))
    topics = {m.topic for m in read_messages(bag, deserialize=False)}
    assert {"/front/image_raw/compressed", "/rear/image_raw/compressed", "/rear/ground_truth/depth"} <= topics
    assert "/front/image_raw" not in topics and "/camera/image_raw/compressed" not in topics
    bad = tmp_path / "bad_rig.yaml"
    bad.write_text("cameras:\n  - {name: side, width: 5000, height: 48, hfov_deg: 90, xyz: [0, 0, 1.5]}\n")
    refused = _cli("--out", str(tmp_path / "x"), "--rig", str(bad))
    assert refused.returncode == 2, (refused.stdout, refused.stderr)
    assert f"rig file {bad}: cameras[0] (side): width must be an integer in [32, 4096], got 5000" in refused.stdout
    assert not (tmp_path / "x").exists()


def _bag_path(out: Path) -> Path:
    return out / "bags" / layout.drive_name(0, 0).removesuffix("_sync")
