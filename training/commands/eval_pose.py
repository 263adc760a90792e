"""``sgdepth-ros eval-pose``: ego-motion of a checkpoint's pose net (spec §6.3, the reference ``eval_pose.py``).

Layouts: ``odometry`` — KITTI odometry (``ROOT/sequences/SS/image_2/NNNNNN.png`` and ``ROOT/poses/SS.txt``, the
reference evaluates sequences 09 and 10); ``drive`` — one KITTI-raw drive folder with ``image_02/data/*.png`` and a
``poses.txt`` (the synthetic world's export). Prints the reference's "Trajectory error" line per sequence (5-frame
snippets, ATE after scale alignment, metres) and, beyond it, whole-trajectory ATE and drift per 10 m after one global
scale fit.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sgdepth_ros.commands.arg_types import multiple_of_32


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True,
                   help="checkpoint WITH the pose network: the reference SGDepth model.pth, or our .safetensors "
                        "written with --keep-pose")
    p.add_argument("--data", required=True, type=Path,
                   help="KITTI odometry root (sequences/, poses/) or, with --layout drive, a drive folder")
    p.add_argument("--layout", choices=("odometry", "drive"), default="odometry")
    p.add_argument("--sequences", nargs="+", default=["09", "10"], help="odometry sequences (default 09 10)")
    p.add_argument("--width", type=multiple_of_32, default=640)
    p.add_argument("--height", type=multiple_of_32, default=192)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--batch-size", type=int, default=8, help="frame pairs per forward pass")
    p.add_argument("--json", type=Path, help="write per-sequence results to this file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _sequences(args: argparse.Namespace) -> list[tuple[str, list[Path], Path]]:
    """(name, image files in order, poses file) per sequence; raises FileNotFoundError naming what is missing."""
    out = []
    if args.layout == "drive":
        entries = [(args.data.name, args.data / "image_02" / "data", args.data / "poses.txt")]
    else:
        entries = [(s, args.data / "sequences" / s / "image_2", args.data / "poses" / f"{s}.txt")
                   for s in args.sequences]
    for name, folder, poses in entries:
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such image folder (layout {args.layout})")
        if not poses.is_file():
            raise FileNotFoundError(f"{poses}: no ground-truth poses file")
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        out.append((name, images, poses))
    return out


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from sgdepth_ros.backends import resolve_device
    from sgdepth_ros.model import load_checkpoint

    from ..data.kitti import read_poses
    from ..evaluation.pose import TRACK_LENGTH, relative_from_global, snippet_ates, trajectory_errors
    from ..evaluation.pose_runner import predict_relative_poses

    try:
        sequences = _sequences(args)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    device = resolve_device(args.device)
    model = load_checkpoint(args.model, device)
    if model.pose is None:
        print(f"error: {args.model}: this checkpoint has no pose network (inference files drop it); use the "
              f"reference model.pth, or write ours with 'convert --keep-pose' / 'export --keep-pose'", file=sys.stderr)
        return 2
    results = {}
    for name, images, poses_file in sequences:
        gt_global = read_poses(poses_file)
        if len(gt_global) != len(images):
            print(f"error: {poses_file}: {len(gt_global)} poses for {len(images)} images", file=sys.stderr)
            return 2
        if len(images) < TRACK_LENGTH:
            print(f"error: sequence {name}: {len(images)} frames, need at least {TRACK_LENGTH}", file=sys.stderr)
            return 2
        pred = predict_relative_poses(model, images, (args.width, args.height), device, args.batch_size,
                                      progress=not args.no_progress)
        gt = relative_from_global(gt_global)
        ates = snippet_ates(gt, pred)
        whole = trajectory_errors(gt, pred)
        results[name] = {"frames": len(images), "snippets": len(ates), "ate_mean": float(ates.mean()),
                         "ate_std": float(ates.std()), "trajectory_scale": whole.scale,
                         "trajectory_ate_rmse_m": whole.ate_rmse, "drift_per_10m_m": whole.drift_per_10m,
                         "path_length_m": whole.path_length}
        drift = "n/a (path < 10 m)" if whole.drift_per_10m is None else f"{whole.drift_per_10m:0.3f} m"
        print(f"sequence {name} ({len(images)} frames, {whole.path_length:0.1f} m)")
        print(f"   Trajectory error: {ates.mean():0.3f}, std: {ates.std():0.3f}")
        print(f"   whole trajectory (one scale ×{whole.scale:0.4g}): ATE {whole.ate_rmse:0.3f} m, drift per 10 m {drift}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"model": str(args.model), "layout": args.layout, "width": args.width,
                                         "height": args.height, "track_length": TRACK_LENGTH,
                                         "sequences": results}, indent=2))
        print(f"wrote {args.json}")
    return 0 if np.isfinite([r["ate_mean"] for r in results.values()]).all() else 1
