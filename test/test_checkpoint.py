"""Checkpoint loading: reference model.pth as is, strict errors, no code execution, our format."""
import os
import pickle

import pytest
import torch

from sgdepth_ros.model import (CheckpointError, ModelConfig, SGDepth, infer_config, load_checkpoint,
                               read_metadata, save_checkpoint)


def _outputs(m, x):
    with torch.no_grad():
        o = m(x)
    return o.disparities[0], o.seg_logits


def test_reference_legacy_pth_loads_strictly_with_inferred_config(reference_pth, model):
    loaded = load_checkpoint(reference_pth)
    assert not loaded.training
    assert loaded.config == ModelConfig(18, 1, 4, 18)
    assert loaded.metadata["provenance"]["file"] == "model.pth"
    assert loaded.metadata["input_size"] == {"width": 640, "height": 192}
    x = torch.randn(1, 3, 64, 96)
    for a, b in zip(_outputs(loaded, x), _outputs(model, x)):
        assert torch.equal(a, b)
    p0, p1 = torch.randn(1, 3, 64, 64), torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded.pose(p0, p1), model.pose(p0, p1))


def test_dataparallel_prefix_is_stripped(tmp_path, model):
    path = tmp_path / "dp.pth"
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, path)
    assert load_checkpoint(path).config.num_layers == 18


@pytest.mark.parametrize("kwargs", [dict(num_layers=34, split_pos=0, depth_scales=1, pose_layers=18),
                                    dict(num_layers=50, split_pos=4, depth_scales=2, pose_layers=None),
                                    dict(num_layers=18, split_pos=3, depth_scales=3, pose_layers=34)])
def test_configuration_is_inferred_from_keys(kwargs):
    assert infer_config(SGDepth(**kwargs).state_dict()) == ModelConfig(**kwargs)


def test_missing_unexpected_and_misshaped_keys_are_named(tmp_path, model):
    sd = dict(model.state_dict())
    del sd["seg.multires.convs.0.bias"]
    sd["seg.extra.weight"] = torch.zeros(3)
    sd["depth.decoder.blocks.step_2.conv.bias"] = torch.zeros(7)
    path = tmp_path / "broken.pth"
    torch.save(sd, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    msg = str(err.value)
    assert str(path) in msg
    assert "missing key(s): seg.multires.convs.0.bias" in msg
    assert "unexpected key(s): seg.extra.weight" in msg
    assert "depth.decoder.blocks.step_2.conv.bias (file [7], network [128])" in msg


def test_requested_config_mismatch_is_an_error(reference_pth):
    with pytest.raises(CheckpointError, match="split_pos.: 2"):
        load_checkpoint(reference_pth, config=ModelConfig(18, 2, 4, 18))
    # asking for the pose-less network of a full checkpoint is allowed
    assert load_checkpoint(reference_pth, config=ModelConfig(18, 1, 4, None)).pose is None


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_with_code_payload_is_refused_without_running(tmp_path, model):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    sd = dict(model.state_dict())
    sd["payload"] = _Payload(str(marker))
    with open(path, "wb") as f:
        pickle.dump(sd, f)  # a plain pickle: torch.load would have to execute open() to rebuild it
    with pytest.raises(CheckpointError, match="refused.*nothing was executed"):
        load_checkpoint(path)
    assert not marker.exists()
    path2 = tmp_path / "evil2.pth"
    torch.save(sd, path2)  # the zip format with the same payload
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path2)
    assert not marker.exists()


@pytest.mark.parametrize("content,reason", [(None, "not found"), (b"", "not a readable"),
                                            (b"\x00garbage" * 10, "corrupt|not a readable")])
def test_bad_files_name_the_file(tmp_path, content, reason):
    path = tmp_path / "weights.pth"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=reason) as err:
        load_checkpoint(path)
    assert str(path) in str(err.value)


def test_non_sgdepth_state_dict_is_refused(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, path)
    with pytest.raises(CheckpointError, match="not an SGDepth state_dict"):
        load_checkpoint(path)


def test_safetensors_round_trip_and_metadata(tmp_path, model):
    path = save_checkpoint(model, tmp_path / "m.safetensors",
                           {"scale": {"factor": 5.4, "source": "test"}, "provenance": {"source": "unit test"}})
    loaded = load_checkpoint(path)
    assert loaded.pose is None  # inference-only by default
    assert loaded.metadata["scale"]["factor"] == 5.4
    assert loaded.metadata["architecture"]["pose_layers"] is None
    assert loaded.metadata["class_names"][13] == "car"
    x = torch.randn(1, 3, 64, 64)
    for a, b in zip(_outputs(loaded, x), _outputs(model, x)):
        assert torch.equal(a, b)
    assert read_metadata(path)["provenance"]["source"] == "unit test"
    assert not list(tmp_path.glob("*.tmp"))  # the atomic write left nothing behind


def test_fp16_storage_halves_the_size_and_stays_close(tmp_path, model):
    p32 = save_checkpoint(model, tmp_path / "a.safetensors")
    p16 = save_checkpoint(model, tmp_path / "b.safetensors", dtype=torch.float16)
    assert os.path.getsize(p16) < 0.52 * os.path.getsize(p32)
    x = torch.randn(1, 3, 64, 64)
    d32, s32 = _outputs(load_checkpoint(p32), x)
    d16, s16 = _outputs(load_checkpoint(p16), x)
    assert (d32 - d16).abs().max() < 1e-2
    assert load_checkpoint(p16).common.encoder.encoder.conv1.weight.dtype == torch.float32


def test_safetensors_without_our_metadata_is_refused(tmp_path):
    from safetensors.torch import save_file
    path = tmp_path / "plain.safetensors"
    save_file({"a": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match="without 'sgdepth_ros' metadata"):
        load_checkpoint(path)
