"""Execution backends for the inference graph: PyTorch (CPU/GPU, fp32/fp16/bf16) and OpenVINO (CPU).

Both run the same ``InferenceGraph`` (full-resolution disparity + argmax labels over the 19
trained classes) and take/return numpy arrays, so the predictor does not care which one runs.
"""
from __future__ import annotations

import hashlib
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import __version__
from .model import SGDepth

LOG = logging.getLogger(__name__)
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
BACKENDS = ("auto", "torch", "openvino")


class BackendError(RuntimeError):
    """A backend cannot run as asked (missing device, package or unsupported precision)."""


class InferenceGraph(nn.Module):
    """SGDepth reduced to what inference needs.

    x [N,3,H,W] normalised → (disparity [N,1,H,W] in (0,1), labels [N,H,W] int64 trainIds);
    the untrained void channel 19 is excluded from the argmax. Only the requested tails run.
    """

    def __init__(self, model: SGDepth, tasks: tuple[str, ...]):
        super().__init__()
        self.model = model
        self.tasks = tuple(tasks)

    def forward(self, x: torch.Tensor):
        out = self.model(x, tasks=self.tasks, all_scales=False)
        result = []
        if out.disparities is not None:
            result.append(out.disparities[0])
        if out.seg_logits is not None:
            result.append(torch.argmax(out.seg_logits[:, :19], dim=1))
        return tuple(result)


def resolve_device(device: str) -> torch.device:
    """"auto" | "cpu" | "cuda" | "cuda:N" → torch.device; a clear error if CUDA is absent."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        LOG.warning("device=auto: no CUDA device available, running on the CPU")
        return torch.device("cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise BackendError(f"device={device!r} was requested but CUDA is not available "
                               f"(torch {torch.__version__}, torch.cuda.is_available() is False); use 'cpu' or 'auto'")
        dev = torch.device(device)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise BackendError(f"device={device!r}: only {torch.cuda.device_count()} CUDA device(s) present")
        return dev
    raise BackendError(f"unknown device {device!r}; valid: 'auto', 'cpu', 'cuda', 'cuda:N'")


class TorchBackend:
    """Eager PyTorch on any device; fp16/bf16 only on CUDA."""

    name = "torch"

    def __init__(self, graph: InferenceGraph, device: torch.device, precision: str = "fp32"):
        if precision not in PRECISIONS:
            raise BackendError(f"unknown precision {precision!r}; valid: {sorted(PRECISIONS)}")
        if precision != "fp32" and device.type != "cuda":
            raise BackendError(f"precision {precision} needs a CUDA device; on the CPU use fp32")
        self.device, self.dtype = device, PRECISIONS[precision]
        self.graph = graph.to(device=device, dtype=self.dtype).eval()
        self.tasks = graph.tasks

    @torch.inference_mode()
    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        x = torch.from_numpy(batch).to(self.device, self.dtype, non_blocking=True)
        outs = self.graph(x)
        return _name_outputs(self.tasks, [o.float().cpu().numpy() if o.is_floating_point() else o.cpu().numpy()
                                          for o in outs])


def _name_outputs(tasks, arrays) -> dict[str, np.ndarray]:
    names = [n for t, n in (("depth", "disparity"), ("segmentation", "labels")) if t in tasks]
    return dict(zip(names, arrays))


def default_cache_dir() -> Path:
    root = os.environ.get("SGDEPTH_ROS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "sgdepth_ros")
    return Path(root)


class OpenVINOBackend:
    """OpenVINO on the CPU, fp32 (``INFERENCE_PRECISION_HINT=f32``: no silent reduced precision).

    The converted graph is cached on disk, keyed by the checkpoint's weights, input size, tasks
    and package versions, so later starts skip the conversion.
    """

    name = "openvino"

    def __init__(self, graph: InferenceGraph, input_hw: tuple[int, int], weights_key: str = "",
                 cache_dir: Path | None = None, threads: int | None = None):
        try:
            import openvino as ov
        except ImportError as exc:
            raise BackendError("backend 'openvino' needs the openvino package (pip install openvino)") from exc
        self.tasks = graph.tasks
        core = ov.Core()
        key = hashlib.sha256(f"{weights_key}|{input_hw}|{graph.tasks}|{ov.__version__}|{__version__}"
                             .encode()).hexdigest()[:20]
        xml = (cache_dir or default_cache_dir()) / "openvino" / f"sgdepth_{key}.xml"
        if xml.is_file():
            model = core.read_model(str(xml))
        else:
            example = torch.zeros(1, 3, *input_hw)
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tracing deprecation/tracer notes, not actionable here
                model = ov.convert_model(graph.float().eval(), example_input=example)
            try:
                xml.parent.mkdir(parents=True, exist_ok=True)
                tmp = xml.with_name(xml.stem + f".{os.getpid()}.xml")
                ov.save_model(model, str(tmp), compress_to_fp16=False)
                os.replace(tmp.with_suffix(".bin"), xml.with_suffix(".bin"))
                os.replace(tmp, xml)
            except OSError as exc:  # a read-only cache is not fatal
                LOG.warning("could not cache the OpenVINO model in %s: %s", xml.parent, exc)
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        self.compiled = core.compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """The compiled graph takes one image; a batch runs image by image (on a CPU a batch
        brings no speed-up, it only saves the caller a loop)."""
        parts = []
        for image in batch:
            result = self.request.infer({0: image[None]})
            parts.append([np.array(result[out]) for out in self.compiled.outputs])
        return _name_outputs(self.tasks, [np.concatenate(p) for p in zip(*parts)])
