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
import torch

from .backends import (BACKENDS, TASKS, BackendError, OpenVINOBackend, TorchBackend, resolve_device, resolve_optimize,
                       task_set)
from .ego_motion import DEFAULT_MAX_GAP_S, EgoMotion
from .model import CheckpointError, load_checkpoint
from .model.checkpoint import MAX_INPUT_PIXELS, MAX_INPUT_SIDE, file_sha256
from .pinhole import rescale_matrix
from .quantized import is_quantized_file, read_quantized
from .postprocess import disparity_to_depth, resize_bilinear, resize_labels
from .preprocess import as_rgb8, normalize, resize_rgb
from .scale import DEFAULT_SCALE_MODE, ScaleSource, resolve_scale

LOG = logging.getLogger(__name__)
OUTPUT_RESOLUTIONS = ("network", "input")


@dataclass
class Prediction:
    """One image's result.

    depth: HxW float32 — metres when ``is_metric`` (a scale factor was applied), else model units
        (SGDepth's relative depth in (0.1, 100), correct only up to an unknown scale); None when the
        depth task was not run.
    disparity: HxW float32 — the network's normalised disparity in (0, 1) (near = large), or None.
    labels: HxW uint8 Cityscapes trainIds 0..18, or None when segmentation was not run.
    image: HxWx3 uint8 RGB input at the output resolution (ready for overlays).
    timings: milliseconds per stage (preprocess, forward, postprocess) for this call; a batched
        call reports the whole batch's times on each of its predictions.
    scale: metres per model unit applied to ``depth`` (None: relative depth). With scale_mode
        ``camera_height`` it is the filtered estimate after this frame, so ``is_metric`` can be False on the
        first frames or while no road is in view.
    network_input: [3,H,W] float32, the normalised network input of this image, kept only by a predictor made
        with ``ego_motion=True`` (what :class:`sgdepth_ros.ego_motion.EgoMotion` feeds the pose net), else None.
    """

    depth: np.ndarray | None
    disparity: np.ndarray | None
    labels: np.ndarray | None
    is_metric: bool
    image: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)
    scale: float | None = None
    network_input: np.ndarray | None = None


class Predictor:
    """Runs an SGDepth checkpoint on RGB images.

    Args:
        checkpoint_path: our ``.safetensors`` file or a reference SGDepth ``model.pth``.
        device: "auto" (CUDA if available, else CPU with a warning), "cpu", "cuda", "cuda:N".
        precision: "fp32"; "fp16"/"bf16" on CUDA; "bf16" on a CPU with native bf16 (OpenVINO, refused elsewhere);
            a quantised file (``sgdepth-ros quantize``) runs "int8", OpenVINO on the CPU (asked "fp32" or "int8").
        input_size: network input (width, height), multiples of 32; default from the checkpoint
            metadata (640×192 for the released models).
        backend: "auto" (OpenVINO on CPU when installed, else PyTorch), "torch", "openvino", "tensorrt" (CUDA,
            fp32/fp16, untested on real hardware here; without the ``tensorrt`` module: PyTorch, with one log line).
        tasks: the tasks a call runs when it does not name its own: a non-empty subset of
            ("depth", "segmentation"). Only the asked decoder tails run.
        output_resolution: "network" (input_size) or "input" (the size of each given image).
        scale_mode: "auto" (default: ``scale_factor``, else the checkpoint's stored factor, else
            relative), "fixed" (``scale_factor`` or the checkpoint's, else an error), "relative";
            see :mod:`sgdepth_ros.scale`.
        scale_factor: metres per model unit; None or 0 = not given.
        camera_height: metres from the camera down to the road, for scale_mode "camera_height" (the scale is then
            measured on every frame that is given its ``intrinsics``).
        threads: CPU threads for the OpenVINO backend (default: its own choice).
        ego_motion: keep the checkpoint's pose net (fp32, on ``device``) for :meth:`relative_pose` and
            :meth:`ego_motion_tracker`; a checkpoint without one is then an error. Off: the pose net is dropped.
        optimize: PyTorch on CUDA: "auto" (the default: CUDA graphs on CUDA, verified on an H200 by
            scripts/gpu_check.sh, docs/benchmarks.md; eager on the CPU), "none" (eager everywhere), "graphs" (a CUDA
            graph per batch shape and task set, replayed), "compile" (torch.compile + graphs; experimental, slow first
            frames); "graphs"/"compile" are refused on the CPU (see :class:`sgdepth_ros.backends.TorchBackend`).
    """

    def __init__(self, checkpoint_path: str | Path, device: str = "auto", precision: str = "fp32",
                 input_size: tuple[int, int] | None = None, backend: str = "auto",
                 tasks: tuple[str, ...] = TASKS, output_resolution: str = "network",
                 scale_factor: float | None = None, threads: int | None = None,
                 scale_mode: str = DEFAULT_SCALE_MODE, camera_height: float | None = None,
                 ego_motion: bool = False, optimize: str = "auto"):
        if output_resolution not in OUTPUT_RESOLUTIONS:
            raise ValueError(f"output_resolution must be one of {OUTPUT_RESOLUTIONS}, got {output_resolution!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        tasks = task_set(tasks)
        if input_size is not None:
            _check_input_size(input_size)
        self.device = resolve_device(device)
        resolve_optimize(optimize, self.device)  # a bad level, or graphs/compile on the CPU, fails before loading
        model, graphs, self.metadata = _load(checkpoint_path, ego_motion)  # metadata validated at load
        if graphs is not None:  # a quantised file: int8 graphs for OpenVINO on the CPU, nothing else
            backend, precision = _quantized_backend(checkpoint_path, backend, self.device, precision)
            if input_size is not None and tuple(input_size) != (self.metadata["input_size"]["width"],
                                                                self.metadata["input_size"]["height"]):
                raise ValueError(f"{checkpoint_path}: a quantised file runs at its own input size "
                                 f"{self.metadata['input_size']['width']}x{self.metadata['input_size']['height']}; "
                                 f"quantize the source checkpoint at {input_size[0]}x{input_size[1]} for that size")
        elif precision == "int8":
            raise BackendError(f"{checkpoint_path}: precision int8 runs a quantised file: write one with "
                               "`sgdepth-ros quantize CHECKPOINT -o OUT.safetensors` and load that")
        size = input_size or (self.metadata["input_size"]["width"], self.metadata["input_size"]["height"])
        self.input_size = (int(size[0]), int(size[1]))
        self.min_depth = float(self.metadata["min_depth"])
        self.max_depth = float(self.metadata["max_depth"])
        self.scale: ScaleSource = resolve_scale(scale_mode, scale_factor, self.metadata, str(checkpoint_path),
                                                   camera_height)
        self.output_resolution = output_resolution
        self.tasks = tasks
        self.trained = bool(self.metadata.get("trained", True))
        if backend == "tensorrt":
            backend = _tensorrt_or_torch()
        if backend == "auto":
            backend = ("openvino" if self.device.type == "cpu" and precision in ("fp32", "bf16") and _has_openvino()
                       else "torch")
        if backend == "openvino":
            if self.device.type != "cpu":
                raise BackendError("backend 'openvino' runs on the CPU only; use backend 'torch' for CUDA")
            quantization = self.metadata.get("quantization") or {}
            self.backend = OpenVINOBackend(model, (self.input_size[1], self.input_size[0]),
                                           weights_key=file_sha256(checkpoint_path), threads=threads,
                                           precision=precision, graphs=graphs,
                                           rest_precision=quantization.get("rest_precision", "fp32"))
            self.backend.compiled(tasks)  # the default task set compiles now; others on first use
        elif backend == "tensorrt":
            from .tensorrt_backend import TensorRTBackend

            self.backend = TensorRTBackend(model, (self.input_size[1], self.input_size[0]), self.device, precision,
                                           weights_key=file_sha256(checkpoint_path))
            self.backend.engine(tasks)  # the default task set builds (or loads) now; others on first use
        else:
            self.backend = TorchBackend(model, self.device, precision, optimize)
        self.precision = precision
        self.pose_net = model.pose.to(self.device, torch.float32).eval() if ego_motion else None
        LOG.info("predictor: %s on %s (%s), input %dx%d, tasks %s", self.backend.name, self.device,
                 precision, *self.input_size, ",".join(tasks))

    @property
    def is_metric(self) -> bool:
        """Depth comes out in metres (the scale source is metric)."""
        return self.scale.is_metric

    @property
    def scale_factor(self) -> float | None:
        """Metres per model unit of a constant scale source, else None."""
        return self.scale.factor()

    def relative_pose(self, previous: np.ndarray, current: np.ndarray) -> np.ndarray:
        """The pose net on normalised network inputs previous, current: [N,3,H,W] (see ``Prediction.network_input``)
        → [N,4,4] float64 T(previous ← current) (camera(t) → camera(t−1)), translation in model units."""
        if self.pose_net is None:
            raise RuntimeError("this predictor was made without ego_motion=True: it holds no pose network")
        with torch.inference_mode():
            a = torch.from_numpy(np.ascontiguousarray(previous, np.float32)).to(self.device)
            b = torch.from_numpy(np.ascontiguousarray(current, np.float32)).to(self.device)
            return self.pose_net(a, b, invert=False).double().cpu().numpy()

    def ego_motion_tracker(self, max_gap_s: float = DEFAULT_MAX_GAP_S) -> EgoMotion:
        """A new per-camera :class:`~sgdepth_ros.ego_motion.EgoMotion` running this predictor's pose net."""
        if self.pose_net is None:
            raise RuntimeError("this predictor was made without ego_motion=True: it holds no pose network")
        return EgoMotion(self.relative_pose, max_gap_s)

    def describe(self) -> str:
        """One line saying what runs (backend, device, size, scale, weights provenance)."""
        prov = self.metadata.get("provenance", {})
        trained = "" if self.trained else " — UNTRAINED weights"
        return (f"{self.backend.name}/{self.device}/{self.precision}, input {self.input_size[0]}x{self.input_size[1]}, "
                f"depth {self.scale.describe()}, weights: {prov.get('source', 'unknown')}{trained}")

    def predict(self, rgb: np.ndarray, output_resolution: str | None = None,
                tasks: tuple[str, ...] | None = None, intrinsics: np.ndarray | None = None,
                scale: ScaleSource | None = None) -> Prediction:
        """rgb: HxWx3 uint8 RGB (grey, RGBA and 16-bit are converted) → Prediction.

        tasks: what to compute for this call (default: the constructor's ``tasks``); a task left out
        is not run and its fields are None (depth/disparity, or labels).
        intrinsics: 3×3 camera matrix of ``rgb`` (P[:3, :3] of a rectified camera), for a scale source that
        measures (``camera_height``); rescaled here to the output size. scale: this camera's own scale source
        (per-camera state), instead of the predictor's.
        """
        return self.predict_batch([rgb], output_resolution, tasks,
                                  None if intrinsics is None else [intrinsics], None if scale is None else [scale])[0]

    def predict_batch(self, rgbs: list[np.ndarray], output_resolution: str | None = None,
                      tasks: tuple[str, ...] | None = None, intrinsics: list | None = None,
                      scales: list[ScaleSource] | None = None) -> list[Prediction]:
        """Several images (e.g. one per camera, any sizes) in one forward pass → one Prediction each.
        intrinsics / scales: one per image (entries may be None), as for :meth:`predict`."""
        if not rgbs:
            return []
        intrinsics = intrinsics or [None] * len(rgbs)
        scales = [s or self.scale for s in (scales or [None] * len(rgbs))]
        if len(intrinsics) != len(rgbs) or len(scales) != len(rgbs):
            raise ValueError(f"{len(rgbs)} images need as many intrinsics and scale sources")
        resolution = output_resolution or self.output_resolution
        if resolution not in OUTPUT_RESOLUTIONS:
            raise ValueError(f"output_resolution must be one of {OUTPUT_RESOLUTIONS}, got {resolution!r}")
        wanted = task_set(self.tasks if tasks is None else tasks)
        needed = set().union(*(s.required_tasks for s in scales)) if "depth" in wanted else set()
        run = task_set(set(wanted) | needed)
        t0 = time.perf_counter()
        images = [as_rgb8(img) for img in rgbs]
        resized = [resize_rgb(img, self.input_size) for img in images]
        batch = normalize(resized)
        t1 = time.perf_counter()
        outputs = self.backend.run(batch, run)
        t2 = time.perf_counter()
        predictions = []
        for i, image in enumerate(images):
            size = (image.shape[1], image.shape[0]) if resolution == "input" else self.input_size
            disp = depth = labels = None
            if "labels" in outputs:
                labels = resize_labels(outputs["labels"][i].astype(np.uint8), size)
            if "disparity" in outputs:
                disp = resize_bilinear(outputs["disparity"][i, 0], size)
                depth = disparity_to_depth(disp, self.min_depth, self.max_depth)
                K = intrinsics[i]
                if K is not None:
                    K = rescale_matrix(np.asarray(K, np.float64)[:3, :3], (image.shape[1], image.shape[0]), size)
                factor = scales[i].factor(depth, labels, K)
                if factor is not None:
                    depth *= np.float32(factor)
            else:
                factor = None
            predictions.append(Prediction(depth, disp, labels if "segmentation" in wanted else None,
                                          factor is not None, image if resolution == "input" else resized[i],
                                          scale=factor,
                                          network_input=batch[i].copy() if self.pose_net is not None else None))
        t3 = time.perf_counter()
        timings = {"preprocess": (t1 - t0) * 1e3, "forward": (t2 - t1) * 1e3, "postprocess": (t3 - t2) * 1e3}
        for p in predictions:
            p.timings = dict(timings)
        return predictions


def _load(path, ego_motion: bool):
    """→ (SGDepth or None, the quantised graphs or None, metadata) of a float checkpoint or a quantised file."""
    if is_quantized_file(path):
        if ego_motion:
            raise CheckpointError(f"{path}: a quantised file holds no pose network; ego-motion needs the source "
                                  "checkpoint written with --keep-pose")
        metadata, graphs = read_quantized(path)
        return None, graphs, metadata
    model = load_checkpoint(path)
    if ego_motion and model.pose is None:
        raise CheckpointError(f"{path}: ego-motion needs the pose network, which this checkpoint does not hold "
                              "(inference files drop it); use the released SGDepth model.pth or a file written with "
                              "`sgdepth-ros export --keep-pose` / `sgdepth-ros convert --keep-pose`")
    if not ego_motion:
        model.pose = None  # not needed: no memory for it on the device
    return model, None, model.metadata


def _quantized_backend(path, backend: str, device, precision: str) -> tuple[str, str]:
    """The backend and precision a quantised file runs with (OpenVINO, int8); BackendError for anything else."""
    if backend not in ("auto", "openvino") or device.type != "cpu" or precision not in ("fp32", "int8"):
        raise BackendError(f"{path}: a quantised (int8) file runs on the CPU with backend openvino, not "
                           f"{backend}/{device}/{precision}; use its source checkpoint there")
    if not _has_openvino():
        raise BackendError(f"{path}: a quantised (int8) file needs the openvino package (pip install openvino)")
    return "openvino", "int8"


def _check_input_size(size) -> None:
    """ValueError unless (width, height) are positive multiples of 32 within the sizes a checkpoint may hold."""
    w, h = (int(v) for v in size)
    if w % 32 or h % 32 or w <= 0 or h <= 0:
        raise ValueError(f"input_size must be positive multiples of 32 (width, height), got {(w, h)}")
    if max(w, h) > MAX_INPUT_SIDE or w * h > MAX_INPUT_PIXELS:
        raise ValueError(f"input_size {w}x{h} is too large: each side at most {MAX_INPUT_SIDE} and at most "
                         f"{MAX_INPUT_PIXELS} pixels")


def _tensorrt_or_torch() -> str:
    """"tensorrt" when the tensorrt module imports, else "torch" after one warning line saying why."""
    from .tensorrt_backend import tensorrt_import_error

    problem = tensorrt_import_error()
    if problem is None:
        return "tensorrt"
    LOG.warning("backend 'tensorrt' asked for, but the tensorrt module cannot be imported (%s): running the PyTorch "
                "backend instead", problem)
    return "torch"


def _has_openvino() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True
