"""A training run → the node's checkpoint: inference weights (no pose net) in our safetensors format, with metadata
(provenance, input size, depth range) and optionally a metric scale factor measured on a split with ground truth.

The scale factor is the median over images of median(gt)/median(pred) — the per-image ratios the Eigen protocol
computes anyway — so ``depth_m = factor · depth_model``; the metrics with that one fixed factor are stored beside it.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from sgdepth_ros.model import SGDepth
from sgdepth_ros.model.checkpoint import save_checkpoint

from . import checkpointing as ckpt
from .config import TrainConfig
from .data.assemble import evenly_spaced, resolve_split_dir
from .data.cityscapes import CityscapesSegDataset
from .data.kitti import KittiRawDepthDataset
from .data.splits import read_split_file
from .evaluation.depth_gt import KittiEvalDataset, has_instance_ids
from .evaluation.report import miou_classes, miou_note
from .evaluation.runner import evaluate_depth, evaluate_segmentation

LOG = logging.getLogger(__name__)


@dataclass
class LoadedRun:
    model: SGDepth
    config: TrainConfig
    state_path: Path
    progress: ckpt.Progress


def load_run(run_dir: str | Path, state: str | None = None) -> LoadedRun:
    """The trained network of a run (full, with pose), from ``state`` (a file in its checkpoints folder, or a path;
    default the newest)."""
    run_dir = Path(run_dir)
    config = TrainConfig.load(run_dir / "config.json")
    if state is None:
        path, saved, skipped = ckpt.find_resumable(run_dir)
        for broken, why in skipped:
            LOG.warning("skipped broken checkpoint %s (%s)", broken, why)
    else:
        path = Path(state) if Path(state).is_file() else ckpt.checkpoint_dir(run_dir) / state
        saved = ckpt.load_state(path)
    model = SGDepth(config.num_layers, config.split_pos, config.depth_scales, pose_layers=config.num_layers)
    model.load_state_dict(saved["model"], strict=True)
    return LoadedRun(model.eval(), config, path, ckpt.Progress(**saved["progress"]))


def _split_file(config: TrainConfig, split: str) -> Path:
    """A split file path, or the name of one of the run's splits ("val" → <split dir>/val_files.txt)."""
    path = Path(split)
    return path if path.is_file() else resolve_split_dir(config.kitti_root, config.split) / f"{split}_files.txt"


def measure_scale(run: LoadedRun, split_file: Path, device: str | torch.device = "cpu", max_images: int | None = None,
                  progress: bool = False) -> dict:
    """Median of the per-image median ratios gt/pred on ``split_file`` frames with ground truth, and the metrics
    with that single factor (the run's ``val_protocol`` mask, prediction clamped to 1e-3..80 m)."""
    c = run.config
    entries = evenly_spaced(read_split_file(split_file), max_images)
    dataset = KittiRawDepthDataset(c.kitti_root, entries, frame_offsets=(0,), height=c.height, width=c.width,
                                   intrinsics=c.intrinsics, missing="skip")
    dataset.drop_entries_without_depth()
    if len(dataset) == 0:
        raise ValueError(f"{split_file}: no frame with depth ground truth under {c.kitti_root}")
    common = dict(device=device, protocol=c.val_protocol, min_depth=c.min_depth, max_depth=c.max_depth,
                  progress=progress)
    median = evaluate_depth(run.model, dataset, scaling="median", **common)
    factor = float(median.ratio_summary["median"])
    fixed = evaluate_depth(run.model, dataset, scaling="fixed", fixed_scale=factor, **common)
    return {"factor": factor, "ratio_std": float(median.ratio_summary["std"]), "images": median.count,
            "split_file": str(split_file), "metrics_median_scaled": median.metrics, "metrics_fixed_scale": fixed.metrics}


def measure_accuracy(run: LoadedRun, split_file: Path, factor: float | None, device: str | torch.device = "cpu",
                     progress: bool = False) -> dict:
    """Depth metrics on ``split_file`` (e.g. the test split) with per-image median scaling and, given ``factor``,
    with that fixed scale; for the synthetic world also on moving-object pixels only (its instance-id images)."""
    c = run.config
    entries = read_split_file(split_file)
    synthetic = has_instance_ids(c.kitti_root, (e.folder for e in entries))
    dataset = KittiEvalDataset(c.kitti_root, entries, height=c.height, width=c.width, gt="png", region=synthetic)
    common = dict(device=device, protocol=c.val_protocol, min_depth=c.min_depth, max_depth=c.max_depth,
                  progress=progress)
    result: dict = {"split_file": str(split_file), "protocol": c.val_protocol, "images": len(dataset)}
    scalings = [("median_scaled", dict(scaling="median"))]
    if factor is not None:
        scalings.append(("fixed_scale", dict(scaling="fixed", fixed_scale=factor)))
    for name, scaling in scalings:
        result[name] = {"all": evaluate_depth(run.model, dataset, **scaling, **common).metrics}
        if synthetic:
            try:
                moving = evaluate_depth(run.model, dataset, region="moving", **scaling, **common).metrics
            except ValueError:  # no frame of the split shows a moving object
                moving = None
            result[name]["moving"] = moving
    return result


def measure_segmentation(run: LoadedRun, cityscapes_root: str | Path, device: str | torch.device = "cpu") -> dict:
    """mIoU on ``<root>/leftImg8bit/val`` at the run's segmentation resize (labels at their native size), with the
    classes it averages (``miou_classes``: those in the ground truth or the prediction — 13 on the synthetic
    world) and a readable ``miou_over`` line."""
    width, height = run.config.seg_resize
    dataset = CityscapesSegDataset(cityscapes_root, "val", height=height, width=width, native_labels=True)
    result = evaluate_segmentation(run.model, dataset, device=device, progress=False)
    scores = result.scores
    return {"miou": scores["miou"], "miou_classes": miou_classes(scores)[0], "miou_over": miou_note(scores),
            "pixel_acc": scores["pixel_acc"], "images": result.count,
            "input": f"{width}x{height}", "iou": dict(zip(scores["class_names"], scores["iou"]))}


def _init_weights_record(path: str) -> dict:
    """What the run started from (``--init-weights``): file name, sha256 and its own provenance when it has one."""
    from sgdepth_ros.model.checkpoint import CheckpointError, file_sha256, read_metadata

    record: dict = {"file": Path(path).name}
    if not Path(path).is_file():
        return {**record, "sha256": None, "note": "file no longer present at export"}
    record["sha256"] = file_sha256(path)
    try:
        record["provenance"] = read_metadata(path).get("provenance")
    except CheckpointError:
        pass  # a reference model.pth: no metadata of ours
    return record


def export_run(run_dir: str | Path, out: str | Path, *, state: str | None = None, fp16: bool = False,
               scale_split: str | None = None, test_split: str | None = None, seg_val: str | None = None,
               name: str | None = None,
               device: str = "cpu", max_images: int | None = None,
               extra_metadata: dict | None = None, keep_pose: bool = False) -> tuple[Path, dict]:
    """Write ``out`` (.safetensors) from a run; ``scale_split`` ("val"/"test"/a split file) adds a metric scale,
    ``test_split`` the depth accuracy measured on that split (stored under metadata ``accuracy.test``), ``seg_val``
    (a Cityscapes root) the mIoU on its val split (``accuracy.segmentation``); ``keep_pose`` keeps the pose network
    (for ``eval-pose`` and the node's ego-motion output). Returns (path, metadata)."""
    run = load_run(run_dir, state)
    c = run.config
    run.model.to(device)
    metadata = {
        "name": name or f"sgdepth_ros {c.preset} ({Path(run_dir).name})",
        "trained": True,
        "input_size": {"width": c.width, "height": c.height},
        "min_depth": c.min_depth,
        "max_depth": c.max_depth,
        "provenance": {
            "source": f"sgdepth_ros trainer, preset {c.preset}",
            "run": Path(run_dir).name,
            "checkpoint": run.state_path.name,
            "epoch": run.progress.epoch,
            "global_step": run.progress.global_step,
            "split": c.split,
            "depth_batch": c.depth_batch,
            "seg_batch": c.seg_batch if not c.depth_only else 0,
            "masking": bool(c.masking and not c.depth_only),
            "exported": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        },
    }
    if c.init_weights:
        metadata["provenance"]["init_weights"] = _init_weights_record(c.init_weights)
    if scale_split is not None:
        measured = measure_scale(run, _split_file(c, scale_split), device, max_images)
        metadata["scale"] = {"factor": measured["factor"],
                             "source": f"median gt/pred ratio over {measured['images']} frames of "
                                       f"{Path(measured['split_file']).name} ({c.split})"}
        metadata["accuracy"] = measured
    if test_split is not None:
        factor = (metadata.get("scale") or {}).get("factor")
        metadata.setdefault("accuracy", {})["test"] = measure_accuracy(run, _split_file(c, test_split), factor, device)
    if seg_val is not None:
        metadata.setdefault("accuracy", {})["segmentation"] = measure_segmentation(run, seg_val, device)
    metadata.update(extra_metadata or {})
    path = save_checkpoint(run.model.cpu(), out, metadata, dtype=torch.float16 if fp16 else torch.float32,
                           inference_only=not keep_pose)
    return path, metadata
