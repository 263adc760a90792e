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


def _depths(model: SGDepth, depth_range: tuple[float, float], seed: int = 0) -> list[torch.Tensor]:
    """Each depth head's depth (model units) for one random image."""
    from sgdepth_ros.postprocess import disparity_to_depth

    torch.manual_seed(seed)
    with torch.no_grad():
        disparities = model.eval()(torch.randn(1, 3, 64, 96), tasks=("depth",)).disparities
    return [disparity_to_depth(d, *depth_range) for d in disparities]


def test_a_smaller_min_depth_refits_the_heads_keeping_depth_near_and_lowering_the_floor(tmp_path):
    """A file trained with min_depth 0.1 started with --set min_depth=0.025: the heads move so each pixel's depth
    stays close (the fit's own error, reported in the note), and the sigmoid's end is now 4× nearer."""
    from sgdepth_training.network import refit_depth_heads

    source = _trained(pose=False)
    path = save_checkpoint(source, tmp_path / "m.safetensors")  # its metadata: depth range 0.1–100
    same, note_same = build_model(18, 1, 4, (0.9, 0.1), "scratch", str(path), (0.1, 100.0))
    assert "depth heads refit" not in note_same and _same(source.state_dict(), same.state_dict(), source.state_dict())
    model, note = build_model(18, 1, 4, (0.9, 0.1), "scratch", str(path), (0.025, 100.0))
    assert "depth heads refit from its depth range 0.1–100 to the run's 0.025–100" in note
    heads = [k for k in source.state_dict() if k.startswith("depth.multires.")]
    assert heads and not _same(source.state_dict(), model.state_dict(), heads)
    assert _same(source.state_dict(), model.state_dict(), [k for k in source.state_dict() if k not in heads])
    error = float(note.rsplit("mean |log depth change| ", 1)[1].rstrip(")"))
    # over the fitted depths (old floor … 20× it) the affine refit of the logits stays within ~20 % in depth
    assert 0.0 < error < 0.2
    before, after = _depths(source, (0.1, 100.0)), _depths(model, (0.025, 100.0))
    for b, a in zip(before, after):
        inside = (b > 0.102) & (b < 1.96)
        assert inside.any() and torch.log(a[inside] / b[inside]).abs().mean() < 0.5
    # the floor: a saturated head (sigmoid → 1) meant 0.1 before and means about 0.025 now
    saturated = SGDepth(18, 1, 4, pose_layers=None)
    with torch.no_grad():
        for conv in saturated.depth.multires.convs:
            conv.weight.zero_()
            conv.bias.fill_(30.0)
    assert all(torch.allclose(d, torch.tensor(0.1)) for d in _depths(saturated, (0.1, 100.0)))
    refit_depth_heads(saturated, (0.1, 100.0), (0.025, 100.0))
    assert all((d < 0.03).all() for d in _depths(saturated, (0.025, 100.0)))


def test_the_refit_is_exact_for_the_same_range_and_refuses_ranges_that_do_not_meet():
    from sgdepth_training.network import refit_depth_heads

    model = _trained(pose=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert refit_depth_heads(model, (0.1, 100.0), (0.1, 100.0)) < 1e-9
    assert all(torch.allclose(before[k], v, atol=1e-6) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="do not overlap"):
        refit_depth_heads(model, (0.1, 100.0), (50.0, 1000.0))
