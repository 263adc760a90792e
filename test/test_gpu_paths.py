"""The GPU paths, as far as a machine without a GPU can check them: the CUDA-graph cache logic, the optimize levels
(refused on the CPU), the TensorRT backend's fallback and engine cache key, the ONNX export against PyTorch in
ONNX Runtime, and the plumbing of scripts/gpu_check.sh (run on the CPU; GPU rows stay "not measured")."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from sgdepth_ros import Predictor
from sgdepth_ros.backends import OPTIMIZE_LEVELS, BackendError, TorchBackend, resolve_optimize
from sgdepth_ros.cli import main
from sgdepth_ros.ros.params import validate, validate_together
from sgdepth_ros.tensorrt_backend import TensorRTBackend, engine_cache_key, tensorrt_import_error
from sgdepth_ros.torch_cuda import CudaExecutor, GraphCache

ROOT = Path(__file__).resolve().parents[1]
SMALL = (128, 64)


# --- CUDA graph cache (pure logic) ---------------------------------------------------------------------------------

class _Capture:
    def __init__(self, fail=()):
        self.calls, self.fail = [], set(fail)

    def __call__(self, key):
        self.calls.append(key)
        if key in self.fail:
            raise RuntimeError("operation not permitted when stream is capturing")
        return f"runner{key}"


def test_graph_cache_captures_a_key_on_its_second_call_and_replays_it():
    capture = _Capture()
    cache = GraphCache(capture, max_graphs=4)
    key = ((1, 3, 64, 128), ("depth", "segmentation"))
    assert cache.get(key) is None  # first sight: eager (a one-off shape is never captured)
    assert cache.get(key) == f"runner{key}"
    assert cache.get(key) == f"runner{key}"
    assert capture.calls == [key]  # captured once, replayed after
    other = ((4, 3, 64, 128), ("depth",))  # another batch size or task set is its own graph
    assert cache.get(other) is None and cache.get(other) == f"runner{other}"
    assert set(cache.runners) == {key, other}


def test_graph_cache_capture_after_zero_captures_at_once():
    cache = GraphCache(_Capture(), capture_after=0)
    assert cache.get("k") == "runnerk"


def test_graph_cache_full_runs_new_shapes_eagerly_with_one_warning(caplog):
    capture = _Capture()
    cache = GraphCache(capture, max_graphs=2, capture_after=0)
    assert cache.get("a") and cache.get("b")
    with caplog.at_level(logging.WARNING, "sgdepth_ros.torch_cuda"):
        assert cache.get("c") is None and cache.get("d") is None and cache.get("c") is None
    assert capture.calls == ["a", "b"]
    assert len(caplog.records) == 1 and "run eagerly" in caplog.text
    assert cache.get("a") == "runnera"  # the captured ones keep replaying


def test_graph_cache_failed_capture_falls_back_to_eager_and_is_not_retried(caplog):
    capture = _Capture(fail={"bad"})
    cache = GraphCache(capture, capture_after=0)
    with caplog.at_level(logging.WARNING, "sgdepth_ros.torch_cuda"):
        assert cache.get("bad") is None and cache.get("bad") is None
    assert capture.calls == ["bad"] and "bad" in cache.failed
    assert len(caplog.records) == 1 and "capture failed" in caplog.text and "eagerly" in caplog.text
    assert cache.get("good") == "runnergood"


def test_graph_cache_rejects_bad_settings():
    with pytest.raises(ValueError):
        GraphCache(_Capture(), max_graphs=0)


def test_cuda_executor_refuses_a_cpu_device():
    with pytest.raises(ValueError, match="CUDA"):
        CudaExecutor(lambda tasks, x: (x,), torch.device("cpu"))


# --- optimize levels -------------------------------------------------------------------------------------------------

def test_optimize_levels_resolve_per_device():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert OPTIMIZE_LEVELS == ("auto", "none", "graphs", "compile")
    assert resolve_optimize("auto", cpu) == "none" and resolve_optimize("none", cpu) == "none"
    assert resolve_optimize("auto", cuda) == "graphs"  # device type only: no CUDA call
    assert resolve_optimize("compile", cuda) == "compile" and resolve_optimize("none", cuda) == "none"
    for level in ("graphs", "compile"):
        with pytest.raises(BackendError, match="needs a CUDA device"):
            resolve_optimize(level, cpu)
    with pytest.raises(BackendError, match="valid: auto, none, graphs, compile"):
        resolve_optimize("fast", cuda)


def test_predictor_refuses_cuda_optimisations_on_the_cpu(ours_safetensors):
    with pytest.raises(BackendError, match="optimize 'graphs'.*CUDA"):
        Predictor(ours_safetensors, device="cpu", backend="torch", optimize="graphs")
    p = Predictor(ours_safetensors, device="cpu", backend="torch", input_size=SMALL)  # auto: plain eager here
    assert isinstance(p.backend, TorchBackend) and p.backend.optimize == "none" and p.backend._cuda is None


def test_node_parameters_offer_optimize_and_tensorrt():
    assert validate("optimize", "graphs") is None and "one of" in validate("optimize", "fast")
    assert validate("backend", "tensorrt") is None
    assert "CUDA" in validate_together({"optimize": "compile", "device": "cpu"})
    assert validate_together({"optimize": "auto", "device": "cpu"}) is None


# --- TensorRT backend: fallback and cache key -------------------------------------------------------------------------

def test_tensorrt_backend_falls_back_to_torch_with_one_line_when_tensorrt_is_missing(ours_safetensors, monkeypatch,
                                                                                    caplog, rgb):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt → ImportError, installed or not
    assert "ImportError" in tensorrt_import_error() or "ModuleNotFoundError" in tensorrt_import_error()
    with caplog.at_level(logging.WARNING, "sgdepth_ros.predictor"):
        p = Predictor(ours_safetensors, device="cpu", backend="tensorrt", input_size=SMALL)
    assert p.backend.name == "torch"
    lines = [r.getMessage() for r in caplog.records if "tensorrt" in r.getMessage()]
    assert len(lines) == 1 and "PyTorch backend instead" in lines[0] and "\n" not in lines[0]
    assert p.predict(rgb).depth.shape == (SMALL[1], SMALL[0])


def test_tensorrt_backend_refusals_are_clear(ours_safetensors, model, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))  # "importable": no fallback
    with pytest.raises(BackendError, match="needs a CUDA device"):
        Predictor(ours_safetensors, device="cpu", backend="tensorrt", input_size=SMALL)
    with pytest.raises(BackendError, match="int8 is not implemented"):
        TensorRTBackend(model, (64, 128), torch.device("cuda"), precision="int8")
    with pytest.raises(BackendError, match="fp32 or fp16"):
        TensorRTBackend(model, (64, 128), torch.device("cuda"), precision="bf16")


def test_engine_cache_key_names_weights_size_tasks_precision_batch_version_and_gpu():
    base = dict(weights_key="abc", input_hw=(192, 640), tasks=("depth", "segmentation"), precision="fp16",
                max_batch=16, trt_version="10.3.0", gpu="NVIDIA H200 sm_90")
    key = engine_cache_key(**base)
    assert len(key) == 20 and key == engine_cache_key(**base)
    assert engine_cache_key(**{**base, "tasks": ("segmentation", "depth")}) == key  # canonical task order
    for field, other in (("weights_key", "abd"), ("input_hw", (192, 608)), ("tasks", ("depth",)),
                         ("precision", "fp32"), ("max_batch", 4), ("trt_version", "10.4.0"),
                         ("gpu", "Orin sm_87")):
        assert engine_cache_key(**{**base, field: other}) != key, field
    assert engine_cache_key(**base, opset=18) != key


# --- ONNX export ----------------------------------------------------------------------------------------------------

def test_export_onnx_matches_pytorch_in_onnx_runtime_with_a_dynamic_batch(tmp_path, ours_safetensors, model, capsys):
    import onnx
    import onnxruntime as ort

    from sgdepth_ros.onnx_export import ExportGraph
    from sgdepth_ros.preprocess import normalize
    from sgdepth_ros.samples import road_scene

    out = tmp_path / "model.onnx"
    assert main(["export-onnx", ours_safetensors, "-o", str(out), "--input-size", "128x64", "--dynamic-batch",
                 "--opset", "17", "--check"]) == 0
    printed = capsys.readouterr().out
    assert "disparity_max_abs_error" in printed and "labels_agreement 1" in printed
    graph = onnx.load(str(out))
    assert graph.opset_import[0].version == 17
    assert [i.name for i in graph.graph.input] == ["image"]
    assert [o.name for o in graph.graph.output] == ["disparity", "labels"]
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    # a batch size other than the example's, against the PyTorch inference graph
    x = normalize([road_scene(128, 64, seed=s) for s in range(3)])
    disparity, labels = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"image": x})
    with torch.no_grad():
        want_disp, want_labels = ExportGraph(model, ("depth", "segmentation")).eval()(torch.from_numpy(x))
    assert disparity.shape == (3, 1, 64, 128) and disparity.dtype == np.float32
    assert labels.shape == (3, 64, 128) and labels.dtype == np.int32
    assert np.abs(disparity - want_disp.numpy()).max() < 1e-5
    assert (labels == want_labels.numpy()).mean() > 0.999


def test_export_onnx_fixed_batch_and_one_task(tmp_path, ours_safetensors):
    import onnxruntime as ort

    out = tmp_path / "seg.onnx"
    assert main(["export-onnx", ours_safetensors, "-o", str(out), "--input-size", "128x64", "--tasks", "segmentation",
                 "--batch", "2", "--check"]) == 0
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["labels"]
    assert session.get_inputs()[0].shape == [2, 3, 64, 128]


def test_export_onnx_rejects_bad_arguments(tmp_path, ours_safetensors, capsys):
    out = str(tmp_path / "x.onnx")
    assert main(["export-onnx", ours_safetensors, "-o", out, "--tasks", "depth,flow"]) == 2
    assert "--tasks" in capsys.readouterr().err
    assert main(["export-onnx", ours_safetensors, "-o", out, "--opset", "9"]) == 1
    assert "opset must be at least 11" in capsys.readouterr().err
    assert main(["export-onnx", ours_safetensors, "-o", out, "--input-size", "100x64"]) == 1
    assert "multiples of 32" in capsys.readouterr().err
    assert not Path(out).exists() and not list(tmp_path.glob(".*tmp"))


# --- gpu_check.sh plumbing ------------------------------------------------------------------------------------------

def test_gpu_check_table_parsing_reads_the_bench_tables():
    from sgdepth_ros.commands.bench import render_table
    from sgdepth_ros.commands.gpu_check import first_number, table_cell

    stages = ("decode", "preprocess", "forward", "postprocess", "colourise", "end_to_end")
    times = {"torch-cpu": {s: [10.0] for s in stages}, "torch-cuda-fp16": {s: [0.5, 0.7] for s in stages}}
    times["torch-cuda-fp16"]["end_to_end"] = [2.25, 2.75, 9.0]
    table = "\n".join(render_table(times, "torch-cpu"))
    assert first_number(table_cell(table, "torch-cuda-fp16", "end_to_end")) == 2.8  # p50 of the row, as printed
    assert first_number(table_cell(table, "torch-cuda-fp16", "colourise")) == 0.6
    assert table_cell(table, "torch-cuda-bf16", "end_to_end") is None and first_number(None) is None
    train = ("| case | input | fp32 images/s | AMP bf16 + channels_last images/s |\n|---|---|---|---|\n"
             "| full 6+6 | 640×192 | 41.50 | 97.25 |\n| only depth 12 | 640×192 | 30.00 | 60.00 |")
    assert first_number(table_cell(train, "full 6+6", "fp32")) == 41.5
    assert first_number(table_cell(train, "full 6+6", "AMP")) == 97.25


def test_the_task_table_signs_a_slower_task_set_as_a_cost():
    """The H200 run printed '(−-4 %)' for a task set 4 % slower than both tasks: the sign comes from the change."""
    from sgdepth_ros.commands.bench import render_task_table

    times = {"torch-cuda-fp16": {"both": [10.0], "depth only": [6.1], "segmentation only": [10.4]},
             "torch-cpu": {"both": [10.0], "depth only": [10.0], "segmentation only": [9.96]}}
    rows = render_task_table(times)
    assert rows[2] == "| torch-cuda-fp16 | 10.0 / 10.0 | 6.1 / 6.1 (−39 %) | 10.4 / 10.4 (+4 %) |"
    assert rows[3].endswith("| 10.0 / 10.0 (±0 %) | 10.0 / 10.0 (±0 %) |")  # 9.96 is printed 10.0: no sign


def test_gpu_check_script_runs_its_plumbing_on_the_cpu_and_writes_no_gpu_numbers(tmp_path):
    md = tmp_path / "benchmarks.md"
    other = "<!-- bench:inference:start -->\nCPU numbers measured elsewhere\n<!-- bench:inference:end -->"
    md.write_text(f"# Benchmarks\n\n{other}\n")
    env = dict(os.environ, SGDEPTH_PYTHON=sys.executable)
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--device", "cpu", "--quick",
                           "--input-size", "128x64", "--skip-train", "--output", str(md)],
                          capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for step in ("fp32 eager: disparity max error 0.00e+00", "predictor batch", "bench", "done in"):
        assert step in done.stdout, step
    text = md.read_text()
    assert other in text  # the other sections are left alone
    block = text[text.index("<!-- bench:gpu:start -->"):text.index("<!-- bench:gpu:end -->")]
    assert block.count("| not measured | — |") == 5 and "No GPU was available" in block
    # CPU numbers are printed, never written as GPU results
    assert "###" not in block and "| fp32 eager |" not in block and "CPU smoke" not in block and "CPU smoke" in done.stdout


def test_gpu_check_renders_a_gpu_run_with_the_targets_and_embedded_tables():
    """The GPU branch of the report, fed with made-up results (the layout only: no figure here is a measurement)."""
    from sgdepth_ros.commands.gpu_check import TARGETS, render

    check = types.SimpleNamespace(
        args=types.SimpleNamespace(input_size=(640, 192)), cuda=True, model_label="m.safetensors (trained weights)",
        iterations=200, warmup=20, notes=["torch.compile: left out (--skip-compile)"], batch_line=["- predictor line"],
        values={"forward": 0.5, "batch_gain": 1.5, "end_to_end": 4.0, "end_to_end_raw": 2.0, "train_gain": 2.5},
        accuracy=[("fp16 graphs", 3e-3, 0.998, (1e-2, 0.995), True), ("bf16 graphs", 5e-2, 0.97, (4e-2, 0.99), False)],
        forward=[("fp16 graphs", [0.5, 0.6], [1.0, 1.1], [2.0, 2.2])],
        sections={"bench": "# Benchmarks\n\n<!-- bench:inference:start -->\n## Inference latency\n| a |\n"
                           "<!-- bench:inference:end -->"})
    text = render(check, "machine line", "NVIDIA H200, CUDA 13.0")
    assert "**NVIDIA H200, CUDA 13.0**" in text and "not measured" not in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and ("| ≤ " in line or "| ≥ " in line)]
    met = [line.rsplit("|", 2)[1].strip() for line in rows[:len(TARGETS)]]
    assert met == ["yes", "**no**", "**no**", "yes", "yes"]
    assert "| fp16 graphs | 3.00e-03 | 99.80 % |" in text and "| bf16 graphs | 5.00e-02 | 97.00 % |" in text
    assert "| fp16 graphs | 0.550 / 0.595 | 1.050 / 1.095 | 2.100 / 2.190 | 2.00× |" in text
    assert "### Inference latency" in text and "bench:inference" not in text  # embedded one level down
    assert "- predictor line" in text and "- torch.compile: left out" in text
