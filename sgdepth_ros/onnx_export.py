"""ONNX export of the inference graph (for TensorRT, ONNX Runtime or any other ONNX consumer).

The exported graph is :class:`sgdepth_ros.backends.InferenceGraph` at one input size:

- input ``image``: [N,3,H,W] float32, RGB normalised with the ImageNet mean/std (``sgdepth_ros.preprocess``);
- output ``disparity`` (task depth): [N,1,H,W] float32 in (0,1), full resolution (depth = 1 / (a + b·disparity),
  see ``sgdepth_ros.postprocess.disparity_to_depth`` and the checkpoint's min/max depth);
- output ``labels`` (task segmentation): [N,H,W] int32 Cityscapes trainIds 0..18 (argmax over the 19 trained
  classes; int32 rather than int64 because TensorRT 8 has no int64 bindings).

H and W are fixed (multiples of 32); N is fixed too unless ``dynamic_batch`` (then the axis is named ``batch``).
Opset :data:`DEFAULT_OPSET` by default. The export uses PyTorch's TorchScript-based exporter (``dynamo=False``): it
needs the ``onnx`` package (extra ``onnx``) but not ``onnxscript``, and works alike on torch 2.11 and 2.14.
"""
from __future__ import annotations

import copy
import importlib.util
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from .backends import TASKS, BackendError, InferenceGraph, task_set
from .model import SGDepth

DEFAULT_OPSET = 17
MIN_OPSET = 11  # reflect padding and ArgMax as used here
INPUT_NAME = "image"
OUTPUT_NAMES = {"depth": "disparity", "segmentation": "labels"}


class ExportGraph(nn.Module):
    """InferenceGraph with int32 labels (what the ONNX file holds)."""

    def __init__(self, model: SGDepth, tasks: tuple[str, ...]):
        super().__init__()
        self.graph = InferenceGraph(model, tasks)

    def forward(self, x: torch.Tensor):
        return tuple(o if o.is_floating_point() else o.to(torch.int32) for o in self.graph(x))


def _cpu_fp32(model: SGDepth) -> SGDepth:
    """``model`` itself when it is fp32 on the CPU, else an fp32 CPU copy (the caller's model is left as it was)."""
    first = next(model.parameters())
    if first.device.type != "cpu" or first.dtype != torch.float32:
        return copy.deepcopy(model).to("cpu", torch.float32)
    return model


def output_names(tasks) -> list[str]:
    """The ONNX output names of a task set, in output order."""
    return [OUTPUT_NAMES[t] for t in task_set(tasks)]


def export_onnx(model: SGDepth, path: str | Path, input_hw: tuple[int, int], tasks=TASKS,
                opset: int = DEFAULT_OPSET, dynamic_batch: bool = True, batch: int = 1) -> Path:
    """Write the inference graph of ``tasks`` at input (H, W) to ``path`` (written to a temporary file, then
    renamed) → ``path``. The graph is exported in fp32 on the CPU (from a copy when ``model`` is elsewhere).

    dynamic_batch: the batch axis is free (``batch`` is then only the example's size); else fixed to ``batch``.
    """
    if importlib.util.find_spec("onnx") is None:
        raise BackendError("the ONNX export needs the onnx package: pip install 'sgdepth_ros[onnx]' (or onnx)")
    if opset < MIN_OPSET:
        raise ValueError(f"opset must be at least {MIN_OPSET}, got {opset}")
    h, w = (int(v) for v in input_hw)
    if h <= 0 or w <= 0 or h % 32 or w % 32:
        raise ValueError(f"input size must be positive multiples of 32, got {w}x{h} (width x height)")
    if batch < 1:
        raise ValueError(f"batch must be ≥ 1, got {batch}")
    tasks = task_set(tasks)
    graph = ExportGraph(_cpu_fp32(model), tasks).eval()
    names = output_names(tasks)
    axes = {n: {0: "batch"} for n in [INPUT_NAME, *names]} if dynamic_batch else None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer and exporter deprecation notes, not actionable here
            torch.onnx.export(graph, (torch.zeros(batch, 3, h, w),), str(tmp), input_names=[INPUT_NAME],
                              output_names=names, dynamic_axes=axes, opset_version=opset, dynamo=False,
                              do_constant_folding=True)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def check_onnx(model: SGDepth, path: str | Path, input_hw: tuple[int, int], tasks=TASKS, batch: int = 2,
               seed: int = 0) -> dict[str, float]:
    """Run the ONNX file with ONNX Runtime (CPU) and the PyTorch inference graph (fp32, CPU) on the same
    normalised road images [batch,3,H,W] → {"disparity_max_abs_error": …, "labels_agreement": fraction of equal
    pixels}, the keys of the tasks only. Needs ``onnxruntime`` (extra ``onnx``)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise BackendError("checking the ONNX export needs onnxruntime: pip install 'sgdepth_ros[onnx]'") from exc
    import numpy as np

    from .preprocess import normalize
    from .samples import road_scene

    h, w = (int(v) for v in input_hw)
    tasks = task_set(tasks)
    x = normalize([road_scene(w, h, seed=seed + i) for i in range(batch)])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = dict(zip(output_names(tasks), session.run(None, {INPUT_NAME: x})))
    with torch.no_grad():
        outs = ExportGraph(_cpu_fp32(model), tasks).eval()(torch.from_numpy(x))
    want = dict(zip(output_names(tasks), (o.numpy() for o in outs)))
    result = {}
    if "disparity" in want:
        result["disparity_max_abs_error"] = float(np.abs(got["disparity"] - want["disparity"]).max())
    if "labels" in want:
        result["labels_agreement"] = float((got["labels"] == want["labels"]).mean())
    return result
