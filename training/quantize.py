"""Post-training int8 quantisation of a checkpoint with NNCF, gated on accuracy against fp32 (``sgdepth-ros quantize``).

Steps: the float checkpoint's OpenVINO graph of both tasks at one input size (the runtime cuts the depth-only and
segmentation-only graphs from it) → ``nncf.quantize`` with calibration images (the synthetic world's frames by default, or a folder of images) →
candidate layer choices, fastest first ("all": every convolution int8; "encoder": the decoder tails kept in the rest
precision), each measured on a selection drive and the first that holds the gate chosen → the gate measured once more
on a held-out test drive, stored in the file's metadata. Which layers stay out of int8 is decided by that
measurement, not assumed.

The gate (against fp32 on the same frames; depth median-scaled, capped protocol; mIoU over the classes present in the
ground truth): AbsRel worse by at most 0.002, δ<1.25 lower by at most 0.005, mIoU lower by at most 0.6 points, and at
least 99 % of the pixels labelled as fp32 labels them.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from sgdepth_ros.backends import TASKS, OpenVINOBackend, cpu_supports_bf16
from sgdepth_ros.labels import label_id_to_train_id
from sgdepth_ros.metrics.depth import evaluation_mask, image_metrics, mean_metrics
from sgdepth_ros.metrics.segmentation import SegConfusion, seg_scores
from sgdepth_ros.preprocess import normalize, resize_rgb

GATE = {"abs_rel": 0.002, "a1": 0.005, "miou_points": 0.6, "label_agreement": 0.99}
CANDIDATES = ("all", "encoder")  # fastest first


@dataclass
class GateFrame:
    """One evaluation frame: rgb HxWx3 uint8 at the network size, depth HxW float32 metres (0 = none), labels HxW
    uint8 trainIds (255 = none)."""
    rgb: np.ndarray
    depth: np.ndarray
    labels: np.ndarray


@dataclass
class Accuracy:
    """A model's accuracy on gate frames, and its agreement with fp32 on them."""
    abs_rel: float
    a1: float
    miou: float  # over the classes present in the ground truth, in [0, 1]
    label_agreement: float = 1.0  # fraction of pixels labelled as fp32 labels them
    frames: int = 0


@dataclass
class GateResult:
    fp32: Accuracy
    candidate: Accuracy
    misses: list[str] = field(default_factory=list)  # what the candidate misses, with by how much

    @property
    def passed(self) -> bool:
        return not self.misses

    def as_dict(self) -> dict:
        return {"limits": dict(GATE), "fp32": asdict(self.fp32), "int8": asdict(self.candidate),
                "passed": self.passed, "misses": self.misses}


def judge(fp32: Accuracy, candidate: Accuracy) -> GateResult:
    """The gate of :data:`GATE` on two accuracies of the same frames."""
    misses = []
    if candidate.abs_rel - fp32.abs_rel > GATE["abs_rel"]:
        misses.append(f"AbsRel {candidate.abs_rel:.4f} vs fp32 {fp32.abs_rel:.4f}: worse by "
                      f"{candidate.abs_rel - fp32.abs_rel:.4f} (limit {GATE['abs_rel']})")
    if fp32.a1 - candidate.a1 > GATE["a1"]:
        misses.append(f"δ<1.25 {candidate.a1:.4f} vs fp32 {fp32.a1:.4f}: lower by {fp32.a1 - candidate.a1:.4f} "
                      f"(limit {GATE['a1']})")
    if 100 * (fp32.miou - candidate.miou) > GATE["miou_points"]:
        misses.append(f"mIoU {100 * candidate.miou:.2f} vs fp32 {100 * fp32.miou:.2f}: lower by "
                      f"{100 * (fp32.miou - candidate.miou):.2f} points (limit {GATE['miou_points']})")
    if candidate.label_agreement < GATE["label_agreement"]:
        misses.append(f"label agreement {100 * candidate.label_agreement:.2f} % (limit "
                      f"{100 * GATE['label_agreement']:.0f} %): short by "
                      f"{100 * (GATE['label_agreement'] - candidate.label_agreement):.2f} points")
    return GateResult(fp32, candidate, misses)


def accuracy(outputs: list[tuple[np.ndarray, np.ndarray]], frames: list[GateFrame], min_depth: float,
             max_depth: float, reference: list[np.ndarray] | None = None) -> Accuracy:
    """outputs: per frame (disparity HxW in (0,1), labels HxW) at the frames' size → Accuracy; ``reference``: fp32's
    labels of the same frames for the agreement."""
    from sgdepth_ros.postprocess import disparity_to_depth

    per_image, confusion, agree, pixels = [], SegConfusion(), 0, 0
    for i, ((disparity, labels), frame) in enumerate(zip(outputs, frames)):
        mask = evaluation_mask(frame.depth, "capped")
        if mask.any():
            per_image.append(image_metrics(frame.depth, disparity_to_depth(disparity, min_depth, max_depth), mask)[0])
        confusion.update(frame.labels, labels)
        if reference is not None:
            agree += int((labels == reference[i]).sum())
            pixels += labels.size
    scores = seg_scores(confusion)
    present = confusion.matrix.sum(axis=1) > 0
    depth = mean_metrics(per_image)
    return Accuracy(depth["abs_rel"], depth["a1"], float(np.nanmean(np.asarray(scores["iou"])[present])),
                    agree / pixels if pixels else 1.0, len(frames))


def run_graph(backend: OpenVINOBackend, frames: list[GateFrame]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Both tasks of ``backend`` on every frame → [(disparity HxW, labels HxW uint8)]."""
    results = []
    for frame in frames:
        out = backend.run(normalize([frame.rgb]), TASKS)
        results.append((out["disparity"][0, 0], out["labels"][0].astype(np.uint8)))
    return results


def ignored_layers(graph, candidate: str) -> list[str]:
    """The convolutions a candidate keeps out of int8: none ("all"), or the decoders' ("encoder")."""
    if candidate == "all":
        return []
    if candidate == "encoder":
        return [op.get_friendly_name() for op in graph.get_ordered_ops()
                if op.get_type_name() == "Convolution"
                and any(part in op.get_friendly_name() for part in (".decoder.", ".multires."))]
    raise ValueError(f"candidate must be one of {CANDIDATES}, got {candidate!r}")


def quantize_graph(graph, calibration: list[np.ndarray], candidate: str):
    """``nncf.quantize`` of one OpenVINO graph: [1,3,H,W] float32 normalised calibration inputs, the candidate's
    layers left out; MIXED preset (symmetric weights, asymmetric activations: measured far closer to fp32 here than
    the default) and the full bias correction."""
    import logging

    import nncf

    nncf.set_log_level(logging.ERROR)  # its per-layer progress lines would bury the command's own
    ignored = ignored_layers(graph, candidate)
    return nncf.quantize(graph, nncf.Dataset(calibration), subset_size=len(calibration),
                         preset=nncf.QuantizationPreset.MIXED, fast_bias_correction=False,
                         ignored_scope=nncf.IgnoredScope(names=ignored) if ignored else None)


@dataclass
class QuantizeResult:
    graphs: dict  # {("depth", "segmentation"): the quantised openvino.Model}
    candidate: str
    rest_precision: str
    kept_layers: list[str]
    selection: list[dict]  # per candidate tried: its gate on the selection drive
    test_gate: GateResult
    seconds: float


def quantize(model, weights_key: str, input_size: tuple[int, int], calibration: list[np.ndarray],
             select: list[GateFrame], test: list[GateFrame], rest_precision: str | None = None,
             log=print) -> QuantizeResult:
    """Quantise ``model`` (SGDepth, float; ``weights_key``: its file's sha256) at ``input_size`` (width, height); see
    the module docstring.

    calibration: [1,3,H,W] normalised network inputs; select / test: gate frames of two different drives (the first
    picks the candidate, the second is the reported gate). rest_precision: "bf16" or "fp32" for what stays out of
    int8 (default bf16 where the CPU runs it natively)."""
    start = time.perf_counter()
    rest = rest_precision or ("bf16" if cpu_supports_bf16() else "fp32")
    hw = (input_size[1], input_size[0])
    reference = OpenVINOBackend(model, hw, weights_key=weights_key)  # fp32
    floating = reference.graph(TASKS)
    fp32_select = run_graph(reference, select)
    fp32_test = run_graph(reference, test)
    min_depth, max_depth = float(model.metadata["min_depth"]), float(model.metadata["max_depth"])
    acc_select = accuracy(fp32_select, select, min_depth, max_depth)
    selection, chosen = [], None
    for candidate in CANDIDATES:
        log(f"quantize: candidate '{candidate}' (int8 {'every convolution' if candidate == 'all' else 'encoder'})")
        graph = quantize_graph(floating, calibration, candidate)
        backend = OpenVINOBackend(None, hw, precision="int8", graphs={TASKS: graph}, rest_precision=rest)
        result = judge(acc_select, accuracy(run_graph(backend, select), select, min_depth, max_depth,
                                            [labels for _, labels in fp32_select]))
        selection.append({"candidate": candidate, **result.as_dict()})
        log(f"quantize: '{candidate}' on the selection drive: " + ("gate held" if result.passed
                                                                     else "; ".join(result.misses)))
        if result.passed or candidate == CANDIDATES[-1]:
            chosen = (candidate, graph)
            break
    candidate, both = chosen
    backend = OpenVINOBackend(None, hw, precision="int8", graphs={TASKS: both}, rest_precision=rest)
    test_gate = judge(accuracy(fp32_test, test, min_depth, max_depth),
                      accuracy(run_graph(backend, test), test, min_depth, max_depth,
                               [labels for _, labels in fp32_test]))
    return QuantizeResult({TASKS: both}, candidate, rest, ignored_layers(floating, candidate), selection, test_gate,
                          time.perf_counter() - start)


# ---- data -----------------------------------------------------------------------------------------------------------
def read_gate_frames(kitti_root: Path, split: str, size: tuple[int, int], limit: int | None = None) -> list[GateFrame]:
    """The frames of a synthetic KITTI tree's split (``splits/synthetic/<split>_files.txt``) with their exact depth
    and labels, resized to ``size`` (width, height) when rendered at another size."""
    from sgdepth_ros.imageio import read_rgb
    from sgdepth_ros.postprocess import resize_labels

    from .data._imaging import read_single_channel
    from .data.splits import read_split_file
    from .synth import layout

    to_train = label_id_to_train_id()
    entries = read_split_file(kitti_root / "splits" / layout.SPLIT_NAME / f"{split}_files.txt")[:limit]
    frames = []
    for entry in entries:
        drive = kitti_root / entry.folder
        name = f"{entry.frame:010d}.png"
        rgb = read_rgb(drive / "image_02" / "data" / name)
        depth = read_single_channel(drive / "proj_depth" / "groundtruth" / "image_02" / name).astype(np.float32) / 256
        labels = to_train[read_single_channel(drive / "synthetic" / "label_ids" / "image_02" / name)]
        if (rgb.shape[1], rgb.shape[0]) != tuple(size):
            rgb = resize_rgb(rgb, size)
            depth = resize_labels(depth, size)  # nearest: no blending across depth edges
            labels = resize_labels(labels, size)
        frames.append(GateFrame(rgb, depth, labels))
    return frames


def calibration_inputs(images: Iterable[np.ndarray], size: tuple[int, int]) -> list[np.ndarray]:
    """RGB images → [1,3,H,W] normalised network inputs at ``size`` (width, height)."""
    return [normalize([resize_rgb(image, size)]) for image in images]
