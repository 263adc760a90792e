"""Training fidelity (issue 13): geometry in fp32 under AMP, the reference's loss without automasking, every setting
from the command line, no silent hybrid preset, SGDepth's split JSONs, crash-safe checkpoints. CPU only, no data."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from sgdepth_ros.cli import build_parser
from sgdepth_training import checkpointing as ckpt
from sgdepth_training import geometry, losses
from sgdepth_training.commands.train import config_from_args
from sgdepth_training.config import from_preset, parse_setting
from sgdepth_training.data.errors import DatasetError
from sgdepth_training.data.sgdepth_json import convert_sgdepth_split, main as json_main, read_sgdepth_split_json
from sgdepth_training.data.splits import SplitEntry, read_split_file
from sgdepth_training.step import LossSettings


# ------------------------------------------------------------------------------------- 1. geometry under autocast
def _kitti_camera(w: int = 640, h: int = 192) -> tuple[torch.Tensor, torch.Tensor]:
    K = torch.eye(4)[None].clone()
    K[0, 0, 0], K[0, 1, 1], K[0, 0, 2], K[0, 1, 2] = 0.58 * w, 1.92 * h, w / 2, h / 2
    return K, torch.linalg.inv(K)


def test_zero_motion_warp_is_exact_under_bf16_autocast_on_the_cpu():
    """bf16 has 8 significant bits: pixel x = 600 would come back as 600 ± 4. Geometry runs in fp32 instead."""
    torch.manual_seed(0)
    h, w = 192, 640
    image = torch.rand(1, 3, h, w)
    depth = torch.rand(1, 1, h, w) * 79 + 1
    K, inv_K = _kitti_camera(w, h)
    reference = geometry.sampling_grid(depth, torch.eye(4)[None], K, inv_K)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        grid = geometry.sampling_grid(depth, torch.eye(4)[None], K, inv_K)
        warped = geometry.warp(image, grid)
        error = losses.photometric_error(warped, image)
    assert grid.dtype == warped.dtype == error.dtype == torch.float32
    assert torch.equal(grid, reference)  # bit for bit what it is without AMP
    x = (grid[..., 0] + 1) / 2 * (w - 1)
    assert float((x - torch.arange(w, dtype=torch.float32)).abs().max()) < 1e-3  # sub-millipixel
    assert torch.allclose(warped, image, atol=5e-4) and float(error.max()) < 1e-4


def test_far_points_do_not_overflow_under_fp16_autocast():
    """fp16 tops out at 65 504: u·z of a 1 km point at the right border (≈ 6.4e5) overflowed to inf."""
    K, inv_K = _kitti_camera()
    far = torch.full((1, 1, 192, 640), 1000.0)
    try:
        with torch.autocast("cpu", dtype=torch.float16):
            grid = geometry.sampling_grid(far, torch.eye(4)[None], K, inv_K)
    except RuntimeError as exc:  # an old torch without CPU fp16 autocast
        pytest.skip(f"CPU fp16 autocast unavailable: {exc}")
    assert torch.isfinite(grid).all() and float(grid.abs().max()) <= 1.0 + 1e-5


def test_half_precision_network_outputs_are_promoted_for_the_loss():
    """bf16 inputs (a warp or disparity computed under autocast) give exactly the float32 losses of their values."""
    torch.manual_seed(2)
    target = torch.rand(1, 3, 8, 16)
    warped = [torch.rand(1, 3, 8, 16).bfloat16(), torch.rand(1, 3, 8, 16).bfloat16()]
    disp = torch.rand(1, 1, 4, 8).bfloat16()
    expected_err = losses.min_reprojection(target, [w.float() for w in warped], [target, target])
    expected_smooth = losses.smoothness(disp.float(), target)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        err = losses.min_reprojection(target, warped, [target, target])
        smooth = losses.smoothness(disp, target)
    assert err.dtype == smooth.dtype == torch.float32
    assert torch.equal(err, expected_err) and torch.equal(smooth, expected_smooth)


# --------------------------------------------------------------------- 5. the reference's loss without automasking
def test_without_automasking_the_loss_is_the_average_of_the_two_reprojection_errors():
    """The reference's DepthLosses only takes the per-pixel minimum when automasking is on; off, the two warped
    frames' error maps are averaged (with or without --avg-reprojection)."""
    torch.manual_seed(1)
    target = torch.rand(2, 3, 8, 12)
    prev, nxt = torch.rand(2, 3, 8, 12), torch.rand(2, 3, 8, 12)
    e_prev, e_next = losses.photometric_error(prev, target), losses.photometric_error(nxt, target)
    for average in (False, True):
        err = losses.min_reprojection(target, [prev, nxt], [target, target], automask=False, average=average)
        assert torch.allclose(err, (e_prev + e_next) / 2, atol=1e-7)
    # with a moving-object mask and the scale mean on top (depth_loss): the mean of the masked average
    mask = (torch.rand(2, 1, 8, 12) > 0.3).float()
    disp = [torch.rand(2, 1, 8, 12)]
    loss, parts = losses.depth_loss([losses.min_reprojection(target, [prev, nxt], [], automask=False)], disp,
                                    target, mask, smoothness_weight=0.0)
    assert float(parts["photometric"]) == pytest.approx(float(((e_prev + e_next) / 2 * mask).mean()), rel=1e-6)
    # automasking on: the minimum over identity and reprojection errors (unchanged)
    on = losses.min_reprojection(target, [prev, nxt], [target, target], automask=True)
    assert float(on.abs().max()) < 1e-6  # the identity "sources" equal the target


# --------------------------------------------------------------------------------- 5. every setting from the CLI
def _args(*argv: str):
    return build_parser().parse_args(["train", *argv])


def test_set_overrides_any_setting_typed_and_validated(tmp_path):
    config = config_from_args(_args(
        "--preset", "zhou_full", "--kitti", "/k", "--cityscapes", "/c", "--out", str(tmp_path / "r"),
        "--set", "automask=false", "--set", "avg_reprojection=true", "--set", "grad_scales=0.95,0.05",
        "--set", "smoothness=2e-3", "--set", "min-depth=0.5", "--set", "max_depth=80", "--set", "depth_scales=1",
        "--set", "masking_linear=off", "--set", "masking_fraction=0.2", "--set", "masking_from_epoch=3",
        "--set", "batches_per_epoch=none", "--set", "seg_resize=1280x640"))
    assert (config.automask, config.avg_reprojection, config.grad_scales) == (False, True, (0.95, 0.05))
    assert (config.smoothness, config.min_depth, config.max_depth, config.depth_scales) == (2e-3, 0.5, 80.0, 1)
    assert (config.masking_linear, config.masking_fraction, config.masking_from_epoch) == (False, 0.2, 3)
    assert config.batches_per_epoch is None and config.seg_resize == (1280, 640)
    # what the loop hands to the loss
    assert LossSettings.from_config(config) == LossSettings(False, True, 2e-3, 0.5, 80.0, "full")
    # errors name the key and the valid values/range
    common = ("--preset", "zhou_only_depth", "--kitti", "/k", "--out", str(tmp_path / "r"))
    with pytest.raises(ValueError, match="unknown training setting 'automasking'; valid keys: .*automask"):
        config_from_args(_args(*common, "--set", "automasking=false"))
    with pytest.raises(ValueError, match="grad_scales must be two numbers in \\[0, 1\\]"):
        config_from_args(_args(*common, "--set", "grad_scales=1.5,0"))
    with pytest.raises(ValueError, match="automask is true or false"):
        config_from_args(_args(*common, "--set", "automask=maybe"))
    with pytest.raises(ValueError, match="photometric_resolution must be one of full, native, got 'coarse'"):
        config_from_args(_args(*common, "--set", "photometric_resolution=coarse"))
    native = config_from_args(_args(*common, "--set", "photometric_resolution=native"))
    assert LossSettings.from_config(native).photometric_resolution == "native"
    with pytest.raises(ValueError, match="need 0 < min_depth < max_depth"):
        config_from_args(_args(*common, "--set", "min_depth=200"))
    with pytest.raises(ValueError, match="epochs is given twice"):
        config_from_args(_args(*common, "--epochs", "3", "--set", "epochs=4"))
    with pytest.raises(ValueError, match="--preset"):
        parse_setting("preset=kitti_full")


def test_set_is_refused_on_resume(tmp_path, capsys):
    from sgdepth_training.commands.train import run

    assert run(_args("--resume", str(tmp_path), "--set", "lr=1e-3")) == 2
    assert "keeps its config.json" in capsys.readouterr().out


# --------------------------------------------------------------------------- 4. no silent hybrid "full" preset
@pytest.mark.parametrize("preset", ["zhou_full", "kitti_full", "synthetic_full"])
def test_a_full_preset_without_cityscapes_is_an_error_naming_the_only_depth_preset(preset, tmp_path):
    only = preset.replace("_full", "_only_depth")
    with pytest.raises(ValueError, match=f"needs Cityscapes: give --cityscapes DIR; for depth only use --preset "
                                         f"{only}"):
        config_from_args(_args("--preset", preset, "--kitti", "/k", "--out", str(tmp_path / "r")))
    with pytest.raises(ValueError, match="needs Cityscapes"):
        from_preset(preset, kitti_root="/k")
    assert from_preset(only, kitti_root="/k").depth_only  # the depth-only settings proper
    assert from_preset(preset, kitti_root="/k", seg_batch=0).depth_only  # an explicit choice stays possible


# ------------------------------------------------------------------------------------- 3. SGDepth's split JSONs
DATE = "2011_09_26"
DRIVE = f"{DATE}/{DATE}_drive_0001_sync"


def _sgdepth_json(frames: list[int], drive_length: int, names=("color", "color_right")) -> dict:
    """An IFN_Dataloader split index as split_creator writes it (parallel lists per category; intrinsics numeric)."""
    doc = {"names": [], "types": [], "folders": [], "files": [], "positions": []}
    for name in names:
        camera = "image_03" if name.endswith("right") else "image_02"
        doc["names"].append(name)
        doc["types"].append(".png")
        doc["folders"].append([f"Raw_data/{DRIVE}/{camera}/data"])
        doc["files"].append([f"Raw_data/{DRIVE}/{camera}/data/{f:010d}.png" for f in frames])
        doc["positions"].append([[f, f, drive_length - 1 - f, f] for f in frames])
    doc["names"].append("camera_intrinsics")
    doc["types"].append(".txt")
    doc["folders"].append([f"Raw_data/{DATE}"])
    doc["files"].append([[[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]] for _ in frames])
    doc["positions"].append(doc["positions"][0])
    return doc


@pytest.fixture
def json_split(tmp_path) -> Path:
    src = tmp_path / "kitti_kitti_split"
    src.mkdir()
    (src / "train.json").write_text(json.dumps(_sgdepth_json([0, 1, 2, 3, 4], drive_length=5)))
    (src / "validation.json").write_text(json.dumps(_sgdepth_json([0, 2], drive_length=5, names=("color",))))
    return src


def test_split_json_converter_on_a_generated_index(json_split, tmp_path):
    read = read_sgdepth_split_json(json_split / "train.json", require_neighbours=True)
    assert read.without_neighbours == 4  # frames 0 and 4 on both cameras: no neighbour on one side
    assert read.entries == [SplitEntry(DRIVE, f, s) for s in "lr" for f in (1, 2, 3)]
    dst = tmp_path / "kitti_raw" / "splits" / "kitti"
    summary = convert_sgdepth_split(json_split, dst)
    assert summary == {"train_files.txt": {"frames": 6, "without_neighbours": 4},
                       "val_files.txt": {"frames": 2, "without_neighbours": 0}}
    assert (dst / "train_files.txt").read_text().splitlines()[:2] == [f"{DRIVE} 1 l", f"{DRIVE} 2 l"]
    assert read_split_file(dst / "val_files.txt") == [SplitEntry(DRIVE, 0, "l"), SplitEntry(DRIVE, 2, "l")]
    assert not (dst / "test_files.txt").exists()
    assert convert_sgdepth_split(json_split, dst) == summary  # identical: kept
    (dst / "val_files.txt").write_text(f"{DRIVE} 3 l\n")
    with pytest.raises(DatasetError, match="val_files.txt: exists with other frames"):
        convert_sgdepth_split(json_split, dst)
    assert json_main([str(json_split), str(tmp_path / "other")]) == 0
    assert (tmp_path / "other" / "train_files.txt").is_file()


def test_split_json_errors_name_the_file_and_entry(tmp_path):
    bad = tmp_path / "train.json"
    bad.write_text("{not json")
    with pytest.raises(DatasetError, match="train.json: not a readable JSON file"):
        read_sgdepth_split_json(bad)
    doc = _sgdepth_json([1], 3)
    doc["files"][0][0] = "Raw_data/2011_09_26/oops.png"
    bad.write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match=r"train.json: files\[0\]\[0\] \(color\): .* not a KITTI raw image path"):
        read_sgdepth_split_json(bad)
    bad.write_text(json.dumps({"names": ["depth"], "files": [[]]}))
    with pytest.raises(DatasetError, match="no 'color' or 'color_right'"):
        read_sgdepth_split_json(bad)
    with pytest.raises(DatasetError, match="no train.json"):
        convert_sgdepth_split(tmp_path / "nowhere", tmp_path / "out")


def test_train_split_json_flag_writes_the_kitti_preset_split(json_split, tmp_path, capsys):
    kitti = tmp_path / "kitti_raw"
    config = config_from_args(_args("--preset", "kitti_only_depth", "--kitti", str(kitti), "--split-json",
                                    str(json_split), "--out", str(tmp_path / "run")))
    assert config.split == "kitti" and "train_files.txt: 6 frames (4 without both neighbours" in capsys.readouterr().out
    from sgdepth_training.data.assemble import resolve_split_dir
    assert resolve_split_dir(kitti, "kitti") == kitti / "splits" / "kitti"


# ---------------------------------------------------------------------------------------- 6. crash-safe states
def _tiny_state(path: Path, step: int) -> Path:
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters())
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1)
    return ckpt.save_state(path, model=model, optimizer=optimizer, scheduler=scheduler, scaler=None, masking=None,
                           progress=ckpt.Progress(0, step, step))


def test_states_are_fsynced_then_renamed_and_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "last.pt"
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    _tiny_state(path, 1)
    assert len(synced) >= 2  # the file, then its folder (the rename)
    before = path.read_bytes()

    def dies_half_way(obj, handle, *a, **k):
        handle.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt  # "kill" in the middle of torch.save

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        _tiny_state(path, 2)
    assert path.read_bytes() == before and not list(path.parent.glob("*.tmp"))
    monkeypatch.undo()
    ckpt.copy_state(path, path.with_name("epoch_001.pt"))
    assert ckpt.load_state(path.with_name("epoch_001.pt"))["progress"]["global_step"] == 1


def test_truncated_state_is_named_and_resume_picks_the_newest_valid_one(tmp_path):
    folder = ckpt.checkpoint_dir(tmp_path)
    _tiny_state(folder / "epoch_001.pt", 10)
    _tiny_state(folder / "epoch_002.pt", 20)
    _tiny_state(folder / "last.pt", 25)
    data = (folder / "last.pt").read_bytes()
    (folder / "last.pt").write_bytes(data[: len(data) * 78 // 3460])  # 7.8 MB of 346 MB
    with pytest.raises(ValueError, match=r"last\.pt: not a readable training checkpoint, truncated or corrupt"):
        ckpt.load_state(folder / "last.pt")
    path, state, skipped = ckpt.find_resumable(tmp_path)
    assert path == folder / "epoch_002.pt" and state["progress"]["global_step"] == 20
    assert [p.name for p, _ in skipped] == ["last.pt"] and "truncated" in skipped[0][1]
    # a foreign file of the right name and a dict without the expected keys are refused as well
    torch.save({"version": ckpt.STATE_VERSION, "model": {"w": torch.zeros(1)}}, folder / "epoch_002.pt")
    path, _, skipped = ckpt.find_resumable(tmp_path)
    assert path.name == "epoch_001.pt" and "incomplete training checkpoint (missing optimizer" in skipped[1][1]
    (folder / "epoch_001.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="no valid checkpoint; .*last.pt.*epoch_002.pt.*epoch_001.pt"):
        ckpt.find_resumable(tmp_path)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        ckpt.find_resumable(tmp_path / "empty")
