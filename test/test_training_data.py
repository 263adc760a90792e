"""Dataset readers of sgdepth_training.data on tiny generated KITTI / Cityscapes trees (nothing is downloaded)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from sgdepth_training.data.cityscapes import CityscapesSegDataset
from sgdepth_training.data.errors import DatasetError
from sgdepth_training.data.kitti import (
    KITTI_DEFAULT_K_NORMALISED, KittiRawDepthDataset, depth_png_path, image_path, read_depth_png, read_poses,
    read_rgb, write_poses,
)
from sgdepth_training.data.kitti_calib import camera_intrinsics, read_calib_file
from sgdepth_training.data.splits import SplitEntry, read_split_file, write_split_file

W0, H0 = 20, 12  # native size of the fake KITTI images
DATE = "2011_09_26"
DRIVES = [f"{DATE}/{DATE}_drive_0001_sync", f"{DATE}/{DATE}_drive_0002_sync"]
N_FRAMES = 4

CALIB_TEXT = f"""calib_time: 09-Jan-2012 13:57:47
corner_dist: 9.950000e-02
S_02: 1.392000e+03 5.120000e+02
S_rect_02: {W0:.6e} {H0:.6e}
P_rect_02: 1.000000e+01 0.000000e+00 9.500000e+00 0.000000e+00 0.000000e+00 1.200000e+01 5.500000e+00 0.000000e+00 0.000000e+00 0.000000e+00 1.000000e+00 0.000000e+00
S_rect_03: {W0:.6e} {H0:.6e}
P_rect_03: 1.100000e+01 0.000000e+00 9.000000e+00 -5.940000e+00 0.000000e+00 1.300000e+01 6.000000e+00 0.000000e+00 0.000000e+00 0.000000e+00 1.000000e+00 0.000000e+00
"""


def pixel(drive: int, frame: int, side: str) -> tuple[int, int, int]:
    """RGB value encoding (drive, frame, camera) of every pixel of a fake image."""
    return (10 * frame + 5, 100 + 50 * drive, 30 if side == "l" else 200)


def write_rgb(path: Path, rgb: tuple[int, int, int], size=(W0, H0)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.empty((size[1], size[0], 3), np.uint8)
    img[:] = rgb
    assert cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))


@pytest.fixture
def kitti(tmp_path: Path) -> Path:
    """2 drives x 4 frames x 2 cameras of 20x12 constant PNGs, calib, depth for drive 1 frame 1, poses, split."""
    root = tmp_path / "kitti"
    for d, folder in enumerate(DRIVES):
        for frame in range(N_FRAMES):
            for side in "lr":
                write_rgb(image_path(root, folder, frame, side, "png"), pixel(d, frame, side))
    (root / DATE / "calib_cam_to_cam.txt").write_text(CALIB_TEXT)
    depth = np.zeros((H0, W0), np.uint16)
    depth[3, 4] = 2560
    depth[5, 6] = 65535
    target = root / DRIVES[0] / "proj_depth" / "groundtruth" / "image_02" / "0000000001.png"
    target.parent.mkdir(parents=True)
    assert cv2.imwrite(str(target), depth)
    write_split_file(root / "split.txt", [SplitEntry(DRIVES[0], 1, "l"), SplitEntry(DRIVES[0], 2, "r"),
                                          SplitEntry(DRIVES[1], 2, "l")])
    return root


# -- calibration ----------------------------------------------------------------------------------------------------
def test_read_calib_file_parses_numbers_and_skips_text(kitti):
    calib = read_calib_file(kitti / DATE / "calib_cam_to_cam.txt")
    assert "calib_time" not in calib
    assert calib["corner_dist"].tolist() == [0.0995]
    assert calib["P_rect_02"].shape == (12,) and calib["P_rect_02"].dtype == np.float64
    K, size = camera_intrinsics(calib, 3)
    assert size == (20, 12)
    np.testing.assert_array_equal(K, [[11, 0, 9], [0, 13, 6], [0, 0, 1]])


def test_read_calib_file_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "calib_cam_to_cam.txt"
    path.write_text("calib_time: 09-Jan-2012 13:57:47\nS_rect_02: 20 12\n\nP_rect_02: 1 2 x 4\n")
    with pytest.raises(DatasetError, match=r"calib_cam_to_cam\.txt:4: non-numeric value 'x'"):
        read_calib_file(path)
    path.write_text("S_rect_02: 20 12\nno colon here\n")
    with pytest.raises(DatasetError, match=r"calib_cam_to_cam\.txt:2: expected 'KEY: values'"):
        read_calib_file(path)


def test_camera_intrinsics_missing_key():
    with pytest.raises(DatasetError, match="P_rect_02"):
        camera_intrinsics({"S_rect_02": np.array([20.0, 12.0])})


# -- split files ----------------------------------------------------------------------------------------------------
def test_split_file_round_trip_and_errors(tmp_path):
    entries = [SplitEntry(DRIVES[0], 7, "l"), SplitEntry(DRIVES[1], 0, "r")]
    path = tmp_path / "splits" / "train_files.txt"
    write_split_file(path, entries)
    assert path.read_text() == f"{DRIVES[0]} 7 l\n{DRIVES[1]} 0 r\n"
    path.write_text(path.read_text() + "\n\n")  # trailing blank lines are ignored
    assert read_split_file(path) == entries
    assert entries[0].date == DATE
    bad = tmp_path / "bad.txt"
    bad.write_text(f"{DRIVES[0]} 7 l\n\n{DRIVES[0]} 8 x\n")
    with pytest.raises(DatasetError, match=r"bad\.txt:3: side 'x'"):
        read_split_file(bad)
    bad.write_text(f"{DRIVES[0]} seven l\n")
    with pytest.raises(DatasetError, match=r"bad\.txt:1: frame 'seven'"):
        read_split_file(bad)
    bad.write_text(f"{DRIVES[0]} 7\n")
    with pytest.raises(DatasetError, match=r"bad\.txt:1: expected 'folder frame side'"):
        read_split_file(bad)


# -- single files ---------------------------------------------------------------------------------------------------
def test_image_path_layout():
    assert image_path("/r", DRIVES[0], 42, "l", "png") == Path(f"/r/{DRIVES[0]}/image_02/data/0000000042.png")
    assert image_path("/r", DRIVES[0], 42, "r", ".jpg") == Path(f"/r/{DRIVES[0]}/image_03/data/0000000042.jpg")


def test_read_rgb_channel_order_and_corrupt_file(tmp_path):
    path = tmp_path / "a.png"
    write_rgb(path, (1, 2, 3))
    img = read_rgb(path)
    assert img.dtype == np.uint8 and img.shape == (H0, W0, 3)
    assert img[0, 0].tolist() == [1, 2, 3]
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DatasetError, match="corrupt.png"):
        read_rgb(corrupt)
    with pytest.raises(DatasetError, match="nothere.png"):
        read_rgb(tmp_path / "nothere.png")


def test_read_depth_png_values_and_dtype(kitti, tmp_path):
    path = depth_png_path(kitti, DRIVES[0], 1, "l")
    depth = read_depth_png(path)
    assert depth.dtype == np.float32 and depth.shape == (H0, W0)
    assert depth[3, 4] == 10.0 and depth[0, 0] == 0.0 and depth[5, 6] == pytest.approx(65535 / 256)
    assert np.count_nonzero(depth) == 2
    eight_bit = tmp_path / "eight.png"
    cv2.imwrite(str(eight_bit), np.zeros((4, 4), np.uint8))
    with pytest.raises(DatasetError, match=r"eight\.png: depth PNG must be 16-bit"):
        read_depth_png(eight_bit)


def test_depth_png_path_layouts(kitti, tmp_path):
    official = tmp_path / "depth_completion"
    drive = DRIVES[1].split("/")[1]
    target = official / "val" / drive / "proj_depth" / "groundtruth" / "image_03" / "0000000002.png"
    target.parent.mkdir(parents=True)
    cv2.imwrite(str(target), np.full((H0, W0), 512, np.uint16))
    assert depth_png_path(official, DRIVES[1], 2, "r") == target
    with pytest.raises(DatasetError, match=r"tried: .*image_02.*0000000003\.png.*train.*val"):
        depth_png_path(official, DRIVES[1], 3, "l")


def test_poses_round_trip_and_bad_line(tmp_path):
    rng = np.random.default_rng(0)
    poses = np.tile(np.eye(4), (3, 1, 1))
    poses[:, :3, :] = rng.normal(size=(3, 3, 4))
    path = tmp_path / "poses.txt"
    write_poses(path, poses)
    back = read_poses(path)
    assert back.shape == (3, 4, 4) and back.dtype == np.float64
    np.testing.assert_allclose(back, poses, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(back[:, 3], np.tile([0, 0, 0, 1.0], (3, 1)))
    path.write_text(path.read_text() + "1 0 0 0 0 1 0 0 0 0 1\n")
    with pytest.raises(DatasetError, match=r"poses\.txt:4: expected 12 numbers, got 11"):
        read_poses(path)


# -- KITTI dataset --------------------------------------------------------------------------------------------------
def test_kitti_dataset_frame_offsets_load_right_images(kitti):
    ds = KittiRawDepthDataset(kitti, kitti / "split.txt", height=6, width=40, load_depth=False)
    assert len(ds) == 3 and ds.skipped == []
    expected = [(0, 1, "l"), (0, 2, "r"), (1, 2, "l")]
    for index, (drive, frame, side) in enumerate(expected):
        sample = ds[index]
        assert (sample["folder"], sample["frame"], sample["side"]) == (DRIVES[drive], frame, side)
        assert "depth_gt" not in sample
        for offset in (0, -1, 1):
            color = sample[("color", offset)]
            assert color.dtype == torch.float32 and color.shape == (3, 6, 40)
            want = torch.tensor(pixel(drive, frame + offset, side), dtype=torch.float32) / 255
            torch.testing.assert_close(color, want[:, None, None].expand(3, 6, 40), rtol=0, atol=1e-6)


def test_kitti_dataset_calib_intrinsics_scaled(kitti):
    ds = KittiRawDepthDataset(kitti, kitti / "split.txt", height=6, width=40)
    K_left, K_right = ds[0]["K"], ds[1]["K"]  # sx = 40/20 = 2, sy = 6/12 = 0.5
    assert K_left.dtype == torch.float32 and K_left.shape == (4, 4)
    torch.testing.assert_close(K_left, torch.tensor(
        [[20.0, 0, 19.0, 0], [0, 6.0, 2.75, 0], [0, 0, 1, 0], [0, 0, 0, 1]]))
    torch.testing.assert_close(K_right, torch.tensor(
        [[22.0, 0, 18.0, 0], [0, 6.5, 3.0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]))
    torch.testing.assert_close(ds[0]["inv_K"] @ K_left, torch.eye(4))


def test_kitti_dataset_default_intrinsics(kitti):
    ds = KittiRawDepthDataset(kitti, kitti / "split.txt", intrinsics="default")
    sample = ds[0]
    assert sample[("color", 0)].shape == (3, 192, 640)
    K = sample["K"].double()
    assert K[0, 0].item() == pytest.approx(371.2) and K[1, 1].item() == pytest.approx(368.64)
    assert K[0, 2].item() == 320.0 and K[1, 2].item() == 96.0
    np.testing.assert_allclose(KITTI_DEFAULT_K_NORMALISED, [[0.58, 0, 0.5], [0, 1.92, 0.5], [0, 0, 1]])
    torch.testing.assert_close(sample["inv_K"].double() @ K, torch.eye(4, dtype=torch.float64), atol=1e-6, rtol=0)


def test_kitti_dataset_depth_gt_native_resolution(kitti):
    ds = KittiRawDepthDataset(kitti, kitti / "split.txt", height=6, width=40)
    depth = ds[0]["depth_gt"]
    assert depth.dtype == torch.float32 and depth.shape == (1, H0, W0)
    assert depth[0, 3, 4].item() == 10.0 and depth[0, 0, 0].item() == 0.0
    assert "depth_gt" not in ds[1]  # no depth PNG for drive 1 frame 2 right


def test_kitti_dataset_missing_neighbour_error_and_skip(kitti):
    missing = image_path(kitti, DRIVES[1], 3, "l", "png")
    missing.unlink()
    with pytest.raises(DatasetError, match=r"drive_0002_sync/image_02/data/0000000003\.png: missing file"):
        KittiRawDepthDataset(kitti, kitti / "split.txt")
    entries = read_split_file(kitti / "split.txt") + [SplitEntry(DRIVES[0], 0, "l")]  # frame -1 does not exist
    ds = KittiRawDepthDataset(kitti, entries, missing="skip", height=6, width=40)
    assert len(ds) == 2
    assert [(e.folder, e.frame) for e, _ in ds.skipped] == [(DRIVES[1], 2), (DRIVES[0], 0)]
    assert ds.skipped[0][1] == missing
    assert [ds[i]["frame"] for i in range(len(ds))] == [1, 2]
    # offsets (0,) alone need no neighbours
    assert len(KittiRawDepthDataset(kitti, entries, frame_offsets=(0,))) == 4


def test_kitti_dataset_missing_calib(kitti):
    (kitti / DATE / "calib_cam_to_cam.txt").unlink()
    with pytest.raises(DatasetError, match=r"calib_cam_to_cam\.txt: missing file"):
        KittiRawDepthDataset(kitti, kitti / "split.txt")
    assert len(KittiRawDepthDataset(kitti, kitti / "split.txt", intrinsics="default")) == 3


def test_kitti_dataset_corrupt_image_at_load(kitti):
    ds = KittiRawDepthDataset(kitti, kitti / "split.txt", height=6, width=40)
    bad = image_path(kitti, DRIVES[0], 0, "l", "png")  # the -1 neighbour of the first entry
    bad.write_bytes(b"not a png at all")
    with pytest.raises(DatasetError, match=r"drive_0001_sync/image_02/data/0000000000\.png"):
        ds[0]


def test_kitti_dataset_jpg_autodetect_and_transform(kitti):
    folder = DRIVES[1]
    for frame in range(N_FRAMES):
        png = image_path(kitti, folder, frame, "l", "png")
        png.unlink()
        write_rgb(image_path(kitti, folder, frame, "l", "jpg"), pixel(1, frame, "l"))
    seen = []

    def transform(sample):
        seen.append(sample["frame"])
        sample["extra"] = 1
        return sample

    ds = KittiRawDepthDataset(kitti, kitti / "split.txt", height=12, width=20, transform=transform)
    sample = ds[2]  # drive 2, left camera: now JPEG
    assert seen == [2] and sample["extra"] == 1
    want = torch.tensor(pixel(1, 3, "l"), dtype=torch.float32) / 255
    assert (sample[("color", 1)] - want[:, None, None]).abs().max() <= 2 / 255
    assert ds[0][("color", 0)][0, 0, 0].item() == pytest.approx(pixel(0, 1, "l")[0] / 255)  # drive 1 is still PNG


# -- Cityscapes -----------------------------------------------------------------------------------------------------
LABEL_IDS = np.array([[7, 26, 0, 33], [7, 26, 0, 33], [8, 8, 24, 23], [8, 8, 24, 23]], np.uint8)  # 4x4 labelIds
TRAIN_IDS = np.array([[0, 13, 255, 18], [0, 13, 255, 18], [1, 1, 11, 10], [1, 1, 11, 10]], np.uint8)


@pytest.fixture
def cityscapes(tmp_path: Path) -> Path:
    """Two 4x4 images in two cities; aachen has labelIds, bochum only labelTrainIds."""
    root = tmp_path / "cityscapes"
    for city, name, rgb in (("aachen", "aachen_000000_000019", (9, 8, 7)), ("bochum", "bochum_000000_000313",
                                                                              (1, 2, 3))):
        write_rgb(root / "leftImg8bit" / "train" / city / f"{name}_leftImg8bit.png", rgb, size=(4, 4))
        gt = root / "gtFine" / "train" / city
        gt.mkdir(parents=True)
        if city == "aachen":
            cv2.imwrite(str(gt / f"{name}_gtFine_labelIds.png"), LABEL_IDS)
        else:
            cv2.imwrite(str(gt / f"{name}_gtFine_labelTrainIds.png"), TRAIN_IDS)
        cv2.imwrite(str(gt / f"{name}_gtFine_color.png"), np.zeros((4, 4, 3), np.uint8))
    return root


def test_cityscapes_label_ids_and_train_ids(cityscapes):
    ds = CityscapesSegDataset(cityscapes)
    assert len(ds) == 2
    first, second = ds[0], ds[1]
    assert first["path"].endswith("aachen/aachen_000000_000019_leftImg8bit.png")
    assert first["color"].dtype == torch.float32 and first["color"].shape == (3, 4, 4)
    assert first["color"][:, 0, 0].tolist() == pytest.approx([9 / 255, 8 / 255, 7 / 255])
    seg = first["segmentation"]
    assert seg.dtype == torch.int64 and seg.shape == (4, 4)
    assert seg[0].tolist() == [0, 13, 255, 18]  # labelIds 7→0, 26→13, 0→255, 33→18
    assert torch.equal(seg, torch.from_numpy(TRAIN_IDS.astype(np.int64)))
    assert second["label_path"].endswith("_gtFine_labelTrainIds.png")
    assert torch.equal(second["segmentation"], torch.from_numpy(TRAIN_IDS.astype(np.int64)))


def test_cityscapes_explicit_label_kind_and_missing(cityscapes):
    with pytest.raises(DatasetError, match=r"bochum_000000_000313_gtFine_labelIds\.png: missing label"):
        CityscapesSegDataset(cityscapes, label_kind="labelIds")
    ds = CityscapesSegDataset(cityscapes, label_kind="labelTrainIds", missing="skip")
    assert len(ds) == 1 and ds[0]["path"].endswith("bochum_000000_000313_leftImg8bit.png")
    assert ds.skipped[0][1].name == "aachen_000000_000019_gtFine_labelTrainIds.png"


def test_cityscapes_resize_keeps_labels_nearest(cityscapes):
    ds = CityscapesSegDataset(cityscapes, height=7, width=11)
    sample = ds[0]
    assert sample["color"].shape == (3, 7, 11)
    seg = sample["segmentation"]
    assert seg.shape == (7, 11)
    assert set(seg.unique().tolist()) == {0, 13, 255, 18, 1, 11, 10}
    small = CityscapesSegDataset(cityscapes, height=3, width=3)[0]["segmentation"]
    assert set(small.unique().tolist()) <= set(TRAIN_IDS.flatten().tolist())


def test_cityscapes_empty_split_and_corrupt_label(cityscapes):
    (cityscapes / "leftImg8bit" / "val").mkdir()
    with pytest.raises(DatasetError, match=r"leftImg8bit/val: no"):
        CityscapesSegDataset(cityscapes, split="val")
    with pytest.raises(DatasetError, match=r"leftImg8bit/test: no"):
        CityscapesSegDataset(cityscapes, split="test")
    label = cityscapes / "gtFine" / "train" / "aachen" / "aachen_000000_000019_gtFine_labelIds.png"
    label.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(DatasetError, match="aachen_000000_000019_gtFine_labelIds.png"):
        CityscapesSegDataset(cityscapes)[0]
