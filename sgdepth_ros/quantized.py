"""Reduced-precision model files: the OpenVINO graphs of a quantised checkpoint in one safetensors file.

``sgdepth-ros quantize`` writes such a file; :class:`sgdepth_ros.Predictor`, the node and replay load it like any
checkpoint (it runs on the CPU with OpenVINO). It holds the graph of both tasks (depth+segmentation; the backend cuts
the depth-only and segmentation-only graphs from it, so only the asked decoder tails run, as for a float checkpoint)
as its OpenVINO IR: the XML text in the safetensors metadata ``openvino/depth+segmentation.xml`` and the weights blob
as the uint8 tensor ``openvino/depth+segmentation``. The usual ``sgdepth_ros``
metadata document (input size, depth range, scale, provenance) carries a ``quantization`` object: ``precision``
("int8"), ``rest_precision`` (what the layers kept out of int8 run in: "fp32" or "bf16"), the source checkpoint's
name and sha256, the calibration set, the layers kept in higher precision, the NNCF and OpenVINO versions and the
accuracy gate as measured when the file was written. Reading never executes code (safetensors + XML graphs).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .atomic_file import atomic_write
from .model.checkpoint import METADATA_KEY, CheckpointError, validate_metadata

GRAPH_PREFIX = "openvino/"
QUANTIZED_PRECISIONS = ("int8",)
REST_PRECISIONS = ("fp32", "bf16")


def _task_key(tasks: tuple[str, ...]) -> str:
    return GRAPH_PREFIX + "+".join(tasks)


def _header_metadata(path: Path) -> dict:
    """The safetensors metadata strings of ``path`` ({} for a file that is not safetensors or has none)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            return dict(f.metadata() or {})
    except Exception:
        return {}


def is_quantized_file(path: str | os.PathLike) -> bool:
    """True for a file written by :func:`save_quantized` (only the header is read)."""
    path = Path(path)
    if not path.is_file():
        return False
    raw = _header_metadata(path).get(METADATA_KEY)
    try:
        return raw is not None and isinstance(json.loads(raw).get("quantization"), dict)
    except (json.JSONDecodeError, AttributeError):
        return False


def save_quantized(path: str | os.PathLike, metadata: dict, graphs: dict) -> Path:
    """Write ``graphs`` ({("depth", "segmentation"): openvino.Model}) and ``metadata`` (a checkpoint metadata document with a
    ``quantization`` object) to ``path`` atomically; the metadata is validated as loading would."""
    import openvino as ov
    from safetensors.numpy import save

    path = Path(path)
    meta = validate_metadata(metadata, path)
    quantization = meta.get("quantization")
    if not isinstance(quantization, dict) or quantization.get("precision") not in QUANTIZED_PRECISIONS:
        raise ValueError(f"{path}: metadata needs a quantization object with precision one of {QUANTIZED_PRECISIONS}")
    tensors, strings = {}, {METADATA_KEY: json.dumps(meta)}
    with tempfile.TemporaryDirectory(prefix="sgdepth-quantized-") as tmp:
        for tasks, model in graphs.items():
            xml = Path(tmp) / f"{'_'.join(tasks)}.xml"
            ov.save_model(model, str(xml), compress_to_fp16=False)
            strings[_task_key(tasks) + ".xml"] = xml.read_text()
            tensors[_task_key(tasks)] = np.fromfile(xml.with_suffix(".bin"), np.uint8)
    payload = save(tensors, metadata=strings)
    return atomic_write(path, lambda handle: handle.write(payload))


def read_quantized(path: str | os.PathLike) -> tuple[dict, dict]:
    """→ (validated metadata, {tasks tuple: openvino.Model}); CheckpointError naming the file when it is not one."""
    import openvino as ov
    from safetensors import safe_open

    from .backends import TASKS, openvino_core, task_set

    path = Path(path)
    if not is_quantized_file(path):
        raise CheckpointError(f"{path}: not a quantised sgdepth_ros file (write one with `sgdepth-ros quantize`)")
    try:
        with safe_open(str(path), framework="numpy") as f:
            strings = f.metadata()
            meta = validate_metadata(json.loads(strings[METADATA_KEY]), path)
            graphs = {}
            for key in f.keys():
                if not key.startswith(GRAPH_PREFIX):
                    continue
                tasks = task_set(key[len(GRAPH_PREFIX):].split("+"))
                weights = f.get_tensor(key)
                graphs[tasks] = openvino_core().read_model(model=strings[key + ".xml"], weights=ov.Tensor(weights))
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable quantised file ({type(exc).__name__}: {exc})") from exc
    quantization = meta["quantization"]
    if quantization.get("precision") not in QUANTIZED_PRECISIONS or quantization.get("rest_precision",
                                                                                       "fp32") not in REST_PRECISIONS:
        raise CheckpointError(f"{path}: refused: quantization.precision must be one of {QUANTIZED_PRECISIONS} and "
                              f"rest_precision one of {REST_PRECISIONS}")
    if set(graphs) != {TASKS}:
        raise CheckpointError(f"{path}: must hold exactly the graph of depth+segmentation")
    return meta, graphs
