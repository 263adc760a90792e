"""One scale rule for every entry point (sgdepth_ros.scale): auto = the given factor, else the checkpoint's, else
relative; fixed = the same but an error without a factor; relative = model units always."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from conftest import randomized_model
from sgdepth_ros import Predictor
from sgdepth_ros.cli import main
from sgdepth_ros.model import save_checkpoint
from sgdepth_ros.samples import road_scene
from sgdepth_ros.scale import (CheckpointScale, FixedScale, RelativeScale, SCALE_MODES, resolve_scale)

SMALL = ["--backend", "torch", "--device", "cpu", "--width", "128", "--height", "64"]
STORED = 7.5
STORED_META = {"scale": {"factor": STORED, "source": "test: measured"}}


@pytest.fixture(scope="module")
def scaled_checkpoint(tmp_path_factory) -> str:
    """A checkpoint that stores a metric scale (like the shipped default model)."""
    return str(save_checkpoint(randomized_model(seed=2), tmp_path_factory.mktemp("scaled") / "scaled.safetensors",
                               {**STORED_META, "provenance": {"source": "test: stored scale"}}))


@pytest.mark.parametrize("mode,factor,meta,expected", [
    ("auto", None, {}, None),                    # released weights: relative
    ("auto", None, STORED_META, STORED),         # the shipped model: its stored metres
    ("auto", 2.0, STORED_META, 2.0),             # the user's factor wins
    ("auto", 0.0, STORED_META, STORED),          # 0 = not given (the node's parameter default)
    ("fixed", None, STORED_META, STORED),
    ("fixed", 3.0, {}, 3.0),
    ("relative", None, STORED_META, None),       # relative even with a stored factor
    ("relative", 0, STORED_META, None),
])
def test_the_rule(mode, factor, meta, expected):
    source = resolve_scale(mode, factor, meta)
    assert source.factor() == expected and source.is_metric == (expected is not None)
    assert source.mode == mode and source.required_tasks == frozenset()
    kind = RelativeScale if expected is None else FixedScale if factor else CheckpointScale
    assert type(source) is kind
    assert ("relative" in source.describe()) == (expected is None)


@pytest.mark.parametrize("mode,factor,meta,match", [
    ("fixed", None, {}, "needs a scale factor"),
    ("relative", 2.0, {}, "scale_mode 'relative'"),
    ("metric", None, {}, "one of relative, fixed, auto"),
    ("auto", -1.0, {}, "positive finite"),
    ("auto", float("nan"), {}, "positive finite"),
    ("auto", "2", {}, "positive finite"),
])
def test_bad_combinations_are_refused(mode, factor, meta, match):
    with pytest.raises(ValueError, match=match):
        resolve_scale(mode, factor, meta, "m.pth")


def test_predictor_applies_the_rule(scaled_checkpoint, ours_safetensors, rgb):
    kw = dict(device="cpu", backend="torch", input_size=(128, 64))
    relative = Predictor(scaled_checkpoint, scale_mode="relative", **kw)
    default = Predictor(scaled_checkpoint, **kw)  # auto
    assert default.is_metric and default.scale_factor == STORED and not relative.is_metric
    assert np.allclose(default.predict(rgb).depth, STORED * relative.predict(rgb).depth, rtol=1e-6)
    assert "checkpoint metadata: test: measured" in default.describe()
    released_like = Predictor(ours_safetensors, **kw)  # no stored factor
    assert not released_like.is_metric and released_like.scale_factor is None
    with pytest.raises(ValueError, match="needs a scale factor"):
        Predictor(ours_safetensors, scale_mode="fixed", **kw)


def test_infer_follows_the_rule(tmp_path, scaled_checkpoint, capsys):
    image = tmp_path / "road.png"
    cv2.imwrite(str(image), road_scene(128, 64)[..., ::-1])
    depth = {}
    for mode in ("auto", "relative"):
        out = tmp_path / mode
        assert main(["infer", "--model", scaled_checkpoint, "--input", str(image), "--output", str(out), "--npy",
                     "--scale-mode", mode, *SMALL]) == 0
        summary = json.loads((out / "summary.json").read_text())
        assert summary["depth_units"] == ("metres" if mode == "auto" else "model units (relative)")
        assert summary["scale"]["mode"] == mode
        depth[mode] = np.load(out / "road_depth.npy")
    assert np.allclose(depth["auto"], STORED * depth["relative"], rtol=1e-5)
    assert main(["infer", "--model", scaled_checkpoint, "--input", str(image), "--output", str(tmp_path / "x"),
                 "--scale-mode", "relative", "--scale-factor", "2", *SMALL]) == 1
    assert "scale_mode 'relative'" in capsys.readouterr().err


def test_node_defaults_to_the_same_rule():
    """The node's parameter default is the rule's default, and the shipped YAML says the same."""
    from sgdepth_ros.ros.params import PARAMS_BY_NAME, validate
    from sgdepth_ros.scale import DEFAULT_SCALE_MODE

    assert PARAMS_BY_NAME["scale_mode"].default == DEFAULT_SCALE_MODE == "auto"
    assert PARAMS_BY_NAME["scale_mode"].choices == SCALE_MODES
    assert PARAMS_BY_NAME["scale_factor"].default == 0.0
    assert validate("scale_mode", "auto") is None


def test_node_publishes_metres_for_a_checkpoint_with_a_stored_scale(scaled_checkpoint, ours_safetensors):
    """With default parameters the node names its depth topics by the same rule: metres on depth for a checkpoint
    that stores a scale (the shipped model), model units on depth/relative for one without (released weights)."""
    from sgdepth_ros.ros.launcher import NodeProcess, ros_environment

    env = ros_environment()
    for checkpoint, metric in ((scaled_checkpoint, True), (ours_safetensors, False)):
        node = NodeProcess({"model_path": checkpoint, "input_width": 128, "input_height": 64, "backend": "torch",
                            "log_period_sec": 0.0}, env, extra_args=("-r", "__ns:=/scaled")).start()
        try:
            node.wait_for_output("active:", timeout=180)
            active = next(line for line in node.output.splitlines() if "active:" in line)
        finally:
            node.stop()
        topics = set(active.split("→", 1)[1].replace(",", " ").split())
        assert ("/scaled/depth" in topics) == metric and ("/scaled/depth/relative" in topics) == (not metric)
        assert ("/scaled/points" in topics) == metric
