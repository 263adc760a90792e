"""int8 quantisation (``sgdepth-ros quantize``) and the CPU precisions: the gate, the file, and the predictor on it.

The shipped default model is quantised for real at its own size and must hold the accuracy gate on a held-out
synthetic drive (a regression check of what the README and docs/benchmarks.md claim); a random-weight model misses
it, so the command refuses to write unless forced, and says by how much.
"""
from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from sgdepth_ros.backends import BackendError
from sgdepth_ros.cli import main
from sgdepth_ros.default_model import default_model_path
from sgdepth_ros.model import CheckpointError, load_checkpoint, read_metadata, save_checkpoint
from sgdepth_ros.predictor import Predictor
from sgdepth_ros.quantized import is_quantized_file, read_quantized
from sgdepth_training.quantize import GATE, Accuracy, judge

from conftest import randomized_model

pytest.importorskip("nncf")
SMALL = ["--input-size", "128x64", "--gate-frames", "5", "--calibration-frames", "3"]


def quantize_cli(*args: str) -> subprocess.CompletedProcess:
    """``sgdepth-ros quantize`` as its own process, as a user runs it (NNCF's quantisation then leaves no state in
    the test process: run in-process it silenced a later test's log capture)."""
    return subprocess.run([sys.executable, "-m", "sgdepth_ros.cli", "quantize", *args], capture_output=True,
                          text=True, timeout=900)


def test_the_gate_names_each_miss_and_by_how_much():
    fp32 = Accuracy(abs_rel=0.100, a1=0.900, miou=0.500)
    assert judge(fp32, Accuracy(0.1019, 0.8951, 0.4941, 0.990)).passed  # just inside every limit
    result = judge(fp32, Accuracy(0.105, 0.880, 0.480, 0.95))
    assert not result.passed and len(result.misses) == 4
    assert "worse by 0.0050 (limit 0.002)" in result.misses[0]
    assert "lower by 0.0200 (limit 0.005)" in result.misses[1]
    assert "lower by 2.00 points (limit 0.6)" in result.misses[2]
    assert "short by 4.00 points" in result.misses[3]
    assert result.as_dict()["limits"] == GATE and result.as_dict()["passed"] is False
    assert judge(fp32, Accuracy(0.09, 0.95, 0.6, 0.995)).passed  # better than fp32 is never a miss


@pytest.fixture(scope="module")
def random_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("q") / "random.safetensors"
    save_checkpoint(randomized_model(seed=3), path, {"provenance": {"source": "test: random weights"},
                                                     "input_size": {"width": 128, "height": 64}})
    return path


@pytest.fixture(scope="module")
def quantised(random_checkpoint, tmp_path_factory):
    """The random model quantised with calibration images from a folder (written even if it missed the gate)."""
    folder = tmp_path_factory.mktemp("calib")
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), rng.integers(0, 255, (48, 80, 3), dtype=np.uint8))
    out = folder.parent / "int8.safetensors"
    done = quantize_cli(str(random_checkpoint), "-o", str(out), *SMALL, "--force", "--calibration", str(folder))
    assert done.returncode == 0, done.stdout + done.stderr
    return out, folder


def test_a_quantised_file_records_where_it_came_from(quantised, random_checkpoint):
    out, folder = quantised
    assert is_quantized_file(out) and not is_quantized_file(random_checkpoint)
    meta = read_quantized(out)[0]
    q = meta["quantization"]
    assert q["calibration"] == f"{folder} (3 images)" and q["candidate"] in ("all", "encoder")
    assert q["source"]["sha256"] and q["versions"]["nncf"] and q["versions"]["openvino"]
    assert set(q["gate"]) == {"limits", "fp32", "int8", "passed", "misses"} and q["forced"] == (not q["gate"]["passed"])
    assert meta["input_size"] == {"width": 128, "height": 64}


def test_a_model_that_misses_the_gate_is_not_written_unless_forced(random_checkpoint, tmp_path, capsys,
                                                                    monkeypatch):
    """The command's refusal, on a quantisation result whose gate failed (no NNCF run needed for that)."""
    from sgdepth_training import quantize

    def missed(model, key, input_size, calibration, select, test, rest=None, log=print):
        fp32 = Accuracy(0.2, 0.7, 0.4, 1.0, len(test))
        gate = judge(fp32, Accuracy(0.21, 0.69, 0.39, 0.97, len(test)))
        return quantize.QuantizeResult({}, "encoder", "fp32", [], [], gate, 0.0)

    monkeypatch.setattr(quantize, "quantize", missed)
    out = tmp_path / "int8.safetensors"
    assert main(["quantize", str(random_checkpoint), "-o", str(out), *SMALL]) == 1
    printed = capsys.readouterr().out
    assert "misses the accuracy gate" in printed and "short by 2.00 points" in printed and "not written" in printed
    assert "worse by 0.0100 (limit 0.002)" in printed and not out.exists()


def test_the_predictor_runs_a_quantised_file_like_any_checkpoint(quantised, random_checkpoint, rgb):
    out, _ = quantised
    predictor = Predictor(out, device="cpu")
    assert predictor.describe().startswith("openvino/cpu/int8")
    both = predictor.predict(rgb, output_resolution="input")
    assert both.depth.shape == both.labels.shape == rgb.shape[:2]
    depth_only = predictor.predict(rgb, output_resolution="input", tasks=("depth",))
    labels_only = predictor.predict(rgb, output_resolution="input", tasks=("segmentation",))
    np.testing.assert_allclose(depth_only.depth, both.depth, rtol=1e-5)  # the cut graphs compute the same
    np.testing.assert_array_equal(labels_only.labels, both.labels)
    assert depth_only.labels is None and labels_only.depth is None
    with pytest.raises(BackendError, match="runs on the CPU with backend openvino"):
        Predictor(out, device="cpu", backend="torch")
    with pytest.raises(ValueError, match="its own input size 128x64"):
        Predictor(out, device="cpu", input_size=(256, 128))
    with pytest.raises(CheckpointError, match="holds no pose network"):
        Predictor(out, device="cpu", ego_motion=True)
    with pytest.raises(CheckpointError, match="quantised OpenVINO file"):
        load_checkpoint(out)  # not network weights: the training side says so in one line
    with pytest.raises(BackendError, match="quantize"):
        Predictor(random_checkpoint, device="cpu", precision="int8")


def test_bad_quantize_arguments_are_refused(random_checkpoint, tmp_path, capsys):
    out = tmp_path / "int8.safetensors"
    assert main(["quantize", str(random_checkpoint), "-o", str(out), "--calibration", str(tmp_path / "none")]) == 2
    assert "not a folder of images" in capsys.readouterr().out
    assert main(["quantize", str(random_checkpoint), "-o", str(tmp_path / "x.onnx")]) == 2
    assert main(["quantize", str(tmp_path / "missing.safetensors"), "-o", str(out)]) == 2
    assert "not found" in capsys.readouterr().out
    assert not out.exists()


def test_bf16_is_refused_with_a_clear_line_where_the_cpu_lacks_it(ours_safetensors, monkeypatch):
    from sgdepth_ros import backends

    monkeypatch.setattr(backends, "cpu_supports_bf16", lambda: False)
    with pytest.raises(BackendError, match="bf16 on the CPU needs AVX-512 BF16 or AMX"):
        Predictor(ours_safetensors, device="cpu", precision="bf16", input_size=(128, 64))


@pytest.mark.skipif(default_model_path() is None, reason="checkout without the shipped model")
def test_the_shipped_model_quantised_at_its_size_holds_the_gate(tmp_path, capsys):
    """The real thing: NNCF on the default model, the layers chosen by measurement on the val drive, the gate held
    on the held-out test drive of a town the model never saw (seed 11)."""
    out = tmp_path / "default_int8.safetensors"
    done = quantize_cli(str(default_model_path()), "-o", str(out), "--gate-frames", "12")
    assert done.returncode == 0, done.stdout + done.stderr
    q = read_quantized(out)[0]["quantization"]
    assert q["gate"]["passed"] and not q["forced"], json.dumps(q["gate"])
    assert q["gate"]["int8"]["label_agreement"] >= GATE["label_agreement"]
    assert read_metadata(default_model_path())["scale"] == read_quantized(out)[0]["scale"]  # metres carried over
