"""Checkpoint metadata is validated once, at load: a bad field refuses the file with one line naming it and the
field, before any memory is spent on it (through the CLI: exit 1, no traceback)."""
from __future__ import annotations

import json

import cv2
import pytest
from safetensors import safe_open
from safetensors.torch import save_file

from sgdepth_ros.cli import main
from sgdepth_ros.model import CheckpointError, load_checkpoint, read_metadata, save_checkpoint, validate_metadata
from sgdepth_ros.model.checkpoint import METADATA_KEY
from sgdepth_ros.samples import road_scene

GOOD = {"format": "sgdepth_ros", "format_version": 1, "input_size": {"width": 640, "height": 192},
        "min_depth": 0.1, "max_depth": 100.0, "scale": {"factor": 5.0, "source": "test"}}


@pytest.fixture(scope="module")
def weights(ours_safetensors) -> dict:
    with safe_open(ours_safetensors, framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def _with_metadata(path, weights, document) -> str:
    raw = document if isinstance(document, str) else json.dumps(document)
    save_file(weights, str(path), metadata={METADATA_KEY: raw})
    return str(path)


BAD = [  # (metadata, field named in the message)
    ({**GOOD, "input_size": {"width": 32000, "height": 192}}, "input_size.width"),        # the 137 kill
    ({**GOOD, "input_size": {"width": 4096, "height": 4096}}, "input_size"),              # each side ok, area not
    ({**GOOD, "input_size": {"width": 640, "height": 190}}, "input_size.height"),
    ({**GOOD, "input_size": {"width": "640", "height": 192}}, "input_size.width"),
    ({**GOOD, "input_size": {"width": True, "height": 192}}, "input_size.width"),
    ({k: v for k, v in GOOD.items() if k != "input_size"}, "input_size"),                 # was a KeyError
    ([1, 2, 3], "(document)"),                                                            # was a TypeError
    ({**GOOD, "scale": {"factor": "5.0"}}, "scale.factor"),                               # was a TypeError
    ({**GOOD, "scale": {"factor": -2.0}}, "scale.factor"),
    ({**GOOD, "scale": "metres"}, "scale"),
    ({**GOOD, "min_depth": 0}, "min_depth"),                                              # failed every image
    ({**GOOD, "min_depth": 200.0}, "min_depth"),
    ({**GOOD, "max_depth": "far"}, "max_depth"),
    ({**GOOD, "trained": "yes"}, "trained"),
    ({**GOOD, "class_names": ["road"]}, "class_names"),
    ({**GOOD, "format_version": 99}, "format_version"),
    ({**GOOD, "format": "other"}, "format"),
]


@pytest.mark.parametrize("document,field", BAD, ids=[f"{i}-{f}" for i, (_, f) in enumerate(BAD)])
def test_bad_metadata_is_refused_by_infer_with_one_line(tmp_path, weights, capsys, document, field):
    model = _with_metadata(tmp_path / "bad.safetensors", weights, document)
    image = tmp_path / "in.png"
    cv2.imwrite(str(image), road_scene(64, 32)[..., ::-1])
    code = main(["infer", "--model", model, "--input", str(image), "--output", str(tmp_path / "out"),
                 "--backend", "torch", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 1
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert model in lines[0] and f"'{field}'" in lines[0], lines[0]


def test_invalid_json_names_the_file(tmp_path, weights):
    path = _with_metadata(tmp_path / "notjson.safetensors", weights, "{not json")
    with pytest.raises(CheckpointError, match="not valid JSON") as info:
        read_metadata(path)
    assert path in str(info.value)


def test_valid_metadata_gets_defaults_and_loads(tmp_path, weights):
    minimal = {"input_size": {"width": 320, "height": 96}}
    path = _with_metadata(tmp_path / "minimal.safetensors", weights, minimal)
    meta = load_checkpoint(path).metadata
    assert meta["input_size"] == {"width": 320, "height": 96}
    assert meta["min_depth"] == 0.1 and meta["max_depth"] == 100.0 and meta["scale"]["factor"] is None
    assert validate_metadata({**GOOD, "scale": None}, "x")["scale"] == {"factor": None}
    assert validate_metadata({**GOOD, "extra": {"kept": 1}}, "x")["extra"] == {"kept": 1}


def test_metadata_is_checked_before_the_weights_are_read(tmp_path, weights, monkeypatch):
    """A refused file costs no tensor reads (the 32000-wide file died allocating, not reading)."""
    import safetensors

    path = _with_metadata(tmp_path / "wide.safetensors", weights, {**GOOD, "input_size": {"width": 32000,
                                                                                         "height": 192}})
    reads, opened = [], []
    real_safe_open = safetensors.safe_open

    class Spy:
        def __init__(self, *args, **kwargs):
            opened.append(args[0])
            self.inner = real_safe_open(*args, **kwargs)

        def __enter__(self):
            handle = self.inner.__enter__()
            outer = self

            class Handle:
                def metadata(self):
                    return handle.metadata()

                def keys(self):
                    return handle.keys()

                def get_tensor(self, key):
                    reads.append(key)
                    return handle.get_tensor(key)
            outer.handle = Handle()
            return outer.handle

        def __exit__(self, *exc):
            return self.inner.__exit__(*exc)

    monkeypatch.setattr(safetensors, "safe_open", Spy)
    with pytest.raises(CheckpointError, match="input_size.width"):
        load_checkpoint(path)
    assert opened == [path] and reads == []


def test_saving_refuses_metadata_that_loading_would_refuse(tmp_path, model):
    with pytest.raises(CheckpointError, match="scale.factor"):
        save_checkpoint(model, tmp_path / "x.safetensors", {"scale": {"factor": "big"}})
    assert not (tmp_path / "x.safetensors").exists()


def test_convert_refuses_an_oversized_input_size(tmp_path, reference_pth, capsys):
    assert main(["convert", reference_pth, "-o", str(tmp_path / "c.safetensors"), "--width", "4096",
                 "--height", "4096"]) == 1
    err = capsys.readouterr().err
    assert "input_size" in err and "Traceback" not in err


def test_a_too_large_requested_input_size_is_refused(ours_safetensors):
    from sgdepth_ros import Predictor

    with pytest.raises(ValueError, match="too large"):
        Predictor(ours_safetensors, device="cpu", backend="torch", input_size=(4096, 4096))
