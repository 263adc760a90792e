"""Evaluators (sgdepth_training.evaluation, eval-depth / eval-seg) on tiny generated data, CPU only."""
from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from sgdepth_ros.cli import main
from sgdepth_ros.model import SGDepth, SGDepthOutput, save_checkpoint
from sgdepth_training.data.errors import DatasetError
from sgdepth_training.data.kitti import image_path
from sgdepth_training.data.splits import SplitEntry, write_split_file
from sgdepth_training.evaluation.depth_gt import Kitti2015DepthDataset, KittiEvalDataset, NpzDepthGT
from sgdepth_ros.metrics.depth import (compute_errors, disp_to_depth, evaluation_mask, garg_crop,
                                                       image_metrics, ratio_summary)
from sgdepth_training.evaluation.report import format_depth_table, format_ratios, format_seg_table
from sgdepth_training.evaluation.runner import evaluate_depth, evaluate_segmentation
from sgdepth_ros.metrics.segmentation import SegConfusion, seg_scores
from sgdepth_training.evaluation.velodyne import project_to_depth_map, velodyne_depth_map

ONES = {"a1": 1.0, "a2": 1.0, "a3": 1.0}
ZEROS = {"abs_rel": 0.0, "sq_rel": 0.0, "rmse": 0.0, "rmse_log": 0.0}
DATE = "2011_09_26"
DRIVE = f"{DATE}/{DATE}_drive_0001_sync"
W0, H0 = 80, 40  # native size of the fake KITTI frames (the network runs at 128x64, the smallest it allows)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny convolutions: one thread is as fast, and does not collapse when other jobs share the 2 cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- depth metrics ----------------------------------------------------------------------------------------------------
def test_oracle_prediction_gives_perfect_metrics_exactly():
    gt = np.random.default_rng(0).uniform(1, 70, (6, 9)).astype(np.float32)
    metrics, ratio = image_metrics(gt, gt.copy(), np.ones_like(gt, bool))
    assert ratio == 1.0 and metrics == {**ZEROS, **ONES}
    metrics, ratio = image_metrics(gt, gt * 2, np.ones_like(gt, bool))  # median scaling undoes a factor of 2 exactly
    assert ratio == 0.5 and metrics == {**ZEROS, **ONES}
    assert compute_errors(gt.ravel(), gt.ravel()) == {**ZEROS, **ONES}


def test_hand_made_metrics_with_median_scaling_and_clamping():
    gt = np.array([[2.0, 4.0, 0.0], [5.0, 10.0, 0.0]])
    pred = np.array([[1.0, 2.0, 7.0], [2.0, 8.0, 0.5]])  # model units; third column has no ground truth
    mask = evaluation_mask(gt, "kitti")
    assert mask.tolist() == [[True, True, False], [True, True, False]]
    metrics, ratio = image_metrics(gt, pred, mask, max_depth=15.0)
    # median(gt) = 4.5, median(pred) = 2 → ×2.25 → [2.25, 4.5, 4.5, 18 → clamped 15]
    assert ratio == 2.25
    g, p = np.array([2.0, 4.0, 5.0, 10.0]), np.array([2.25, 4.5, 4.5, 15.0])
    assert metrics["abs_rel"] == pytest.approx((0.25 / 2 + 0.5 / 4 + 0.5 / 5 + 5 / 10) / 4)
    assert metrics["sq_rel"] == pytest.approx((0.0625 / 2 + 0.25 / 4 + 0.25 / 5 + 25 / 10) / 4)
    assert metrics["rmse"] == pytest.approx(math.sqrt((0.0625 + 0.25 + 0.25 + 25) / 4))
    assert metrics["rmse_log"] == pytest.approx(math.sqrt(sum(math.log(a / b) ** 2 for a, b in zip(g, p)) / 4))
    assert (metrics["a1"], metrics["a2"], metrics["a3"]) == (0.75, 1.0, 1.0)  # 15/10 = 1.5: fails δ<1.25 only
    # a fixed factor instead of the median, with the lower clamp at 1e-3
    metrics, ratio = image_metrics(np.array([[50.0, 70.0]]), np.array([[10.0, 1e-5]]), np.ones((1, 2), bool),
                                   scale=10.0)
    assert ratio == 10.0
    assert metrics["abs_rel"] == pytest.approx((30 / 50 + (70 - 1e-3) / 70) / 2)  # 100 → 80, 1e-4 → 1e-3


def test_garg_crop_and_eigen_vs_kitti_masks():
    assert garg_crop(375, 1242) == (153, 371, 44, 1197)
    assert garg_crop(100, 200) == (40, 99, 7, 192)
    gt = np.full((100, 200), 10.0)
    gt[50, 100] = 90.0  # beyond 80 m: only the KITTI protocol keeps it
    gt[60, 100] = 0.0
    eigen, kitti = evaluation_mask(gt, "eigen"), evaluation_mask(gt, "kitti")
    assert kitti.sum() == 100 * 200 - 1 and kitti[50, 100] and not kitti[60, 100]
    assert eigen.sum() == (99 - 40) * (192 - 7) - 2 and not eigen[50, 100]
    assert not eigen[39, 100] and eigen[40, 100] and eigen[98, 7] and not eigen[99, 7] and not eigen[50, 192]
    with pytest.raises(ValueError, match="protocol"):
        evaluation_mask(gt, "garg")


def test_disp_to_depth_range_and_report_formats():
    assert disp_to_depth(np.array([0.0, 1.0])).tolist() == pytest.approx([100.0, 0.1])
    assert disp_to_depth(torch.tensor([1.0]), 0.5, 10.0).item() == pytest.approx(0.5)
    summary = ratio_summary([1.0, 2.0, 3.0])
    assert summary["median"] == 2.0 and summary["std"] == pytest.approx(np.std([0.5, 1, 1.5]))
    assert format_ratios(summary) == " Scaling ratios | med: 2.000 | std: 0.408"
    table = format_depth_table({**ZEROS, **ONES, "abs_rel": 0.113})
    assert table.splitlines()[0].split() == "abs_rel | sq_rel | rmse | rmse_log | a1 | a2 | a3 |".split()
    assert table.splitlines()[1].startswith("&   0.113  &   0.000") and table.endswith("1.000  \\\\")


# -- velodyne ---------------------------------------------------------------------------------------------------------
P_TEST = np.array([[10.0, 0, 4, 0], [0, 10, 3, 0], [0, 0, 1, 0]])


def test_velodyne_projection_round_minus_one_nearest_wins_and_behind_dropped():
    points = np.array([
        [0.0, 0.0, 5.0, 0.3],      # u=4, v=3 → pixel (3, 2), depth 5
        [0.0, 0.0, 2.5, 0.3],      # same pixel, nearer: wins
        [0.0, 0.0, 8.0, 0.3],      # same pixel, farther
        [-0.02, 0.0, 1.0, 0.3],    # x < 0: dropped although it would be nearest at (3, 2)
        [0.5, 0.2, 2.0, 0.3],      # u=6.5 → round half to even 6 → 5; v=4 → 3
        [0.0, -1.26, 5.0, 0.3],    # v=0.48 → round 0 → −1: outside
        [0.0, -1.24, 5.0, 0.3],    # v=0.52 → round 1 → 0: row 0
        [0.4, 0.0, 1.0, 0.3],      # u=8 → 7: last column
        [0.5, 0.0, 1.0, 0.3],      # u=9 → 8: outside (width 8)
    ])
    depth = project_to_depth_map(points, P_TEST, (8, 6))
    assert depth.shape == (6, 8) and depth.dtype == np.float32
    expected = np.zeros((6, 8), np.float32)
    expected[2, 3], expected[3, 5], expected[0, 3], expected[2, 7] = 2.5, 2.0, 5.0, 1.0
    np.testing.assert_array_equal(depth, expected)
    # vel_depth: the value is the velodyne x (with this identity calibration, the horizontal coordinate)
    vel = project_to_depth_map(points, P_TEST, (8, 6), vel_depth=True)
    assert vel[3, 5] == 0.5 and vel[2, 7] == pytest.approx(0.4) and vel[2, 3] == 0.0


def write_velodyne_tree(root: Path, points: np.ndarray, frame: int = 0) -> None:
    """calib_velo_to_cam with the usual axis swap (x fwd → z) and a 0.27 m offset; identity rectification."""
    date = root / DATE
    date.mkdir(parents=True, exist_ok=True)
    (date / "calib_velo_to_cam.txt").write_text(
        "calib_time: 15-Mar-2012 11:37:16\nR: 0 -1 0 0 0 -1 1 0 0\nT: 0 0 -0.27\ndelta_f: 0 0\n")
    (date / "calib_cam_to_cam.txt").write_text(
        f"calib_time: 09-Jan-2012 13:57:47\nR_rect_00: 1 0 0 0 1 0 0 0 1\nS_rect_02: {W0} {H0}\n"
        f"P_rect_02: 40 0 40 0 0 40 20 0 0 0 1 0\nS_rect_03: {W0} {H0}\nP_rect_03: 40 0 40 -21.6 0 40 20 0 0 0 1 0\n")
    scan = root / DRIVE / "velodyne_points" / "data" / f"{frame:010d}.bin"
    scan.parent.mkdir(parents=True, exist_ok=True)
    points.astype("<f4").tofile(scan)


def test_velodyne_files_camera_z_vs_velodyne_x(tmp_path):
    # velodyne (x fwd, y left, z up) = (10.27, 0, 0) → camera (0, 0, 10) → pixel (40-1, 20-1)
    write_velodyne_tree(tmp_path, np.array([[10.27, 0.0, 0.0, 1.0], [-5.0, 0.0, 0.0, 1.0]]))
    cam_z = velodyne_depth_map(tmp_path, DRIVE, 0)
    assert cam_z.shape == (H0, W0) and np.count_nonzero(cam_z) == 1
    assert cam_z[19, 39] == pytest.approx(10.0)
    assert velodyne_depth_map(tmp_path, DRIVE, 0, vel_depth=True)[19, 39] == pytest.approx(10.27)
    (tmp_path / DRIVE / "velodyne_points" / "data" / "0000000001.bin").write_bytes(b"\0" * 20)
    with pytest.raises(DatasetError, match=r"0000000001\.bin: 20 bytes"):
        velodyne_depth_map(tmp_path, DRIVE, 1)
    with pytest.raises(DatasetError, match=r"0000000002\.bin: velodyne scan does not exist"):
        velodyne_depth_map(tmp_path, DRIVE, 2)


# -- npz ground truth -------------------------------------------------------------------------------------------------
def test_npz_layouts_and_object_arrays_are_refused(tmp_path):
    maps = np.random.default_rng(1).uniform(0, 50, (2, 4, 5)).astype(np.float32)
    np.savez(tmp_path / "cube.npz", data=maps)
    np.savez(tmp_path / "keys.npz", gt_0001=maps[1], gt_0000=maps[0].astype(np.float64))
    np.savez(tmp_path / "plain.npz", maps)  # stored as arr_0
    for name in ("cube.npz", "keys.npz", "plain.npz"):
        gt = NpzDepthGT(tmp_path / name)
        assert len(gt) == 2 and gt[1].dtype == np.float32
        np.testing.assert_array_equal(gt[0], maps[0])
        np.testing.assert_array_equal(gt[1], maps[1])
    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = maps[0], maps[1, :3]
    np.savez(tmp_path / "gt_depths.npz", data=ragged)  # monodepth2's layout (pickled object array)
    with pytest.raises(DatasetError, match=r"gt_depths\.npz: 'data' is a pickled object array.*execute code.*gt_"):
        NpzDepthGT(tmp_path / "gt_depths.npz")
    np.savez(tmp_path / "odd.npz", gt_0000=maps[0], gt_0002=maps[1])
    with pytest.raises(DatasetError, match="consecutive"):
        NpzDepthGT(tmp_path / "odd.npz")
    with pytest.raises(DatasetError, match=r"missing\.npz: ground-truth npz does not exist"):
        NpzDepthGT(tmp_path / "missing.npz")


# -- segmentation metrics ---------------------------------------------------------------------------------------------
def test_segmentation_oracle_two_class_case_ignore_void_and_nan():
    rng = np.random.default_rng(2)
    gt = rng.integers(0, 19, (10, 12))
    gt[0] = 255
    pred = np.where(gt == 255, 3, gt)
    conf = SegConfusion()
    conf.update(gt, pred)
    s = seg_scores(conf)
    assert s["miou"] == 1.0 and s["pixel_acc"] == 1.0 and s["mean_acc"] == 1.0 and s["pixels"] == 10 * 12 - 12

    conf = SegConfusion()
    conf.update(np.array([0, 0, 0, 1, 1, 255]), np.array([0, 0, 1, 1, 19, 5]))
    s = seg_scores(conf)
    assert conf.matrix[0, 0] == 2 and conf.matrix[0, 1] == 1 and conf.matrix[1, 1] == 1 and conf.void[1] == 1
    assert s["iou"][0] == pytest.approx(2 / 3)   # TP 2 / (3 gt + 2 pred − 2)
    assert s["iou"][1] == pytest.approx(1 / 3)   # TP 1 / (2 gt incl. the void pixel + 2 pred − 1)
    assert all(math.isnan(v) for v in s["iou"][2:])  # class 5 was predicted only on an ignored pixel
    assert s["miou"] == pytest.approx(0.5) and s["pixel_acc"] == pytest.approx(3 / 5)
    assert s["mean_acc"] == pytest.approx((2 / 3 + 1 / 2) / 2) and s["void_pixels"] == 1
    table = format_seg_table(s)
    assert "road" in table and "sidewalk" in table and "n/a" in table and "50.00" in table
    with pytest.raises(ValueError, match="0..19"):
        conf.update(np.array([0]), np.array([20]))


# -- runners ----------------------------------------------------------------------------------------------------------
class OracleDepth(nn.Module):
    """Returns, batch after batch, the disparities that reproduce given ground-truth depths (same size)."""

    def __init__(self, depths: list[np.ndarray], min_depth=0.1, max_depth=100.0):
        super().__init__()
        self.disps = [(1 / np.where(d > 0, d, 50.0) - 1 / max_depth) / (1 / min_depth - 1 / max_depth)
                      for d in depths]
        self.calls = 0

    def forward(self, x, tasks=("depth",), all_scales=True):
        assert tasks == ("depth",) and not all_scales and not torch.is_grad_enabled() and not self.training
        n = x.shape[0]
        disp = np.stack(self.disps[self.calls:self.calls + n])[:, None]
        self.calls += n
        return SGDepthOutput((torch.from_numpy(disp).float(),), None)


def fake_depth_samples(n=3, h=32, w=64, seed=3):
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n):
        depth = rng.uniform(2, 60, (h, w)).astype(np.float32)
        depth[rng.random((h, w)) < 0.3] = 0
        samples.append({("color", 0): torch.rand(3, h, w), "depth_gt": torch.from_numpy(depth)[None],
                        "name": f"img{i}"})
    return samples


def test_depth_runner_oracle_batches_and_restores_train_mode():
    samples = fake_depth_samples()
    model = OracleDepth([s["depth_gt"][0].numpy() for s in samples]).train()
    seen = []
    result = evaluate_depth(model, samples, protocol="kitti", batch_size=2, progress=False,
                            on_image=lambda i, c, d, g: seen.append(i))
    assert model.training and result.count == 3 and seen == [0, 1, 2]
    for name in ZEROS:
        assert result.metrics[name] < 1e-5
    assert all(result.metrics[k] == 1.0 for k in ONES)
    assert result.ratio_summary["median"] == pytest.approx(1.0, abs=1e-6)
    assert [p["name"] for p in result.per_image] == ["img0", "img1", "img2"]


def test_depth_runner_region_masks():
    samples = fake_depth_samples(n=1)
    gt = samples[0]["depth_gt"][0].numpy()
    moving = np.zeros_like(gt, bool)
    moving[:, :20] = True
    wrong = np.where(moving, gt, 3 * gt + 1)  # exact on moving pixels only
    samples[0]["moving_mask"] = torch.from_numpy(moving)[None]
    ok = evaluate_depth(OracleDepth([wrong]), samples, protocol="kitti", region="moving", progress=False)
    bad = evaluate_depth(OracleDepth([wrong]), samples, protocol="kitti", region="static", progress=False)
    assert ok.metrics["abs_rel"] < 1e-5 and bad.metrics["abs_rel"] > 0.01


class FixedLogits(nn.Module):
    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = logits

    def forward(self, x, tasks=("segmentation",), all_scales=True):
        assert tasks == ("segmentation",)
        return SGDepthOutput(None, self.logits.expand(x.shape[0], -1, -1, -1))


def test_segmentation_runner_nearest_upsampling_matches_logit_upsampling():
    logits = torch.randn(1, 20, 4, 8)
    logits[0, 19] = -100.0
    logits[0, 19, 0, 0] = 100.0  # one void prediction, upsampled to a 4x4 block
    labels = torch.randint(0, 19, (16, 32))
    labels[0, 5] = 255
    samples = [{"color": torch.rand(3, 32, 64), "segmentation": labels} for _ in range(2)]
    result = evaluate_segmentation(FixedLogits(logits), samples, batch_size=2, progress=False)
    expected = torch.nn.functional.interpolate(logits, size=(16, 32), mode="nearest").argmax(1)[0]
    conf = SegConfusion()
    for _ in range(2):
        conf.update(labels.numpy(), expected.numpy())
    assert result.count == 2 and np.array_equal(result.confusion.matrix, conf.matrix)
    assert np.array_equal(result.confusion.void, conf.void) and conf.void.sum() == 2 * 16
    assert result.scores["pixels"] == 2 * (16 * 32 - 1)


# -- commands end to end ----------------------------------------------------------------------------------------------
def write_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "model.safetensors"
    save_checkpoint(SGDepth(pose_layers=None).eval(), path, {"provenance": {"source": "test_evaluation"}})
    return path


@pytest.fixture
def kitti(tmp_path) -> Path:
    """One drive, frames 0 and 1 (left camera) of 80x40 noise, depth PNGs, velodyne scans, objects, split file."""
    root = tmp_path / "kitti"
    rng = np.random.default_rng(4)
    write_velodyne_tree(root, np.array([[10.27, 0.0, 0.0, 1.0], [20.27, 1.0, 0.5, 1.0]]), frame=0)
    write_velodyne_tree(root, np.array([[15.27, 0.0, 0.0, 1.0]]), frame=1)
    for frame in (0, 1):
        write_png(image_path(root, DRIVE, frame, "l", "png"), rng.integers(0, 255, (H0, W0, 3), dtype=np.uint8))
        depth = (rng.uniform(2, 60, (H0, W0)) * 256).astype(np.uint16)
        write_png(root / DRIVE / "proj_depth" / "groundtruth" / "image_02" / f"{frame:010d}.png", depth)
        ids = np.zeros((H0, W0), np.uint16)
        ids[20:30, 10:30], ids[20:30, 50:60] = 7, 9
        write_png(root / DRIVE / "synthetic" / "instance_ids" / "image_02" / f"{frame:010d}.png", ids)
    (root / DRIVE / "synthetic" / "objects.json").write_text(json.dumps(
        {"objects": [{"id": 7, "moving": True}, {"id": 9, "moving": False}]}))
    write_split_file(root / "test_files.txt", [SplitEntry(DRIVE, 0, "l"), SplitEntry(DRIVE, 1, "l")])
    return root


def eval_args(checkpoint, kitti, *extra):
    return ["eval-depth", "--model", str(checkpoint), "--data", str(kitti), "--split-file",
            str(kitti / "test_files.txt"), "--width", "128", "--height", "64", "--device", "cpu", "--no-progress",
            *extra]


@pytest.mark.parametrize("gt", ["png", "velodyne", "npz"])
def test_eval_depth_command_end_to_end(checkpoint, kitti, tmp_path, capsys, gt):
    extra = ["--gt", gt]
    if gt == "npz":
        np.savez(tmp_path / "gt.npz", data=np.random.default_rng(5).uniform(1, 50, (2, H0, W0)).astype(np.float32))
        extra += ["--gt-file", str(tmp_path / "gt.npz")]
    out = tmp_path / "res" / "depth.json"
    assert main(eval_args(checkpoint, kitti, *extra, "--json", str(out), "--images", "1")) == 0
    text = capsys.readouterr().out
    assert "Scaling ratios | med:" in text and "abs_rel |   sq_rel |" in text
    doc = json.loads(out.read_text())
    assert doc["count"] == 2 and all(math.isfinite(v) for v in doc["metrics"].values())
    assert 0 <= doc["metrics"]["a1"] <= doc["metrics"]["a2"] <= doc["metrics"]["a3"] <= 1
    assert doc["settings"]["gt"] == gt and doc["checkpoint"]["provenance"] == {"source": "test_evaluation"}
    assert doc["scaling_ratios"]["count"] == 2 and len(doc["per_image"]) == 2
    assert (out.parent / "eval_images" / "img_000.png").is_file()
    assert not (out.parent / "eval_images" / "img_001.png").exists()


def test_eval_depth_reads_the_reference_model_pth(reference_pth, kitti, tmp_path):
    out = tmp_path / "ref.json"
    assert main(eval_args(reference_pth, kitti, "--json", str(out))) == 0
    doc = json.loads(out.read_text())
    assert doc["count"] == 2 and doc["checkpoint"]["provenance"]["source"] == "SGDepth reference checkpoint"
    assert doc["settings"]["min_depth"] == 0.1 and doc["settings"]["max_depth"] == 100.0


def test_eval_depth_region_and_fixed_scale(checkpoint, kitti, tmp_path, capsys):
    out = tmp_path / "moving.json"
    args = eval_args(checkpoint, kitti, "--gt", "png", "--protocol", "kitti", "--region", "moving", "--scale", "2.5",
                     "--json", str(out))
    assert main(args) == 0
    doc = json.loads(out.read_text())
    assert doc["settings"]["region"] == "moving" and doc["settings"]["scaling"] == "fixed"
    assert doc["scaling_ratios"]["median"] == 2.5 and "Fixed scaling factor: 2.5" in capsys.readouterr().out


def test_eval_depth_bad_arguments_and_missing_files(checkpoint, kitti, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(eval_args(checkpoint, kitti, "--width", "100"))
    assert exc.value.code == 2 and "--width" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(eval_args(checkpoint, kitti, "--scale", "-3"))
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "--scale" in err and "'median', 'checkpoint' or a positive factor" in err
    assert main(eval_args(checkpoint, kitti, "--gt", "npz")) == 2
    assert "--gt npz needs --gt-file" in capsys.readouterr().err
    assert main(eval_args(checkpoint, kitti, "--scale", "checkpoint")) == 1
    assert "no metric scale factor" in capsys.readouterr().err
    missing = kitti / DRIVE / "proj_depth" / "groundtruth" / "image_02" / "0000000001.png"
    missing.unlink()
    assert main(eval_args(checkpoint, kitti, "--gt", "png")) == 1
    assert str(missing) in capsys.readouterr().err
    (kitti / DRIVE / "velodyne_points" / "data" / "0000000001.bin").unlink()
    assert main(eval_args(checkpoint, kitti)) == 1  # the default ground truth: velodyne
    err = capsys.readouterr().err
    assert "0000000001.bin does not exist" in err and "--missing skip" in err


def test_eval_depth_kitti2015(checkpoint, tmp_path, capsys):
    root = tmp_path / "kitti_2015"
    rng = np.random.default_rng(6)
    for i in range(2):
        write_png(root / "training" / "image_2" / f"{i:06d}_10.png", rng.integers(0, 255, (H0, W0, 3), np.uint8))
        disp = np.zeros((H0, W0), np.uint16)
        disp[5:35] = (rng.uniform(5, 40, (30, W0)) * 256).astype(np.uint16)
        write_png(root / "training" / "disp_occ_0" / f"{i:06d}_10.png", disp)
        (root / "training" / "calib_cam_to_cam").mkdir(parents=True, exist_ok=True)
        (root / "training" / "calib_cam_to_cam" / f"{i:06d}.txt").write_text(
            "P_rect_02: 720 0 40 0 0 730 20 0 0 0 1 0\n")
    sample = Kitti2015DepthDataset(root, height=32, width=64)[0]
    d = sample["depth_gt"][0].numpy()
    disp0 = cv2.imread(str(root / "training" / "disp_occ_0" / "000000_10.png"), cv2.IMREAD_UNCHANGED) / 256
    assert d[0].max() == 0 and d[10, 3] == pytest.approx(0.54 * 725 / disp0[10, 3], rel=1e-6)
    out = tmp_path / "k15.json"
    args = ["eval-depth", "--model", str(checkpoint), "--data", str(root), "--dataset", "kitti2015", "--width", "128",
            "--height", "64", "--device", "cpu", "--no-progress", "--json", str(out)]
    assert main(args) == 0
    doc = json.loads(out.read_text())
    assert doc["count"] == 2 and doc["settings"]["protocol"] == "kitti"
    (root / "training" / "calib_cam_to_cam" / "000001.txt").unlink()
    assert main(args) == 1
    assert "000001.txt: missing KITTI 2015 calibration" in capsys.readouterr().err


def test_kitti_eval_dataset_npz_count_mismatch(kitti, tmp_path):
    np.savez(tmp_path / "gt.npz", data=np.ones((3, H0, W0), np.float32))
    with pytest.raises(DatasetError, match=r"gt\.npz: holds 3 depth maps but the split has 2 frames"):
        KittiEvalDataset(kitti, kitti / "test_files.txt", height=32, width=64, gt="npz", gt_file=tmp_path / "gt.npz")


def test_eval_seg_command_labels_at_native_size(checkpoint, tmp_path, capsys):
    root = tmp_path / "cityscapes"
    rng = np.random.default_rng(7)
    for name in ("aachen_000000_000019", "aachen_000001_000019"):
        write_png(root / "leftImg8bit" / "val" / "aachen" / f"{name}_leftImg8bit.png",
                  rng.integers(0, 255, (128, 256, 3), np.uint8))
        labels = np.full((128, 256), 7, np.uint8)  # road
        labels[:40], labels[120:] = 23, 0          # sky, unlabeled (ignored)
        write_png(root / "gtFine" / "val" / "aachen" / f"{name}_gtFine_labelIds.png", labels)
    out = tmp_path / "seg.json"
    args = ["eval-seg", "--model", str(checkpoint), "--data", str(root), "--width", "128", "--height", "64",
            "--device", "cpu", "--no-progress", "--json", str(out)]
    assert main(args) == 0
    assert "mIoU" in capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert doc["count"] == 2 and doc["pixels"] == 2 * 120 * 256  # native 256x128 labels minus 8 ignored rows
    assert np.array(doc["confusion"]).sum() + sum(doc["void_per_class"]) == doc["pixels"]
    assert doc["iou"]["sidewalk"] is None or doc["iou"]["sidewalk"] == 0.0
    with pytest.raises(SystemExit) as exc:
        main(args[:-2] + ["--height", "50"])
    assert exc.value.code == 2
    assert main(["eval-seg", "--model", str(checkpoint), "--data", str(tmp_path / "nowhere"), "--device", "cpu"]) == 2


def test_capped_protocol_is_the_depth_range_without_the_crop():
    gt = np.zeros((10, 20))
    gt[0, 0], gt[5, 5], gt[9, 19], gt[4, 4] = 5.0, 79.0, 120.0, 1e-4
    mask = evaluation_mask(gt, "capped")
    assert mask.sum() == 2 and mask[0, 0] and mask[5, 5]  # row 0 is outside the Garg crop, 120 m above the cap
    assert not evaluation_mask(gt, "eigen")[0, 0]


# -- ground-truth default and --missing (issue 13) --------------------------------------------------------------------
def test_eval_depth_defaults_to_velodyne_ground_truth(checkpoint, kitti, tmp_path, capsys):
    """The Eigen protocol's ground truth is the raw velodyne (camera z), as SGDepth's 0.113: the default, not the
    annotated depth-completion PNGs. Without the PNGs the default still runs."""
    for frame in (0, 1):
        (kitti / DRIVE / "proj_depth" / "groundtruth" / "image_02" / f"{frame:010d}.png").unlink()
    out = tmp_path / "eigen.json"
    assert main(eval_args(checkpoint, kitti, "--json", str(out))) == 0
    assert "gt velodyne" in capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert doc["settings"]["gt"] == "velodyne" and doc["count"] == 2 and doc["missing_files"] == []
    gt = KittiEvalDataset(kitti, kitti / "test_files.txt", height=64, width=128, gt="velodyne").depth_for(0)
    assert np.count_nonzero(gt) == 2  # the two scan points, not a dense PNG


def test_eval_depth_png_missing_skip_counts_the_frame(checkpoint, kitti, tmp_path, capsys):
    missing = kitti / DRIVE / "proj_depth" / "groundtruth" / "image_02" / "0000000000.png"
    missing.unlink()
    assert main(eval_args(checkpoint, kitti, "--gt", "png")) == 1  # the first frame: named, not a traceback
    err = capsys.readouterr().err
    assert str(missing) in err and "--missing skip" in err
    out = tmp_path / "skip.json"
    assert main(eval_args(checkpoint, kitti, "--gt", "png", "--missing", "skip", "--json", str(out))) == 0
    assert "1 listed frames skipped for missing files" in capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert doc["count"] == 1 and [p["name"] for p in doc["per_image"]] == [f"{DRIVE} 1 l"]
    assert doc["missing_files"][0]["name"] == f"{DRIVE} 0 l" and str(missing) in doc["missing_files"][0]["missing"]
    # every frame missing: a clear error, not an empty table
    (kitti / DRIVE / "proj_depth" / "groundtruth" / "image_02" / "0000000001.png").unlink()
    assert main(eval_args(checkpoint, kitti, "--gt", "png", "--missing", "skip")) == 1
    assert "none of its 2 frames has all its files" in capsys.readouterr().err


def test_kitti_eval_dataset_skip_keeps_the_npz_pairing(kitti, tmp_path):
    """A skipped frame (missing image) must not shift the npz maps: map i belongs to split line i."""
    maps = np.stack([np.full((H0, W0), 10.0 * (i + 1), np.float32) for i in range(2)])
    np.savez(tmp_path / "gt.npz", data=maps)
    image_path(kitti, DRIVE, 0, "l", "png").unlink()
    with pytest.raises(DatasetError, match="0000000000.png"):
        KittiEvalDataset(kitti, kitti / "test_files.txt", height=64, width=128, gt="npz", gt_file=tmp_path / "gt.npz")
    ds = KittiEvalDataset(kitti, kitti / "test_files.txt", height=64, width=128, gt="npz",
                          gt_file=tmp_path / "gt.npz", missing="skip")
    assert len(ds) == 1 and ds.skipped[0][0] == f"{DRIVE} 0 l"
    assert ds[0]["name"] == f"{DRIVE} 1 l" and float(ds[0]["depth_gt"].max()) == 20.0


def test_seg_table_says_over_which_classes_the_miou_averages():
    confusion = SegConfusion()
    gt = np.array([[0, 0, 13, 13]])
    confusion.update(gt, np.array([[0, 13, 13, 13]]))
    scores = seg_scores(confusion)
    table = format_seg_table(scores)
    assert "over 2 of 19 classes (absent from ground truth and prediction: sidewalk," in table
    from sgdepth_training.evaluation.report import miou_classes
    assert miou_classes(scores)[0] == ["road", "car"]
