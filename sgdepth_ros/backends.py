"""Execution backends for the inference graph: PyTorch (CPU/GPU, fp32/fp16/bf16) and OpenVINO (CPU).

Both run the same ``InferenceGraph`` (full-resolution disparity + argmax labels over the 19
trained classes) and take/return numpy arrays, so the predictor does not care which one runs.
Each call names the tasks it wants ("depth", "segmentation" or both): only their decoder tails
run. PyTorch skips the other tail directly; OpenVINO compiles one graph per task set, lazily
on first use, and keeps it.
"""
from __future__ import annotations

import functools
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
from .torch_cuda import MAX_GRAPHS, CudaExecutor

LOG = logging.getLogger(__name__)
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
BACKENDS = ("auto", "torch", "openvino", "tensorrt")
# PyTorch on CUDA: "none" eager kernels, "graphs" CUDA graphs, "compile" torch.compile + CUDA graphs;
# "auto" = "graphs" on CUDA, "none" on the CPU (see TorchBackend)
OPTIMIZE_LEVELS = ("auto", "none", "graphs", "compile")
TASKS = ("depth", "segmentation")


def task_set(tasks) -> tuple[str, ...]:
    """Tasks in canonical order ("depth" before "segmentation"); ValueError unless a non-empty subset of TASKS."""
    tasks = tuple(tasks)
    if not tasks or set(tasks) - set(TASKS):
        raise ValueError(f"tasks must be a non-empty subset of {TASKS}, got {tasks}")
    return tuple(t for t in TASKS if t in tasks)


class BackendError(RuntimeError):
    """A backend cannot run as asked (missing device, package or unsupported precision)."""


class InferenceGraph(nn.Module):
    """SGDepth reduced to what inference needs.

    x [N,3,H,W] normalised → (disparity [N,1,H,W] in (0,1), labels [N,H,W] int64 trainIds);
    the untrained void channel 19 is excluded from the argmax. Only the requested tails run.
    """

    def __init__(self, model: SGDepth, tasks: tuple[str, ...] = TASKS):
        super().__init__()
        self.model = model
        self.tasks = task_set(tasks)

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


def resolve_optimize(optimize: str, device: torch.device) -> str:
    """The PyTorch backend's optimisation level for ``device``: "auto" → "graphs" on CUDA, "none" on the CPU.
    BackendError for an unknown level, or "graphs"/"compile" asked for on the CPU (they are CUDA features here)."""
    if optimize not in OPTIMIZE_LEVELS:
        raise BackendError(f"unknown optimize level {optimize!r}; valid: {', '.join(OPTIMIZE_LEVELS)}")
    if device.type != "cuda":
        if optimize in ("graphs", "compile"):
            raise BackendError(f"optimize {optimize!r} (CUDA graphs / torch.compile) needs a CUDA device; on the CPU "
                               "use 'auto' or 'none' (the CPU runs eager PyTorch or OpenVINO)")
        return "none"
    return "graphs" if optimize == "auto" else optimize


class TorchBackend:
    """PyTorch: eager on the CPU (fp32); on CUDA fp32/fp16/bf16 (weights cast), channels_last, pinned host buffers
    with asynchronous copies and, with ``optimize`` "auto"/"graphs", CUDA graphs (:mod:`sgdepth_ros.torch_cuda`).

    model: the SGDepth network (moved to ``device`` and ``precision`` here); ``run`` builds the
    inference graph of the asked tasks around it (a thin wrapper, no copy of the weights).
    optimize (see :func:`resolve_optimize`): "none" eager kernels; "graphs" each (batch shape, tasks) seen a
    second time is captured as a CUDA graph and replayed (eager when the capture fails or ``max_graphs`` exist);
    "compile" torch.compile's kernels, captured likewise (experimental: the first frames of each shape compile).
    """

    name = "torch"

    def __init__(self, model: SGDepth, device: torch.device, precision: str = "fp32", optimize: str = "none",
                 max_graphs: int = MAX_GRAPHS):
        if precision not in PRECISIONS:
            raise BackendError(f"unknown precision {precision!r}; valid: {sorted(PRECISIONS)}")
        if precision != "fp32" and device.type != "cuda":
            raise BackendError(f"precision {precision} needs a CUDA device; on the CPU use fp32")
        self.optimize = resolve_optimize(optimize, device)
        self.device, self.dtype = device, PRECISIONS[precision]
        self.model = model.to(device=device, dtype=self.dtype).eval()
        self._graphs: dict[tuple[str, ...], InferenceGraph] = {}
        self._cuda: CudaExecutor | None = None
        if device.type == "cuda":
            self.model.to(memory_format=torch.channels_last)
            forward = self._device_forward
            if self.optimize != "none":
                torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest kernels once per shape
            if self.optimize == "compile":
                forward = torch.compile(forward, dynamic=False)
            self._cuda = CudaExecutor(forward, device, graphs=self.optimize != "none", max_graphs=max_graphs)

    def graph(self, tasks) -> InferenceGraph:
        """The inference graph of a task set (made on first use, kept)."""
        tasks = task_set(tasks)
        graph = self._graphs.get(tasks)
        if graph is None:
            graph = self._graphs[tasks] = InferenceGraph(self.model, tasks)
        return graph

    def _device_forward(self, tasks: tuple[str, ...], x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """CUDA: x [N,3,H,W] float32 on the device → (disparity float32, labels uint8: 8× less to copy back)."""
        x = x.to(self.dtype).contiguous(memory_format=torch.channels_last)
        outs = self._graphs[tasks](x)
        return tuple(o.float() if o.is_floating_point() else o.to(torch.uint8) for o in outs)

    @torch.inference_mode()
    def run(self, batch: np.ndarray, tasks=TASKS) -> dict[str, np.ndarray]:
        """batch: [N,3,H,W] float32 normalised → {"disparity": [N,1,H,W] float32, "labels": [N,H,W] integer
        trainIds (int64 on the CPU, uint8 from CUDA)}, the keys of the asked tasks only."""
        tasks = task_set(tasks)
        graph = self.graph(tasks)
        if self._cuda is not None:
            return _name_outputs(tasks, self._cuda.run(batch, tasks))
        outs = graph(torch.from_numpy(batch).to(self.device, self.dtype))
        return _name_outputs(tasks, [o.float().numpy() if o.is_floating_point() else o.numpy() for o in outs])


def _name_outputs(tasks, arrays) -> dict[str, np.ndarray]:
    names = [n for t, n in (("depth", "disparity"), ("segmentation", "labels")) if t in tasks]
    return dict(zip(names, arrays))


def default_cache_dir() -> Path:
    root = os.environ.get("SGDEPTH_ROS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "sgdepth_ros")
    return Path(root)


@functools.lru_cache(maxsize=1)
def openvino_core():
    """The process's one ``openvino.Core`` (OpenVINO's advice: one Core per application). It lives until exit, so
    no compiled graph ever outlives the Core it came from when backends are created and dropped (tests, replays)."""
    import openvino as ov

    return ov.Core()


OPENVINO_PRECISIONS = ("fp32", "bf16", "int8")
_OPENVINO_HINTS = {"fp32": "f32", "bf16": "bf16"}


def cpu_supports_bf16() -> bool:
    """OpenVINO's CPU plugin runs bf16 natively here (AVX-512 BF16 or AMX: its OPTIMIZATION_CAPABILITIES)."""
    return "BF16" in openvino_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def task_subgraph(graph, tasks: tuple[str, ...]):
    """The part of an OpenVINO graph of both tasks (outputs: disparity, labels) that computes ``tasks`` only: a model
    of the asked outputs keeps just the operations they depend on (the other decoder tail is left out)."""
    import openvino as ov

    tasks = task_set(tasks)
    if tasks == TASKS:
        return graph
    keep = [result for result, task in zip(graph.get_results(), TASKS) if task in tasks]
    return ov.Model(keep, graph.get_parameters(), f"sgdepth_{'_'.join(tasks)}")


class OpenVINOBackend:
    """OpenVINO on the CPU: fp32 (``INFERENCE_PRECISION_HINT=f32``: no silent reduced precision), bf16 (the hint
    bf16; only where the CPU runs it natively, refused elsewhere) or int8 (the graphs of a quantised file, see
    :mod:`sgdepth_ros.quantized`; its layers kept out of int8 run in ``rest_precision``; the graph of both tasks,
    from which each task set's graph is cut).

    One compiled graph per task set (depth, segmentation, both), converted and compiled the first
    time a call asks for it and kept for the backend's life. Converted graphs are also cached on
    disk, keyed by the checkpoint's weights, input size, tasks and package versions, so later
    starts skip the conversion. ``graphs`` (int8): {TASKS: the ready graph of both tasks} instead of ``model``.
    """

    name = "openvino"

    def __init__(self, model: SGDepth | None, input_hw: tuple[int, int], weights_key: str = "",
                 cache_dir: Path | None = None, threads: int | None = None, precision: str = "fp32",
                 graphs: dict | None = None, rest_precision: str = "fp32"):
        try:
            import openvino as ov
        except ImportError as exc:
            raise BackendError("backend 'openvino' needs the openvino package (pip install openvino)") from exc
        if precision not in OPENVINO_PRECISIONS:
            raise BackendError(f"backend 'openvino' runs {', '.join(OPENVINO_PRECISIONS)}, not {precision!r}")
        if (precision == "int8") != (graphs is not None):
            raise BackendError("precision int8 runs the graphs of a quantised file (sgdepth-ros quantize); "
                               "a float checkpoint runs fp32 or bf16")
        self._ov = ov
        self.core = openvino_core()
        hint = rest_precision if precision == "int8" else precision
        if hint == "bf16" and not cpu_supports_bf16():
            raise BackendError("precision bf16 on the CPU needs AVX-512 BF16 or AMX, which this CPU lacks "
                               f"(OpenVINO: {', '.join(self.core.get_property('CPU', 'OPTIMIZATION_CAPABILITIES'))})"
                               "; use fp32")
        self.precision = precision
        self.model = model.float().eval() if model is not None else None
        self._graphs = dict(graphs or {})
        self.input_hw = tuple(input_hw)
        self.weights_key = weights_key
        self.cache_dir = (cache_dir or default_cache_dir()) / "openvino"
        self.config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": _OPENVINO_HINTS[hint]}
        if threads:
            self.config["INFERENCE_NUM_THREADS"] = int(threads)
        self._compiled: dict[tuple[str, ...], tuple] = {}  # tasks → (compiled model, infer request)

    def compiled(self, tasks=TASKS):
        """(compiled model, infer request) of a task set, converting and compiling it on first use."""
        tasks = task_set(tasks)
        entry = self._compiled.get(tasks)
        if entry is None:
            compiled = self.core.compile_model(self.graph(tasks), "CPU", self.config)
            entry = self._compiled[tasks] = (compiled, compiled.create_infer_request())
        return entry

    def graph(self, tasks: tuple[str, ...]):
        """The OpenVINO graph (not compiled) of a task set: the quantised file's, or the float network converted
        (from the disk cache when there)."""
        tasks = task_set(tasks)
        if self._graphs:  # a quantised file: its graph of both tasks, cut to the asked outputs
            return task_subgraph(self._graphs[TASKS], tasks)
        ov = self._ov
        key = hashlib.sha256(f"{self.weights_key}|{self.input_hw}|{tasks}|{ov.__version__}|{__version__}"
                             .encode()).hexdigest()[:20]
        xml = self.cache_dir / f"sgdepth_{key}.xml"
        if xml.is_file():
            return self.core.read_model(str(xml))
        example = torch.zeros(1, 3, *self.input_hw)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracing deprecation/tracer notes, not actionable here
            model = ov.convert_model(InferenceGraph(self.model, tasks).eval(), example_input=example)
        try:
            xml.parent.mkdir(parents=True, exist_ok=True)
            tmp = xml.with_name(xml.stem + f".{os.getpid()}.xml")
            ov.save_model(model, str(tmp), compress_to_fp16=False)
            os.replace(tmp.with_suffix(".bin"), xml.with_suffix(".bin"))
            os.replace(tmp, xml)
        except OSError as exc:  # a read-only cache is not fatal
            LOG.warning("could not cache the OpenVINO model in %s: %s", xml.parent, exc)
        return model

    def run(self, batch: np.ndarray, tasks=TASKS) -> dict[str, np.ndarray]:
        """As :meth:`TorchBackend.run`. The compiled graph takes one image; a batch runs image by image
        (on a CPU a batch brings no speed-up, it only saves the caller a loop)."""
        tasks = task_set(tasks)
        compiled, request = self.compiled(tasks)
        parts = []
        for image in batch:
            result = request.infer({0: image[None]})
            parts.append([np.array(result[out]) for out in compiled.outputs])
        return _name_outputs(tasks, [np.concatenate(p) for p in zip(*parts)])

    def close(self) -> None:
        """Release the compiled graphs, each infer request before its compiled model (also on garbage collection)."""
        graphs = getattr(self, "_compiled", {})  # absent when __init__ failed early
        while graphs:
            _, (compiled, request) = graphs.popitem()
            del request, compiled

    def __del__(self):
        self.close()
