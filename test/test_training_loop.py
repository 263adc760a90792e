"""The trainer end to end on a tiny synthetic world (CPU): loss goes down, exact resume, export, CLI, DDP on gloo."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from sgdepth_ros.cli import main as cli
from sgdepth_ros.model import SGDepth as SGDepthNet
from sgdepth_ros.model import load_checkpoint
from sgdepth_ros.predictor import Predictor
from sgdepth_training import checkpointing as ckpt
from sgdepth_training.config import TrainConfig, from_preset
from sgdepth_training.data.assemble import build_training_data
from sgdepth_training.export import load_run
from sgdepth_training.network import JointNetwork
from sgdepth_training.step import LossSettings, training_loss

SMALL = ["--width", "128", "--height", "64", "--seg-resize", "256x128", "--num-workers", "0", "--pretrained",
         "scratch", "--no-progress", "--log-every-steps", "1", "--checkpoint-every-steps", "0"]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """3 drives × 8 frames at 256×96 (train / val / test drive), Cityscapes every 2nd frame at 256×128."""
    out = tmp_path_factory.mktemp("train") / "synth"
    assert cli(["synth", "--out", str(out), "--drives", "3", "--frames", "8", "--width", "256", "--height", "96",
                "--cityscapes-size", "256x128", "--cityscapes-every", "2", "--formats", "kitti,cityscapes",
                "--workers", "1"]) == 0
    return out


def _train(world: Path, run: Path, *extra: str) -> int:
    return cli(["train", "--synthetic", str(world), "--out", str(run), *SMALL, *extra])


def _fixed_batch(world: Path):
    config = from_preset("synthetic_only_depth", kitti_root=str(world / "kitti"), width=128, height=64)
    data = build_training_data(config)
    g = torch.Generator().manual_seed(0)
    no_aug = type(data.depth_transform)(flip_p=0.0, jitter_p=0.0)
    return default_collate([no_aug(data.depth[i], g) for i in range(len(data.depth))])


def _photometric(model, batch) -> float:
    with torch.no_grad():
        result = training_loss(JointNetwork(model.train()), batch, None, LossSettings(), None, torch.device("cpu"))
    return float(result.scalars["loss/photometric"])


def test_short_run_lowers_the_photometric_loss(world, tmp_path):
    torch.manual_seed(0)
    run = tmp_path / "run"
    assert _train(world, run, "--preset", "synthetic_only_depth", "--depth-batch", "2", "--epochs", "100",
                  "--max-steps", "1", "--no-validate") == 0
    batch = _fixed_batch(world)
    before = _photometric(load_run(run).model, batch)
    assert cli(["train", "--resume", str(run), "--max-steps", "40", "--no-progress"]) == 0
    after_run = load_run(run)
    assert after_run.progress.global_step == 40
    after = _photometric(after_run.model, batch)
    assert after < 0.85 * before, (before, after)
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == list(range(1, 41))
    assert all(np.isfinite(e["loss/total"]) for e in log)
    assert any((run / "tensorboard").glob("events.out.tfevents.*"))


def test_max_seconds_stops_at_a_step_boundary_with_a_checkpoint_and_resumes(world, tmp_path, capsys):
    """A time budget shorter than any step: the run stops after its first step, saves it, and a resumed call without
    the budget goes on to the end (max_seconds is per invocation, like max_steps)."""
    run = tmp_path / "run"
    assert _train(world, run, "--preset", "synthetic_only_depth", "--depth-batch", "2", "--epochs", "1",
                  "--batches-per-epoch", "3", "--max-seconds", "1e-9", "--no-validate") == 0
    assert "stopped at step 1 (resumable)" in capsys.readouterr().out
    assert ckpt.load_state(run / "checkpoints" / "last.pt")["progress"]["global_step"] == 1
    assert json.loads((run / "config.json").read_text())["max_seconds"] == 1e-9
    assert cli(["train", "--resume", str(run), "--no-progress"]) == 0
    assert "finished" in capsys.readouterr().out and load_run(run).progress.global_step == 3


def test_native_photometric_resolution_changes_only_the_coarse_scales(world):
    """photometric_resolution native: scale 0 is the input size either way, so only scales 1-3 change the
    photometric term; the loss stays finite and back-propagates into the depth decoder."""
    torch.manual_seed(0)
    batch = _fixed_batch(world)
    model = SGDepthNet(pose_layers=18).train()
    results = {}
    for resolution in ("full", "native"):
        model.zero_grad()
        settings = LossSettings(photometric_resolution=resolution)
        result = training_loss(JointNetwork(model), batch, None, settings, None, torch.device("cpu"))
        result.loss.backward()
        grad = model.depth.multires.convs[3].weight.grad  # the coarsest scale's disparity head
        assert torch.isfinite(result.loss) and grad is not None and grad.abs().sum() > 0
        results[resolution] = (float(result.scalars["loss/photometric"]), grad.clone())
    assert results["full"][0] != pytest.approx(results["native"][0], rel=1e-4)
    assert not torch.allclose(results["full"][1], results["native"][1])


def test_resume_after_an_interruption_continues_identically(world, tmp_path):
    args = ["--preset", "synthetic_full", "--depth-batch", "2", "--seg-batch", "2", "--epochs", "3",
            "--masking-from-epoch", "1", "--no-validate", "--seed", "5"]
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    assert _train(world, straight, *args) == 0
    assert _train(world, broken, *args, "--max-steps", "5") == 0  # "crash" mid-epoch 2 (3 steps per epoch)
    state = ckpt.load_state(ckpt.latest_state(broken))
    assert state["progress"] == {"epoch": 1, "step_in_epoch": 2, "global_step": 5}
    assert state["masking"] is not None  # the masking state (threshold, this epoch's IoUs) travels with it
    assert cli(["train", "--resume", str(broken), "--no-progress"]) == 0
    a = ckpt.load_state(straight / "checkpoints" / "last.pt")
    b = ckpt.load_state(broken / "checkpoints" / "last.pt")
    assert a["progress"] == b["progress"] == {"epoch": 3, "step_in_epoch": 0, "global_step": 9}
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert a["optimizer"]["state"][0]["exp_avg"].equal(b["optimizer"]["state"][0]["exp_avg"])
    assert a["masking"] == b["masking"] and a["scheduler"] == b["scheduler"]
    log_a = [json.loads(x) for x in (straight / "log.jsonl").read_text().splitlines()]
    log_b = [json.loads(x) for x in (broken / "log.jsonl").read_text().splitlines()]
    assert [e["loss/total"] for e in log_a] == [e["loss/total"] for e in log_b]  # 1..5 then 6..9 after resume
    assert (straight / "checkpoints" / "epoch_003.pt").is_file()


def test_validation_export_and_the_node_format(world, tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(world, run, "--preset", "synthetic_full", "--depth-batch", "2", "--seg-batch", "2", "--epochs",
                  "1", "--batches-per-epoch", "2", "--val-max-images", "4") == 0
    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    val = [e for e in log if "val/abs_rel" in e]
    assert len(val) == 1 and 0 < val[0]["val/abs_rel"] < 10 and 0 <= val[0]["val/miou"] <= 1
    out = tmp_path / "model.safetensors"
    assert cli(["export", str(run), "-o", str(out), "--fp16", "--scale-split", "val", "--test-split", "test",
                "--seg-val", str(world / "cityscapes")]) == 0
    printed = capsys.readouterr().out
    assert "metric scale factor" in printed
    model = load_checkpoint(out)
    meta = model.metadata
    assert model.pose is None and meta["trained"] and meta["dtype"] == "float16"
    assert meta["input_size"] == {"width": 128, "height": 64}
    assert meta["scale"]["factor"] > 0 and meta["accuracy"]["images"] > 0
    test = meta["accuracy"]["test"]
    assert test["images"] == 6 and set(test) >= {"median_scaled", "fixed_scale"}
    assert 0 < test["fixed_scale"]["all"]["abs_rel"] < 10 and "moving" in test["median_scaled"]
    assert 0 <= meta["accuracy"]["segmentation"]["miou"] <= 1 and meta["accuracy"]["segmentation"]["images"] > 0
    seg = meta["accuracy"]["segmentation"]  # which classes the mIoU averages (the synthetic world has no rider, …)
    assert seg["miou_over"].startswith(f"over {len(seg['miou_classes'])} of 19 classes") and "rider" in seg["miou_over"]
    assert "% over " in printed and "val/miou_classes" in val[0]
    assert meta["provenance"]["global_step"] == 2 and "synthetic_full" in meta["provenance"]["source"]
    predictor = Predictor(out, device="cpu", backend="torch")
    rgb = np.zeros((96, 256, 3), np.uint8)
    pred = predictor.predict(rgb)
    assert pred.is_metric and pred.depth.shape == (64, 128) and pred.labels.max() < 19
    # the exported weights are the run's
    run_state = load_run(run).model.state_dict()
    key = "depth.multires.convs.0.weight"
    assert torch.allclose(model.state_dict()[key], run_state[key].half().float())


def test_resume_skips_a_truncated_checkpoint_and_says_so(world, tmp_path, capsys, caplog):
    """A kill -9 while a checkpoint was written (here: last.pt cut to 7.8 %): resume takes the newest valid one."""
    run = tmp_path / "run"
    args = ["--preset", "synthetic_only_depth", "--depth-batch", "1", "--epochs", "2", "--batches-per-epoch", "2",
            "--checkpoint-every-epochs", "1", "--no-validate"]
    assert _train(world, run, *args, "--max-steps", "3") == 0
    folder = run / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["epoch_001.pt", "last.pt"]  # no stale .tmp
    data = (folder / "last.pt").read_bytes()
    (folder / "last.pt").write_bytes(data[: len(data) * 78 // 1000])
    capsys.readouterr()
    loaded = load_run(run)  # what export reads by default: the newest valid state
    assert loaded.state_path.name == "epoch_001.pt" and loaded.progress.global_step == 2
    assert cli(["export", str(run), "-o", str(tmp_path / "m.safetensors"), "--checkpoint", "last.pt"]) == 1
    assert "last.pt: not a readable training checkpoint, truncated or corrupt" in capsys.readouterr().err
    caplog.clear()
    assert cli(["train", "--resume", str(run), "--no-progress"]) == 0
    logged = caplog.text  # WARNING records: on stderr for a user of the command
    assert f"skipped broken checkpoint {folder / 'last.pt'}" in logged and "truncated" in logged
    assert "epoch_001.pt at epoch 2, step 2" in logged
    assert ckpt.load_state(folder / "last.pt")["progress"]["global_step"] == 4


def test_bad_settings_and_folders_are_named(world, tmp_path, capsys):
    assert _train(world, tmp_path / "r", "--depth-batch", "0") != 0
    assert "depth_batch must be in [1, 1024]" in capsys.readouterr().err
    assert _train(world, tmp_path / "r2", "--width", "100") != 0
    assert "width must be a positive multiple of 32" in capsys.readouterr().err
    assert _train(world, tmp_path / "r4", "--max-seconds", "0") != 0
    assert "max_seconds must be > 0, got 0.0" in capsys.readouterr().err
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "x").write_text("keep")
    assert _train(world, occupied) != 0
    assert "is not empty" in capsys.readouterr().err and (occupied / "x").read_text() == "keep"
    assert cli(["train", "--resume", str(tmp_path / "nothing")]) != 0
    assert cli(["train", "--synthetic", str(tmp_path), "--out", str(tmp_path / "r3")]) != 0
    assert "not a `sgdepth-ros synth` output" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown preset"):
        from_preset("nope", kitti_root="x")


def test_config_round_trip_and_presets():
    config = from_preset("zhou_full", kitti_root="/k", cityscapes_root="/c")
    assert (config.batches_per_epoch, config.depth_batch, config.seg_batch, config.grad_scales) == (7293, 6, 6,
                                                                                                     (0.9, 0.1))
    assert config.sides == "both" and config.masking and config.lr_step == 15 and config.lr == 1e-4
    only = from_preset("zhou_only_depth", kitti_root="/k")
    assert only.depth_batch == 12 and only.grad_scales == (1.0, 0.0) and only.depth_only
    assert from_preset("kitti_full", kitti_root="/k", cityscapes_root="/c").batches_per_epoch == 9645
    assert TrainConfig.from_dict(json.loads(config.to_json())) == config
    with pytest.raises(ValueError, match="unknown training settings"):
        TrainConfig.from_dict({"bogus": 1})


@pytest.mark.skipif(sys.platform != "linux", reason="gloo on loopback")
def test_ddp_two_cpu_processes_on_gloo(world, tmp_path):
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
           str(29500 + os.getpid() % 1000), "-m", "sgdepth_ros.cli", "train", "--synthetic", str(world), "--out",
           str(run), *SMALL, "--preset", "synthetic_full", "--depth-batch", "1", "--seg-batch", "1", "--epochs",
           "1", "--batches-per-epoch", "3", "--no-validate"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "per process × 2" in proc.stderr
    state = ckpt.load_state(run / "checkpoints" / "last.pt")
    assert state["progress"]["global_step"] == 3
    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert len(log) == 3 and all(np.isfinite(e["loss/total"]) for e in log)  # rank 0 logs alone


def test_bench_train_measures_a_real_step():
    from sgdepth_training.commands.bench_train import measure

    speed = measure(128, 64, 1, 1, masking=True, steps=1, device=torch.device("cpu"))
    assert 0 < speed < 1e4


def test_bf16_autocast_step_on_the_cpu(world, tmp_path):
    run = tmp_path / "bf16"
    assert _train(world, run, "--preset", "synthetic_full", "--depth-batch", "1", "--seg-batch", "1", "--epochs",
                  "1", "--max-steps", "2", "--amp", "bf16", "--masking-from-epoch", "0", "--no-validate") == 0
    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert len(log) == 2 and all(np.isfinite(e["loss/total"]) for e in log)
    state = ckpt.load_state(run / "checkpoints" / "last.pt")
    assert all(v.dtype != torch.bfloat16 for v in state["model"].values())  # weights stay fp32 under autocast
    assert _train(world, tmp_path / "fp16", "--amp", "fp16") != 0  # fp16 needs CUDA: named, not a crash


def test_validation_cap_spreads_over_the_whole_split():
    from sgdepth_training.data.assemble import evenly_spaced

    picked = evenly_spaced(list(range(78)), 40)  # the default run's val drive: 78 frames, cap 40
    assert len(picked) == len(set(picked)) == 40 and picked[0] == 0 and picked[-1] >= 76
    assert evenly_spaced(list(range(5)), 40) == list(range(5)) and evenly_spaced("abc", None) == ["a", "b", "c"]


def test_validation_scores_moving_objects_on_the_synthetic_world(world, tmp_path, caplog):
    """On synthetic drives the val pass adds moving-object and static scores with one scale per image (so the
    all-pixel numbers are evaluate_depth's); drives without the synthetic world's folder, or with a damaged actor
    file (with a warning naming it), get the all-pixel numbers only."""
    import shutil

    from sgdepth_training.evaluation.depth_gt import moving_actor_mask
    from sgdepth_training.evaluation.runner import evaluate_depth
    from sgdepth_training.validate import WithMovingMask, _capped, validate

    torch.manual_seed(0)
    model = SGDepthNet(pose_layers=18)
    config = from_preset("synthetic_only_depth", kitti_root=str(world / "kitti"), width=128, height=64,
                         val_max_images=4)
    data = build_training_data(config)
    metrics = validate(model, data, config, torch.device("cpu"))
    plain = evaluate_depth(model, _capped(data.depth_val, 4), protocol="capped", min_depth=config.min_depth,
                           max_depth=config.max_depth, progress=False)
    for key, value in plain.metrics.items():
        assert metrics[f"val/{key}"] == pytest.approx(float(value), rel=1e-6), key
    masks = [WithMovingMask(data.depth_val, data.depth_val.root)[i]["moving_mask"] for i in range(len(data.depth_val))]
    assert sum(int(m.sum()) for m in masks) > 0  # the val drive shows its lead car
    sample = data.depth_val[0]
    expected = moving_actor_mask(data.depth_val.root, sample["folder"], sample["frame"], sample["side"])
    assert masks[0].shape == sample["depth_gt"].shape and np.array_equal(masks[0][0].numpy(), expected)
    assert {"val/moving/abs_rel", "val/moving/a1", "val/static/abs_rel", "val/static/a1", "val/holes"} <= set(metrics)
    assert 0 < metrics["val/moving/abs_rel"] and 0 <= metrics["val/holes"] <= 1 and 0 <= metrics["val/static/a1"] <= 1

    def validate_copy(name: str, ignore=None, damage=None) -> dict:
        root = tmp_path / name
        shutil.copytree(world / "kitti", root, ignore=ignore)
        if damage is not None:
            damage(root)
        copied = from_preset("synthetic_only_depth", kitti_root=str(root), width=128, height=64, val_max_images=4)
        caplog.clear()
        with caplog.at_level("WARNING", logger="sgdepth_training.validate"):
            scores = validate(model, build_training_data(copied), copied, torch.device("cpu"))
        assert not any(k.startswith(("val/moving/", "val/static/", "val/holes")) for k in scores)
        assert scores["val/abs_rel"] == pytest.approx(metrics["val/abs_rel"], rel=1e-6)
        return scores

    # the same drives without the synthetic world's folder (as real KITTI): all-pixel numbers, nothing to warn of
    validate_copy("bare", ignore=lambda folder, names: ["synthetic"] if folder.endswith("_sync") else [])
    assert "without moving-object scores" not in caplog.text
    # actor files damaged: warned (naming the file), not fatal
    validate_copy("no_objects", ignore=lambda folder, names: ["objects.json"])
    assert "without moving-object scores" in caplog.text and "objects.json" in caplog.text
    sample = data.depth_val[0]
    ids_name = f"{sample['frame']:010d}.png"

    def drop_ids(root: Path) -> None:
        next((root / sample["folder"] / "synthetic" / "instance_ids").glob(f"*/{ids_name}")).unlink()

    validate_copy("no_ids", damage=drop_ids)
    assert "without moving-object scores" in caplog.text and "instance_ids" in caplog.text and ids_name in caplog.text


def test_fine_tuning_from_an_inference_file_warms_the_pose_up_first(world, tmp_path):
    """--init-weights with our exported file (no pose network) and a pose warm-up: during the warm-up only pose.*
    changes (the trained depth/segmentation weights stay bit-exact), after it everything trains."""
    from sgdepth_ros.model.checkpoint import save_checkpoint

    torch.manual_seed(4)
    start = SGDepthNet(18, 1, 4)
    start_file = save_checkpoint(start, tmp_path / "start.safetensors")
    run = tmp_path / "warm"
    assert _train(world, run, "--preset", "synthetic_full", "--depth-batch", "1", "--seg-batch", "1", "--epochs",
                  "1", "--batches-per-epoch", "3", "--no-validate", "--init-weights", str(start_file), "--set",
                  "pose_warmup_steps=2", "--max-steps", "1") == 0
    initial = start.state_dict()
    weights = [k for k, v in load_run(run).model.state_dict().items() if v.is_floating_point() and "running_" not in k]
    body = [k for k in weights if not k.startswith("pose.")]
    pose = [k for k in weights if k.startswith("pose.")]
    states = [load_run(run).model.state_dict()]
    for steps in ("2", "3"):
        assert cli(["train", "--resume", str(run), "--max-steps", steps, "--no-progress"]) == 0
        states.append(load_run(run).model.state_dict())
    assert load_run(run).progress.global_step == 3
    for state in states[:2]:  # steps 1 and 2: the warm-up
        assert all(torch.equal(state[k], initial[k]) for k in body)  # weights, not batch-norm statistics
    assert any(not torch.equal(states[0][k], states[1][k]) for k in pose)  # the pose network learns
    assert sum(not torch.equal(states[2][k], initial[k]) for k in body) > len(body) // 2  # step 3: all of it
    config = json.loads((run / "config.json").read_text())
    assert config["pose_warmup_steps"] == 2 and config["init_weights"] == str(start_file)
