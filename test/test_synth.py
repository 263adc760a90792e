"""The synthetic world: geometry agrees with its ground truth, labels are plausible, every export reads back.

One small dataset (1 drive × 8 frames at 640×192, all formats) is generated per test module in a temp folder; the
checks read it only through the trainer's loaders, rosbags and rclpy, as users will.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from sgdepth_ros.cli import main as cli
from sgdepth_ros.labels import label_id_to_train_id
from sgdepth_training.data.cityscapes import CityscapesSegDataset
from sgdepth_training.data.kitti import KittiRawDepthDataset, read_depth_png, read_poses, read_rgb
from sgdepth_training.data.splits import SplitEntry, read_split_file
from sgdepth_training.synth import layout
from sgdepth_training.synth.generate import SynthConfig, generate, render_task
from sgdepth_training.synth.camera import kitti_camera

W, H, FRAMES, SEED = 640, 192, 8, 3
FOLDER = layout.drive_folder(SEED, 0)
USED_LABEL_IDS = {7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 26}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "data"
    generate(SynthConfig(out, drives=1, frames=FRAMES, seed=SEED, width=W, height=H, cityscapes_width=256,
                         cityscapes_height=128, cityscapes_every=2, workers=1), progress=False)
    return out


def drive_dir(root: Path) -> Path:
    return root / "kitti" / FOLDER


def read_frame(root: Path, i: int) -> dict:
    d = drive_dir(root)
    name = f"{i:010d}.png"
    return {
        "rgb": read_rgb(d / "image_02" / "data" / name).astype(np.float32) / 255,
        "depth": read_depth_png(d / "proj_depth" / "groundtruth" / "image_02" / name),
        "labels": cv2.imread(str(d / "synthetic" / "label_ids" / "image_02" / name), cv2.IMREAD_UNCHANGED),
        "instances": cv2.imread(str(d / "synthetic" / "instance_ids" / "image_02" / name), cv2.IMREAD_UNCHANGED),
    }


def object_motion(objects: dict, i: int, j: int) -> dict[int, np.ndarray]:
    """instance id → 4×4 world motion of that object from frame i to frame j (identity for parked ones)."""
    out = {}
    for k, flat in objects["frames"][i]["poses"].items():
        Ti, Tj = np.eye(4), np.eye(4)
        Ti[:3] = np.reshape(flat, (3, 4))
        Tj[:3] = np.reshape(objects["frames"][j]["poses"][k], (3, 4))
        out[int(k)] = Tj @ np.linalg.inv(Ti)
    return out


def warp(root: Path, t: int, follow_objects: bool) -> dict:
    """Warp frame t+1 into frame t with ground-truth depth, ego poses and intrinsics (read from the export).

    With ``follow_objects`` each actor pixel also moves with its object's ground-truth motion. Returns per-pixel
    photometric error [H,W] (mean |ΔRGB| in [0,1]), depth consistency [H,W] bool (target depth at the projection
    equals the projected z within 1 %), validity masks and the moving-object mask.
    """
    K = np.array(KittiRawDepthDataset(root / "kitti", _split(root), height=None, width=None).intrinsics_for(
        SplitEntry(FOLDER, t, "l"), (W, H)))[:3, :3]
    poses = read_poses(drive_dir(root) / "poses.txt")
    objects = json.loads((drive_dir(root) / "synthetic" / "objects.json").read_text())
    moving_ids = {o["id"] for o in objects["objects"] if o["moving"]}
    a, b = read_frame(root, t), read_frame(root, t + 1)
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    z = a["depth"].astype(np.float64)
    points = np.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z, np.ones_like(z)], -1)
    world = points @ poses[t].T
    if follow_objects:
        for k, M in object_motion(objects, t, t + 1).items():
            sel = a["instances"] == k
            world[sel] = world[sel] @ M.T
    cam = world @ np.linalg.inv(poses[t + 1]).T
    zp = cam[..., 2]
    up = cam[..., 0] / np.maximum(zp, 1e-6) * K[0, 0] + K[0, 2]
    vp = cam[..., 1] / np.maximum(zp, 1e-6) * K[1, 1] + K[1, 2]
    warped = cv2.remap(b["rgb"], up.astype(np.float32), vp.astype(np.float32), cv2.INTER_LINEAR)
    target_depth = cv2.remap(b["depth"], up.astype(np.float32), vp.astype(np.float32), cv2.INTER_NEAREST)
    local = cv2.dilate(z.astype(np.float32), np.ones((5, 5))) - cv2.erode(z.astype(np.float32), np.ones((5, 5)))
    valid = (z > 0) & (zp > 0.1) & (up > 1) & (up < W - 2) & (vp > 1) & (vp < H - 2) & (local < 0.03 * z)
    moving = np.isin(a["instances"], list(moving_ids))
    return {"error": np.abs(warped - a["rgb"]).mean(-1), "identity": np.abs(b["rgb"] - a["rgb"]).mean(-1),
            "consistent": np.abs(target_depth - zp) < 0.01 * zp + 0.01, "valid": valid, "moving": moving}


def _split(root: Path) -> Path:
    return root / "kitti" / "splits" / layout.SPLIT_NAME / "train_files.txt"


def test_static_pixels_warp_onto_the_previous_frame_and_moving_objects_do_not(dataset):
    r = warp(dataset, 3, follow_objects=False)
    static = r["valid"] & ~r["moving"] & r["consistent"]
    moving = r["valid"] & r["moving"]
    assert static.sum() > 0.3 * W * H and moving.sum() > 200, (static.sum(), moving.sum())
    static_error, moving_error = r["error"][static].mean(), r["error"][moving].mean()
    identity_error = r["identity"][static].mean()
    assert static_error < 0.02, static_error                     # near zero (8-bit colour, bilinear resampling)
    assert static_error < identity_error / 4, (static_error, identity_error)  # the ego motion is large
    assert moving_error > 3 * static_error, (moving_error, static_error)
    # geometry alone: static surfaces land where the next frame sees them at the predicted depth; movers do not
    assert (r["valid"] & ~r["moving"] & r["consistent"]).sum() > 0.95 * (r["valid"] & ~r["moving"]).sum()
    assert (moving & r["consistent"]).sum() < 0.5 * moving.sum()


def test_moving_objects_warp_with_their_own_ground_truth_motion(dataset):
    """Textures ride with the objects: following each actor's pose makes its pixels reproduce too."""
    ego_only = warp(dataset, 3, follow_objects=False)
    followed = warp(dataset, 3, follow_objects=True)
    moving = followed["valid"] & followed["moving"] & followed["consistent"]
    assert moving.sum() > 100
    assert followed["error"][moving].mean() < 0.03
    assert followed["error"][moving].mean() < ego_only["error"][moving].mean() / 2


def test_every_pixel_is_labelled_with_plausible_classes(dataset):
    train_ids = label_id_to_train_id()
    for i in range(FRAMES):
        f = read_frame(dataset, i)
        present = set(np.unique(f["labels"]).tolist())
        assert present <= USED_LABEL_IDS, present - USED_LABEL_IDS
        assert {7, 11, 23, 26} <= present, f"frame {i} lacks road/building/sky/car: {present}"
        assert (train_ids[f["labels"]] != 255).all()
        road, sky = (f["labels"] == 7).mean(), (f["labels"] == 23).mean()
        assert 0.15 < road < 0.6 and 0.03 < sky < 0.5, (road, sky)
        # sky and only sky has no depth; depth is positive and within the depth-PNG range elsewhere
        assert ((f["depth"] == 0) == (f["labels"] == 23)).mean() > 0.999
        assert f["depth"][f["labels"] != 23].min() > 0.5


def test_kitti_export_reads_back_through_the_training_loader(dataset):
    splits = {s: read_split_file(dataset / "kitti" / "splits" / layout.SPLIT_NAME / f"{s}_files.txt")
              for s in ("train", "val", "test")}
    held_out = {e.frame for e in splits["val"] + splits["test"]}
    assert splits["train"] and splits["test"]
    for e in splits["train"]:  # no training sample reads a held-out frame
        assert not {e.frame - 1, e.frame, e.frame + 1} & held_out
    ds = KittiRawDepthDataset(dataset / "kitti", _split(dataset), height=192, width=640)
    sample = ds[0]
    assert sample[("color", 0)].shape == (3, 192, 640) and sample[("color", -1)].shape == (3, 192, 640)
    assert sample["depth_gt"].shape == (1, H, W)
    np.testing.assert_allclose(sample["K"][:3, :3].numpy(), kitti_camera(W, H).K, rtol=1e-5)
    poses = read_poses(drive_dir(dataset) / "poses.txt")
    assert poses.shape == (FRAMES, 4, 4)
    np.testing.assert_allclose(poses[0], np.eye(4), atol=1e-9)
    speed = np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1) * 10
    assert np.all((speed > 7.9) & (speed < 12.1)), speed  # 8–12 m/s at 10 Hz
    stamps = (drive_dir(dataset) / "image_02" / "timestamps.txt").read_text().splitlines()
    assert len(stamps) == FRAMES and stamps[1].endswith(".100000000")


def test_cityscapes_export_reads_back_with_labelids_mapped(dataset):
    for split in ("train", "val"):
        ds = CityscapesSegDataset(dataset / "cityscapes", split=split)
        assert len(ds) >= 1
        sample = ds[0]
        assert sample["color"].shape == (3, 128, 256)  # 2:1
        seg = sample["segmentation"].numpy()
        raw = cv2.imread(sample["label_path"], cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(seg, label_id_to_train_id()[raw])
        assert {0, 2, 10, 13} <= set(np.unique(seg).tolist())  # road, building, sky, car as trainIds


def test_bag_deserializes_with_rclpy_and_matches_the_kitti_export(dataset):
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import CameraInfo, Image

    from sgdepth_ros.bag import read_messages
    from sgdepth_training.synth import export_bag

    bag = dataset / "bags" / layout.drive_name(SEED, 0).removesuffix("_sync")
    by_topic: dict[str, list] = {}
    for m in read_messages(bag):
        by_topic.setdefault(m.topic, []).append(m)
    for topic in (export_bag.IMAGE_TOPIC, export_bag.INFO_TOPIC, export_bag.DEPTH_TOPIC, export_bag.SEMANTIC_TOPIC,
                  "/tf"):
        assert len(by_topic[topic]) == FRAMES, topic
    assert len(by_topic["/tf_static"]) == 1
    stamps = [m.timestamp_ns for m in by_topic[export_bag.IMAGE_TOPIC]]
    assert np.all(np.diff(stamps) == 100_000_000)  # 10 Hz
    i = 4
    image = deserialize_message(by_topic[export_bag.IMAGE_TOPIC][i].rawdata, Image)
    assert (image.encoding, image.width, image.height, image.header.frame_id) == ("rgb8", W, H,
                                                                                   "camera_optical_frame")
    assert image.header.stamp.sec * 10**9 + image.header.stamp.nanosec == stamps[i]
    rgb = np.frombuffer(bytes(image.data), np.uint8).reshape(H, W, 3)
    np.testing.assert_array_equal(rgb, read_rgb(drive_dir(dataset) / "image_02" / "data" / f"{i:010d}.png"))
    info = deserialize_message(by_topic[export_bag.INFO_TOPIC][i].rawdata, CameraInfo)
    np.testing.assert_allclose(np.reshape(info.k, (3, 3)), kitti_camera(W, H).K)
    depth_msg = deserialize_message(by_topic[export_bag.DEPTH_TOPIC][i].rawdata, Image)
    depth = np.frombuffer(bytes(depth_msg.data), np.float32).reshape(H, W)
    png = read_frame(dataset, i)["depth"]
    assert depth_msg.encoding == "32FC1" and (np.isnan(depth) == (png == 0)).all()
    np.testing.assert_allclose(depth[png > 0], png[png > 0], atol=1 / 512 + 1e-6)
    sem = deserialize_message(by_topic[export_bag.SEMANTIC_TOPIC][i].rawdata, Image)
    labels = np.frombuffer(bytes(sem.data), np.uint8).reshape(H, W)
    np.testing.assert_array_equal(labels, label_id_to_train_id()[read_frame(dataset, i)["labels"]])
    static = by_topic["/tf_static"][0].msg.transforms
    height = next(t for t in static if t.child_frame_id == "camera_link").transform.translation.z
    assert height == pytest.approx(1.65)


def test_same_seed_same_frames_other_seed_other_town():
    camera = kitti_camera(160, 48)
    a = render_task((5, 0, 10, camera, 4, 0.0, 0.0))
    b = render_task((5, 0, 10, camera, 4, 0.0, 0.0))
    c = render_task((6, 0, 10, camera, 4, 0.0, 0.0))
    np.testing.assert_array_equal(a.rgb, b.rgb)
    np.testing.assert_array_equal(a.depth, b.depth)
    assert np.abs(a.rgb.astype(int) - c.rgb).mean() > 10


def test_worker_processes_write_the_same_files_as_one_process(tmp_path):
    outs = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        generate(SynthConfig(out, frames=4, seed=1, width=160, height=48, formats=("kitti",), workers=workers),
                 progress=False)
        outs.append(out)
    names = sorted(p.relative_to(outs[0]) for p in outs[0].rglob("*.png"))
    assert len(names) == 16
    for name in names:
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sgdepth_ros.cli", "synth", *args], capture_output=True, text=True,
                          timeout=300)


def test_cli_writes_a_sqlite_bag_with_jpeg_images_and_guards_the_output_folder(tmp_path):
    out = tmp_path / "s"
    r = _cli("--out", str(out), "--frames", "3", "--width", "96", "--height", "32", "--formats", "bag",
             "--bag-storage", "sqlite3", "--bag-image", "jpeg", "--workers", "1")
    assert r.returncode == 0, r.stderr
    bag = out / "bags" / layout.drive_name(0, 0).removesuffix("_sync")
    assert list(bag.glob("*.db3"))
    from sgdepth_ros.bag import read_messages
    topics = {m.topic for m in read_messages(bag)}
    assert "/camera/image_raw/compressed" in topics and "/camera/image_raw" not in topics
    again = _cli("--out", str(out), "--frames", "3", "--width", "96", "--height", "32", "--formats", "bag")
    assert again.returncode == 1 and "--overwrite" in again.stderr
    forced = _cli("--out", str(out), "--frames", "3", "--width", "96", "--height", "32", "--formats", "bag",
                  "--overwrite", "--workers", "1")
    assert forced.returncode == 0, forced.stderr
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    refused = _cli("--out", str(foreign), "--frames", "3")
    assert refused.returncode == 1 and "not empty" in refused.stderr
    assert (foreign / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("args, message", [
    (["--frames", "2"], "--frames must be in [3, 100000]"),
    (["--formats", "kitti,png"], "--formats must be a comma list of kitti, cityscapes, bag"),
    (["--bag-storage", "rosbag1"], "--bag-storage must be mcap or sqlite3"),
    (["--width", "8"], "--width/--height must be in [32, 4096]"),
])
def test_cli_rejects_bad_settings_with_the_valid_range(tmp_path, capsys, args, message):
    assert cli(["synth", "--out", str(tmp_path / "x"), *args]) == 2  # in process: no interpreter start per case
    assert message in capsys.readouterr().out
    assert not (tmp_path / "x").exists()


def test_the_vehicle_path_imports_neither_the_offline_half_nor_its_libraries():
    code = ("import sys, sgdepth_ros.ros.node, sgdepth_ros.predictor, sgdepth_ros.cli; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('sgdepth_training', 'rosbags', 'embreex', 'trimesh', 'tensorboard', 'matplotlib', 'mcap')); "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
