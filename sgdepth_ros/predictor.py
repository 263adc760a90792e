"""ROS-free predictor: RGB image(s) in, depth + semantic labels out.

    predictor = Predictor("model.safetensors")          # or the reference model.pth
    pred = predictor.predict(rgb)                        # rgb: HxWx3 uint8
    pred.depth, pred.labels, pred.timings

Nothing here imports rclpy; the ROS node and the CLI are thin adapters over this class.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .backends import (BACKENDS, BackendError, InferenceGraph, OpenVINOBackend, TorchBackend,
                       resolve_device)
from .model import load_checkpoint
from .model.checkpoint import file_sha256
from .postprocess import disparity_to_depth, resize_bilinear, resize_labels
from .preprocess import as_rgb8, normalize, resize_rgb

LOG = logging.getLogger(__name__)
OUTPUT_RESOLUTIONS = ("network", "input")
TASKS = ("depth", "segmentation")


@dataclass
class Prediction:
    """One image's result.

    depth: HxW float32 — metres when ``is_metric`` (a scale factor was applied), else model units
        (SGDepth's relative depth in (0.1, 100), correct only up to an unknown scale).
    disparity: HxW float32 — the network's normalised disparity in (0, 1) (near = large).
    labels: HxW uint8 Cityscapes trainIds 0..18, or None when segmentation was not run.
    image: HxWx3 uint8 RGB input at the output resolution (ready for overlays).
    timings: milliseconds per stage (preprocess, forward, postprocess) for this call; a batched
        call reports the whole batch's times on each of its predictions.
    """

    depth: np.ndarray | None
    disparity: np.ndarray | None
    labels: np.ndarray | None
    is_metric: bool
    image: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)


class Predictor:
    """Runs an SGDepth checkpoint on RGB images.

    Args:
        checkpoint_path: our ``.safetensors`` file or a reference SGDepth ``model.pth``.
        device: "auto" (CUDA if available, else CPU with a warning), "cpu", "cuda", "cuda:N".
        precision: "fp32", or "fp16"/"bf16" on CUDA.
        input_size: network input (width, height), multiples of 32; default from the checkpoint
            metadata (640×192 for the released models).
        backend: "auto" (OpenVINO on CPU when installed, else PyTorch), "torch", "openvino".
        tasks: subset of ("depth", "segmentation"); the other decoder tail is skipped.
        output_resolution: "network" (input_size) or "input" (the size of each given image).
        scale_factor: metres per model unit; None takes the checkpoint metadata's factor when
            ``checkpoint_scale`` is true and there is one, else keeps relative depth.
        checkpoint_scale: False ignores the checkpoint's scale (relative depth unless
            ``scale_factor`` is given).
        threads: CPU threads for the OpenVINO backend (default: its own choice).
    """

    def __init__(self, checkpoint_path: str | Path, device: str = "auto", precision: str = "fp32",
                 input_size: tuple[int, int] | None = None, backend: str = "auto",
                 tasks: tuple[str, ...] = TASKS, output_resolution: str = "network",
                 scale_factor: float | None = None, threads: int | None = None,
                 checkpoint_scale: bool = True):
        if output_resolution not in OUTPUT_RESOLUTIONS:
            raise ValueError(f"output_resolution must be one of {OUTPUT_RESOLUTIONS}, got {output_resolution!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        tasks = tuple(tasks)
        if not tasks or set(tasks) - set(TASKS):
            raise ValueError(f"tasks must be a non-empty subset of {TASKS}, got {tasks}")
        self.device = resolve_device(device)
        model = load_checkpoint(checkpoint_path)
        self.metadata = model.metadata
        size = input_size or (self.metadata["input_size"]["width"], self.metadata["input_size"]["height"])
        self.input_size = (int(size[0]), int(size[1]))
        if self.input_size[0] % 32 or self.input_size[1] % 32 or min(self.input_size) <= 0:
            raise ValueError(f"input_size must be positive multiples of 32 (width, height), got {self.input_size}")
        self.min_depth = float(self.metadata.get("min_depth", 0.1))
        self.max_depth = float(self.metadata.get("max_depth", 100.0))
        if scale_factor is None and checkpoint_scale:
            scale_factor = (self.metadata.get("scale") or {}).get("factor")
        if scale_factor is not None and not (np.isfinite(scale_factor) and scale_factor > 0):
            raise ValueError(f"scale_factor must be a positive finite number, got {scale_factor}")
        self.scale_factor = scale_factor
        self.output_resolution = output_resolution
        self.tasks = tasks
        self.trained = bool(self.metadata.get("trained", True))
        graph = InferenceGraph(model, tasks)
        if backend == "auto":
            backend = "openvino" if self.device.type == "cpu" and precision == "fp32" and _has_openvino() else "torch"
        if backend == "openvino":
            if self.device.type != "cpu":
                raise BackendError("backend 'openvino' runs on the CPU only; use backend 'torch' for CUDA")
            if precision != "fp32":
                raise BackendError("backend 'openvino' runs fp32 only")
            self.backend = OpenVINOBackend(graph, (self.input_size[1], self.input_size[0]),
                                           weights_key=file_sha256(checkpoint_path), threads=threads)
        else:
            self.backend = TorchBackend(graph, self.device, precision)
        self.precision = precision
        LOG.info("predictor: %s on %s (%s), input %dx%d, tasks %s", self.backend.name, self.device,
                 precision, *self.input_size, ",".join(tasks))

    @property
    def is_metric(self) -> bool:
        return self.scale_factor is not None

    def describe(self) -> str:
        """One line saying what runs (backend, device, size, scale, weights provenance)."""
        prov = self.metadata.get("provenance", {})
        scale = f"metric, ×{self.scale_factor:g} m/unit" if self.is_metric else "relative (model units)"
        trained = "" if self.trained else " — UNTRAINED weights"
        return (f"{self.backend.name}/{self.device}/{self.precision}, input {self.input_size[0]}x{self.input_size[1]}, "
                f"depth {scale}, weights: {prov.get('source', 'unknown')}{trained}")

    def predict(self, rgb: np.ndarray, output_resolution: str | None = None) -> Prediction:
        """rgb: HxWx3 uint8 RGB (grey, RGBA and 16-bit are converted) → Prediction."""
        return self.predict_batch([rgb], output_resolution)[0]

    def predict_batch(self, rgbs: list[np.ndarray], output_resolution: str | None = None) -> list[Prediction]:
        """Several images (e.g. one per camera, any sizes) in one forward pass → one Prediction each."""
        if not rgbs:
            return []
        resolution = output_resolution or self.output_resolution
        if resolution not in OUTPUT_RESOLUTIONS:
            raise ValueError(f"output_resolution must be one of {OUTPUT_RESOLUTIONS}, got {resolution!r}")
        t0 = time.perf_counter()
        images = [as_rgb8(img) for img in rgbs]
        resized = [resize_rgb(img, self.input_size) for img in images]
        batch = normalize(resized)
        t1 = time.perf_counter()
        outputs = self.backend.run(batch)
        t2 = time.perf_counter()
        predictions = []
        for i, image in enumerate(images):
            size = (image.shape[1], image.shape[0]) if resolution == "input" else self.input_size
            disp = depth = labels = None
            if "disparity" in outputs:
                disp = resize_bilinear(outputs["disparity"][i, 0], size)
                depth = disparity_to_depth(disp, self.min_depth, self.max_depth)
                if self.scale_factor is not None:
                    depth *= np.float32(self.scale_factor)
            if "labels" in outputs:
                labels = resize_labels(outputs["labels"][i].astype(np.uint8), size)
            predictions.append(Prediction(depth, disp, labels, self.is_metric,
                                          image if resolution == "input" else resized[i]))
        t3 = time.perf_counter()
        timings = {"preprocess": (t1 - t0) * 1e3, "forward": (t2 - t1) * 1e3, "postprocess": (t3 - t2) * 1e3}
        for p in predictions:
            p.timings = dict(timings)
        return predictions


def _has_openvino() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True
