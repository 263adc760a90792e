"""``train --init-weights``: a run starts from a trained network (a released model.pth or our .safetensors)."""
from __future__ import annotations

import pytest
import torch

from sgdepth_ros.model import SGDepth
from sgdepth_ros.model.checkpoint import CheckpointError, save_checkpoint
from sgdepth_training.config import from_preset
from sgdepth_training.network import build_model


def _trained(pose: bool, seed: int = 3, depth_scales: int = 4) -> SGDepth:
    """A network whose every weight differs from a fresh one's (random, not zero)."""
    torch.manual_seed(seed)
    model = SGDepth(18, 1, depth_scales, pose_layers=18 if pose else None)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.05)
    return model


def _same(a: dict, b: dict, keys) -> bool:
    return all(torch.equal(a[k].float(), b[k].float()) for k in keys)


def test_our_inference_file_sets_depth_and_segmentation_and_leaves_pose(tmp_path):
    source = _trained(pose=False)
    path = save_checkpoint(source, tmp_path / "m.safetensors", dtype=torch.float16)
    torch.manual_seed(0)
    fresh, _ = build_model(18, 1, 4, (0.9, 0.1), "scratch")
    torch.manual_seed(0)
    model, note = build_model(18, 1, 4, (0.9, 0.1), "scratch", str(path))
    want, got, before = source.state_dict(), model.state_dict(), fresh.state_dict()
    body = [k for k in want]
    assert body and _same({k: v.half() for k, v in want.items()}, got, body)  # the fp16 file's values, in fp32
    assert all(got[k].dtype == torch.float32 for k in body if want[k].is_floating_point())
    pose_keys = [k for k in got if k.startswith("pose.")]
    assert pose_keys and not any(k.startswith("pose.") for k in want)
    assert "no pose network in the file" in note and "m.safetensors" in note and "sha256" in note
    assert _same(before, got, pose_keys)  # the pose network keeps its own initialisation (same seed, same init)
    assert not _same(before, got, body)


def test_a_reference_state_dict_with_pose_sets_the_pose_network_too(tmp_path):
    source = _trained(pose=True, seed=5)
    path = tmp_path / "model.pth"
    torch.save(source.state_dict(), path)
    model, note = build_model(18, 1, 4, (0.9, 0.1), "scratch", str(path))
    want, got = source.state_dict(), model.state_dict()
    assert set(want) == set(got) and _same(want, got, want)
    assert "pose network too" in note


def test_another_architecture_is_refused_naming_the_file(tmp_path):
    path = save_checkpoint(_trained(pose=False, depth_scales=2), tmp_path / "two_scales.safetensors")
    with pytest.raises(CheckpointError, match="two_scales.safetensors"):
        build_model(18, 1, 4, (0.9, 0.1), "scratch", str(path))


def test_a_missing_file_is_rejected_with_the_setting_named(tmp_path):
    with pytest.raises(ValueError, match=r"init_weights: no such file .*no\.pth"):
        from_preset("synthetic_only_depth", kitti_root=str(tmp_path), init_weights=str(tmp_path / "no.pth"))


def test_the_export_records_what_the_run_started_from(tmp_path):
    from sgdepth_ros.model.checkpoint import file_sha256
    from sgdepth_training.export import _init_weights_record

    path = save_checkpoint(_trained(pose=False), tmp_path / "start.safetensors",
                           metadata={"provenance": {"source": "an earlier run"}})
    record = _init_weights_record(str(path))
    assert record["file"] == "start.safetensors" and record["sha256"] == file_sha256(path)
    assert record["provenance"]["source"] == "an earlier run"
    gone = _init_weights_record(str(tmp_path / "gone.pth"))
    assert gone["sha256"] is None and "no longer present" in gone["note"]
