"""A training run → the node's checkpoint: inference weights (no pose net) in our safetensors format, with metadata
(provenance, input size, depth range) and optionally a metric scale factor measured on a split with ground truth.

The scale factor is the median over images of median(gt)/median(pred) — the per-image ratios the Eigen protocol
computes anyway — so ``depth_m = factor · depth_model``; the metrics with that one fixed factor are stored beside it.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import torch

from sgdepth_ros.model import SGDepth
from sgdepth_ros.model.checkpoint import save_checkpoint

from . import checkpointing as ckpt
from .config import TrainConfig
from .data.assemble import resolve_split_dir
from .data.kitti import KittiRawDepthDataset
from .data.splits import read_split_file
from .evaluation.runner import evaluate_depth


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
        path = ckpt.latest_state(run_dir)
        if path is None:
            raise FileNotFoundError(f"{run_dir}: no checkpoint in {ckpt.checkpoint_dir(run_dir)}")
    else:
        path = Path(state) if Path(state).is_file() else ckpt.checkpoint_dir(run_dir) / state
    saved = ckpt.load_state(path)
    model = SGDepth(config.num_layers, config.split_pos, config.depth_scales, pose_layers=config.num_layers)
    model.load_state_dict(saved["model"], strict=True)
    return LoadedRun(model.eval(), config, path, ckpt.Progress(**saved["progress"]))


def measure_scale(run: LoadedRun, split_file: Path, device: str | torch.device = "cpu", max_images: int | None = None,
                  progress: bool = False) -> dict:
    """Median of the per-image median ratios gt/pred on ``split_file`` frames with ground truth, and the metrics
    with that single factor (protocol "kitti": gt > 0, clamp 1e-3..80 m)."""
    c = run.config
    entries = read_split_file(split_file)
    if max_images is not None and len(entries) > max_images:
        entries = entries[:: max(1, len(entries) // max_images)][:max_images]
    dataset = KittiRawDepthDataset(c.kitti_root, entries, frame_offsets=(0,), height=c.height, width=c.width,
                                   intrinsics=c.intrinsics, missing="skip")
    dataset.drop_entries_without_depth()
    if len(dataset) == 0:
        raise ValueError(f"{split_file}: no frame with depth ground truth under {c.kitti_root}")
    common = dict(device=device, protocol="kitti", min_depth=c.min_depth, max_depth=c.max_depth, progress=progress)
    median = evaluate_depth(run.model, dataset, scaling="median", **common)
    factor = float(median.ratio_summary["median"])
    fixed = evaluate_depth(run.model, dataset, scaling="fixed", fixed_scale=factor, **common)
    return {"factor": factor, "ratio_std": float(median.ratio_summary["std"]), "images": median.count,
            "split_file": str(split_file), "metrics_median_scaled": median.metrics, "metrics_fixed_scale": fixed.metrics}


def export_run(run_dir: str | Path, out: str | Path, *, state: str | None = None, fp16: bool = False,
               scale_split: str | None = None, name: str | None = None, device: str = "cpu",
               max_images: int | None = None, extra_metadata: dict | None = None) -> tuple[Path, dict]:
    """Write ``out`` (.safetensors) from a run; ``scale_split`` ("val"/"test"/a split file) adds a metric scale.
    Returns (path, metadata)."""
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
    if scale_split is not None:
        split_file = Path(scale_split)
        if not split_file.is_file():
            split_file = resolve_split_dir(c.kitti_root, c.split) / f"{scale_split}_files.txt"
        measured = measure_scale(run, split_file, device, max_images)
        metadata["scale"] = {"factor": measured["factor"],
                             "source": f"median gt/pred ratio over {measured['images']} frames of "
                                       f"{Path(measured['split_file']).name} ({c.split})"}
        metadata["accuracy"] = measured
    metadata.update(extra_metadata or {})
    path = save_checkpoint(run.model.cpu(), out, metadata, dtype=torch.float16 if fp16 else torch.float32,
                           inference_only=True)
    return path, metadata
