"""TensorRT backend (CUDA): an engine built from the ONNX export, cached on disk.

UNTESTED ON REAL HARDWARE HERE: the project's machines have no TensorRT. What the tests cover on the CPU is the
fallback (no ``tensorrt`` module: the predictor runs PyTorch, with one log line) and the engine cache key. The code
follows TensorRT's name-based tensor API (TensorRT ≥ 8.5: ``set_input_shape``, ``set_tensor_address``,
``execute_async_v3``), with torch CUDA tensors as the engine's input and output buffers.

One engine per task set, built the first time a call asks for it: the inference graph is exported to ONNX
(:func:`sgdepth_ros.onnx_export.export_onnx`, dynamic batch), parsed and built with an optimisation profile for
batches 1..``max_batch`` at the fixed input size. The serialized engine is cached under
``<cache>/tensorrt/`` (``SGDEPTH_ROS_CACHE``, default ``~/.cache/sgdepth_ros``), keyed by the weights, input size,
tasks, precision, batch range, ONNX opset, TensorRT version and GPU (:func:`engine_cache_key`): engines are
specific to a TensorRT version and a GPU, so any change builds a new one.

Precisions: fp32 and fp16 (``BuilderFlag.FP16``: TensorRT picks fp16 kernels where they are faster). int8 is not
implemented: it needs the calibration images and the accuracy gate of the quantisation work, which are not wired
to this backend yet, so it is refused with a clear error rather than run unchecked.
"""
from __future__ import annotations

import hashlib
import importlib
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .backends import TASKS, BackendError, _name_outputs, default_cache_dir, task_set
from .model import SGDepth
from .onnx_export import DEFAULT_OPSET, INPUT_NAME, export_onnx, output_names

LOG = logging.getLogger(__name__)
TRT_PRECISIONS = ("fp32", "fp16")
MAX_BATCH = 16  # the most cameras one node serves (sgdepth_ros.ros.params.MAX_CAMERAS)
WORKSPACE_BYTES = 1 << 30


def tensorrt_import_error() -> str | None:
    """None when the ``tensorrt`` module imports, else why not (one line)."""
    try:
        importlib.import_module("tensorrt")
    except Exception as exc:  # noqa: BLE001 — ImportError, or a broken install raising anything at import
        return f"{type(exc).__name__}: {exc}"
    return None


def engine_cache_key(weights_key: str, input_hw: tuple[int, int], tasks, precision: str, max_batch: int,
                     trt_version: str, gpu: str, opset: int = DEFAULT_OPSET) -> str:
    """20 hex digits naming one engine: the same inputs give the same key, any change another."""
    fields = (weights_key, tuple(int(v) for v in input_hw), task_set(tasks), precision, int(max_batch), opset,
              trt_version, gpu, __version__)
    return hashlib.sha256(repr(fields).encode()).hexdigest()[:20]


def gpu_identity(device: torch.device) -> str:
    """The GPU an engine is built for: name and compute capability."""
    major, minor = torch.cuda.get_device_capability(device)
    return f"{torch.cuda.get_device_name(device)} sm_{major}{minor}"


class TensorRTBackend:
    """TensorRT engines on one CUDA device; ``run`` as :meth:`sgdepth_ros.backends.TorchBackend.run`.

    model: the SGDepth network (kept as an fp32 CPU copy for exporting other task sets later);
    input_hw: (H, W) of the network input; weights_key: identifies the weights (the checkpoint's SHA-256).
    """

    name = "tensorrt"

    def __init__(self, model: SGDepth, input_hw: tuple[int, int], device: torch.device, precision: str = "fp16",
                 weights_key: str = "", cache_dir: Path | None = None, max_batch: int = MAX_BATCH):
        if precision == "int8":
            raise BackendError("backend 'tensorrt' int8 is not implemented yet (it needs the calibration images "
                               "and accuracy gate of the int8 work wired to TensorRT); use fp16")
        if precision not in TRT_PRECISIONS:
            raise BackendError(f"backend 'tensorrt' runs {' or '.join(TRT_PRECISIONS)}, not {precision!r}")
        if device.type != "cuda":
            raise BackendError("backend 'tensorrt' needs a CUDA device; on the CPU use 'openvino' or 'torch'")
        if max_batch < 1:
            raise BackendError(f"max_batch must be ≥ 1, got {max_batch}")
        try:
            import tensorrt as trt
        except ImportError as exc:
            raise BackendError("backend 'tensorrt' needs the tensorrt Python package (from your TensorRT or "
                               "JetPack install)") from exc
        self._trt = trt
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.model = model.to("cpu", torch.float32).eval()
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self.device, self.precision, self.max_batch = device, precision, int(max_batch)
        self.weights_key = weights_key
        self.cache_dir = (cache_dir or default_cache_dir()) / "tensorrt"
        self._engines: dict[tuple[str, ...], tuple] = {}  # tasks → (engine, execution context)

    def engine_path(self, tasks) -> Path:
        key = engine_cache_key(self.weights_key, self.input_hw, tasks, self.precision, self.max_batch,
                               self._trt.__version__, gpu_identity(self.device))
        return self.cache_dir / f"sgdepth_{key}.engine"

    def engine(self, tasks=TASKS):
        """(engine, execution context) of a task set: from the disk cache, else built now (and cached)."""
        tasks = task_set(tasks)
        entry = self._engines.get(tasks)
        if entry is None:
            path = self.engine_path(tasks)
            data = path.read_bytes() if path.is_file() else self._build(tasks, path)
            with torch.cuda.device(self.device):
                engine = self._runtime.deserialize_cuda_engine(data)
                if engine is None:
                    raise BackendError(f"TensorRT could not load the engine {path} (delete it to rebuild)")
                entry = self._engines[tasks] = (engine, engine.create_execution_context())
        return entry

    def _build(self, tasks: tuple[str, ...], path: Path) -> bytes:
        trt = self._trt
        LOG.warning("building a TensorRT %s engine for tasks %s (once; cached in %s) …", self.precision,
                    ",".join(tasks), path.parent)
        with tempfile.TemporaryDirectory() as tmp:
            onnx_path = export_onnx(self.model, Path(tmp) / "sgdepth.onnx", self.input_hw, tasks, dynamic_batch=True)
            onnx_bytes = onnx_path.read_bytes()
        builder = trt.Builder(self._logger)
        explicit = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)
        flags = 1 << int(explicit) if explicit is not None and int(trt.__version__.split(".")[0]) < 10 else 0
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse(onnx_bytes):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise BackendError(f"TensorRT could not parse the ONNX export: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
        if self.precision == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
        h, w = self.input_hw
        profile = builder.create_optimization_profile()
        profile.set_shape(INPUT_NAME, (1, 3, h, w), (min(4, self.max_batch), 3, h, w), (self.max_batch, 3, h, w))
        config.add_optimization_profile(profile)
        with torch.cuda.device(self.device):
            serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise BackendError("TensorRT could not build the engine (its log above says why)")
        data = bytes(serialized)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp_path = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            tmp_path.write_bytes(data)
            os.replace(tmp_path, path)
        except OSError as exc:  # a read-only cache is not fatal
            LOG.warning("could not cache the TensorRT engine in %s: %s", path.parent, exc)
        return data

    def _torch_dtype(self, trt_dtype) -> torch.dtype:
        trt = self._trt
        table = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32,
                 trt.int8: torch.int8, trt.bool: torch.bool}
        if hasattr(trt, "int64"):
            table[trt.int64] = torch.int64
        if trt_dtype not in table:
            raise BackendError(f"TensorRT output type {trt_dtype} is not handled")
        return table[trt_dtype]

    @torch.inference_mode()
    def run(self, batch: np.ndarray, tasks=TASKS) -> dict[str, np.ndarray]:
        """As :meth:`sgdepth_ros.backends.TorchBackend.run` (labels int32); batches above ``max_batch`` run in
        chunks."""
        tasks = task_set(tasks)
        engine, context = self.engine(tasks)
        names = output_names(tasks)
        parts = []
        for start in range(0, len(batch), self.max_batch):
            chunk = np.ascontiguousarray(batch[start:start + self.max_batch], dtype=np.float32)
            with torch.cuda.device(self.device):
                x = torch.from_numpy(chunk).to(self.device)
                context.set_input_shape(INPUT_NAME, tuple(x.shape))
                context.set_tensor_address(INPUT_NAME, x.data_ptr())
                outs = []
                for name in names:
                    out = torch.empty(tuple(context.get_tensor_shape(name)),
                                      dtype=self._torch_dtype(engine.get_tensor_dtype(name)), device=self.device)
                    context.set_tensor_address(name, out.data_ptr())
                    outs.append(out)
                if not context.execute_async_v3(torch.cuda.current_stream(self.device).cuda_stream):
                    raise BackendError("TensorRT execution failed (its log above says why)")
                parts.append([o.float().cpu().numpy() if o.is_floating_point() else o.cpu().numpy() for o in outs])
        return _name_outputs(tasks, [np.concatenate(p) for p in zip(*parts)])
