"""``sgdepth-ros eval-depth``: depth metrics of a checkpoint on KITTI raw (Eigen / KITTI split), KITTI 2015 or the
synthetic world (spec §6.1). Prints the scaling ratios and the 7-metric table like the reference; ``--json`` keeps it.

``--regions all,moving,static`` (synthetic world) evaluates the regions in one pass with one scale per image (its
median over all valid pixels) and adds the holes: the fraction of moving-object pixels predicted more than 2× farther
than their ground truth (SGDepth's failure case; ``--hole-factor``). ``--actors`` adds the errors per kind of actor
(parked cars, cars moving with the camera, other moving cars, people; ``evaluation/actors.py``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sgdepth_ros.commands.arg_types import batch_size, count, multiple_of_32, positive_float


def _scale(text: str) -> str | float:
    if text in ("median", "checkpoint"):
        return text
    try:
        return positive_float(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"must be 'median', 'checkpoint' or a positive factor such as 5.4, got {text!r}") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="checkpoint: our .safetensors or the reference SGDepth model.pth")
    p.add_argument("--data", required=True, type=Path, help="KITTI raw root (or the kitti_2015 folder)")
    p.add_argument("--dataset", choices=("kitti", "kitti2015"), default="kitti",
                   help="kitti: raw drives + --split-file; kitti2015: the 200 training images, depth from disp_occ_0")
    p.add_argument("--split-file", type=Path, help="'folder frame side' lines, e.g. monodepth2 splits/eigen/"
                                                   "test_files.txt (required for --dataset kitti)")
    p.add_argument("--gt", choices=("velodyne", "png", "npz"), default=None,
                   help="KITTI ground truth: velodyne (default) = the raw scans projected with camera-z depth, the "
                        "reference's Eigen-split ground truth (SGDepth's 0.113); png = depth PNGs under "
                        "proj_depth/groundtruth (the annotated depth-completion set, or the synthetic world's exact "
                        "depth); npz = a precomputed file (--gt-file)")
    p.add_argument("--missing", choices=("error", "skip"), default="error",
                   help="a frame whose image or ground-truth file is missing: error (default, names the file) or "
                        "skip (left out and counted; e.g. --gt png, whose annotations cover only part of the "
                        "Eigen split)")
    p.add_argument("--gt-file", type=Path, help="the .npz for --gt npz (keys gt_0000… or a 3-D 'data' array)")
    p.add_argument("--depth-root", type=Path, help="root of the depth PNGs if not --data")
    p.add_argument("--vel-depth", action="store_true",
                   help="velodyne GT: depth = velodyne x (monodepth2) instead of camera z (SGDepth)")
    p.add_argument("--protocol", choices=("eigen", "kitti", "capped"), default=None,
                   help="eigen: 1e-3<gt<max in the Garg crop (default for kitti); kitti: gt>0 (default for kitti2015); "
                        "capped: 1e-3<gt<max, no crop (the synthetic world)")
    p.add_argument("--scale", type=_scale, default="median",
                   help="median (per image, default) | checkpoint (its metadata factor) | a fixed factor")
    p.add_argument("--max-depth-eval", type=positive_float, default=80.0, help="cap in metres (default 80)")
    p.add_argument("--width", type=multiple_of_32, default=None, help="network width (default: checkpoint's)")
    p.add_argument("--height", type=multiple_of_32, default=None, help="network height (default: checkpoint's)")
    p.add_argument("--intrinsics", choices=("calib", "default"), default="default",
                   help="K of the samples (not used by the metrics); calib also checks calib_cam_to_cam.txt sizes")
    p.add_argument("--region", choices=("all", "moving", "static"), default="all",
                   help="synthetic world: only pixels of moving actors, or all others (each region median-scaled "
                        "on its own pixels)")
    p.add_argument("--regions", type=_regions, default=None, metavar="all,moving,static",
                   help="synthetic world: several regions in one pass, every image with ONE scale (median over all "
                        "its valid pixels, or --scale), plus the holes on moving objects; JSON task depth_regions")
    p.add_argument("--actors", action="store_true",
                   help="with --regions: also AbsRel and holes per kind of actor (<class>, still | with the camera | "
                        "moving), pooled over their pixels; the JSON gets actor_groups and actors")
    p.add_argument("--hole-factor", type=positive_float, default=2.0,
                   help="with --regions: a moving-object pixel predicted more than this many times farther than its "
                        "ground truth is a hole (default 2)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--batch-size", type=batch_size, default=1)
    p.add_argument("--workers", type=count, default=0, help="data-loading processes (default 0)")
    p.add_argument("--json", type=Path, help="write metrics, settings and per-image values to this file")
    p.add_argument("--images", type=count, default=0, help="save the first N previews (image|prediction|GT)")
    p.add_argument("--images-dir", type=Path, default=None,
                   help="folder for --images (default: eval_images next to --json, else ./eval_images)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _regions(text: str) -> tuple[str, ...]:
    names = tuple(t.strip() for t in text.split(",") if t.strip())
    valid = ("all", "moving", "static")
    if not names or not set(names) <= set(valid) or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"must be a comma list of distinct {', '.join(valid)}, got {text!r}")
    return names


def _check(args: argparse.Namespace) -> str | None:
    """The first problem with the combination of arguments, or None."""
    if args.dataset == "kitti":
        if args.split_file is None:
            return "--split-file is required for --dataset kitti"
        if args.gt == "npz" and args.gt_file is None:
            return "--gt npz needs --gt-file FILE.npz"
        if args.gt_file is not None and args.gt != "npz":
            return "--gt-file is only used with --gt npz"
    else:
        if args.gt is not None or args.gt_file is not None or args.split_file is not None:
            return "--dataset kitti2015 takes its ground truth from disp_occ_0: drop --gt/--gt-file/--split-file"
        if args.missing != "error":
            return "--missing applies to --dataset kitti (KITTI 2015 checks all its files up front)"
        if args.region != "all" or args.regions is not None:
            return "--region/--regions need the synthetic world (--dataset kitti)"
    if args.actors and args.regions is None:
        return "--actors needs --regions (it reports with the same one scale per image)"
    if args.regions is not None and args.region != "all":
        return "give --region (one region, scaled on its own pixels) or --regions (several, one scale), not both"
    if args.hole_factor <= 1.0:
        return f"--hole-factor must be > 1, got {args.hole_factor:g}"
    if args.vel_depth and (args.gt or "velodyne") != "velodyne":
        return "--vel-depth only applies to --gt velodyne"
    return None


def _preview_writer(folder: Path, count: int, max_depth: float):
    import cv2
    import numpy as np

    from sgdepth_ros.colorize import colorize_depth
    from sgdepth_ros.imageio import write_rgb

    def write(index: int, color, depth, gt) -> None:
        if index >= count:
            return
        h, w = gt.shape
        rgb = (color.permute(1, 2, 0).cpu().numpy() * 255).round().clip(0, 255).astype(np.uint8)
        rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_LINEAR)
        views = [colorize_depth(d, 1.0, max_depth) for d in (depth, gt)]
        folder.mkdir(parents=True, exist_ok=True)
        write_rgb(folder / f"img_{index:03d}.png", np.vstack([rgb, *views]))

    return write


def _needs_moving(regions: tuple[str, ...] | None) -> bool:
    return regions is not None and bool({"moving", "static"} & set(regions))


def _by_index(write):
    """The preview writer (index, color, depth, gt) as an ``evaluate_depth_regions`` callback (name, …, moving)."""
    count = iter(range(1 << 62))

    def on_image(name, color, depth, gt, moving) -> None:
        write(next(count), color, depth, gt)

    return on_image


def run(args: argparse.Namespace) -> int:
    problem = _check(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    from sgdepth_ros.backends import resolve_device
    from sgdepth_ros.model import load_checkpoint

    from ..evaluation.depth_gt import Kitti2015DepthDataset, KittiEvalDataset
    from ..evaluation.report import (checkpoint_info, depth_report, format_depth_table, format_ratios,
                                     format_region_tables, region_report, write_json)
    from ..evaluation.runner import evaluate_depth, evaluate_depth_regions

    device = resolve_device(args.device)
    model = load_checkpoint(args.model, device)
    meta = model.metadata
    size = meta.get("input_size") or {}
    width, height = args.width or int(size.get("width", 640)), args.height or int(size.get("height", 192))
    scaling, fixed = "median", None
    if args.scale == "checkpoint":
        fixed = (meta.get("scale") or {}).get("factor")
        if fixed is None:
            raise ValueError(f"{args.model}: the checkpoint holds no metric scale factor (metadata scale.factor); "
                             f"use --scale median or --scale FACTOR")
        scaling = "fixed"
    elif args.scale != "median":
        scaling, fixed = "fixed", float(args.scale)
    if args.dataset == "kitti2015":
        dataset = Kitti2015DepthDataset(args.data, height=height, width=width)
        protocol = args.protocol or "kitti"
    else:
        dataset = KittiEvalDataset(args.data, args.split_file, height=height, width=width,
                                   gt=args.gt or "velodyne", gt_file=args.gt_file, depth_root=args.depth_root,
                                   vel_depth=args.vel_depth, intrinsics=args.intrinsics,
                                   region=args.region != "all" or _needs_moving(args.regions),
                                   missing=args.missing)
        protocol = args.protocol or "eigen"
        if len(dataset) == 0:
            raise ValueError(f"{args.split_file}: none of its {len(dataset.skipped)} frames has all its files "
                             f"(first: {dataset.skipped[0][1] if dataset.skipped else '-'})")
    gt_name = (args.gt or "velodyne") if args.dataset == "kitti" else "disp_occ_0"
    missing = list(getattr(dataset, "skipped", []))
    on_image = None
    if args.images:
        folder = args.images_dir or ((args.json.parent if args.json else Path(".")) / "eval_images")
        on_image = _preview_writer(folder, args.images, args.max_depth_eval)
    min_depth, max_depth = float(meta.get("min_depth", 0.1)), float(meta.get("max_depth", 100.0))
    extra = {"dataset": args.dataset, "data": str(args.data), "gt": gt_name,
             "gt_file": str(args.gt_file) if args.gt_file else None, "vel_depth": args.vel_depth,
             "split_file": str(args.split_file) if args.split_file else None, "width": width, "height": height,
             "scale_arg": args.scale, "device": str(device), "missing": args.missing}
    if args.regions is not None:
        from ..evaluation.actors import WITH_CAMERA_SPEED, ActorErrors, format_actor_table

        actors = ActorErrors(args.data, args.hole_factor) if args.actors else None
        regions = evaluate_depth_regions(
            model, dataset, device=device, protocol=protocol, scaling=scaling, fixed_scale=fixed,
            min_depth=min_depth, max_depth=max_depth, max_depth_eval=args.max_depth_eval, regions=args.regions,
            hole_factor=args.hole_factor, batch_size=args.batch_size, num_workers=args.workers,
            progress=not args.no_progress,
            on_image=None if on_image is None else _by_index(on_image), actors=actors)
        print(f"evaluated {len(regions.per_image)} images of {args.data} (gt {gt_name}, protocol {protocol}, regions "
              f"{','.join(args.regions)}, one scale per image, {width}x{height})"
              + (f"; {len(regions.skipped)} without valid ground truth skipped" if regions.skipped else ""))
        print(format_ratios(regions.ratio_summary) if scaling == "median" else f" Fixed scaling factor: {fixed:g}")
        print(format_region_tables(regions))
        groups = actors.groups() if actors is not None else None
        if groups is not None:
            print(f" per kind of actor (AbsRel and holes pooled over their pixels; with the camera: slower than "
                  f"{WITH_CAMERA_SPEED:g} m/s relative to it):")
            print(format_actor_table(groups))
        if args.json:
            doc = region_report(regions, checkpoint=checkpoint_info(model, args.model), extra_settings=extra)
            if actors is not None:
                doc.update(actor_groups=groups, actors=actors.actors(),
                           with_camera_speed=WITH_CAMERA_SPEED)
            doc["missing_files"] = [{"name": name, "missing": what} for name, what in missing]
            write_json(args.json, doc)
            print(f"wrote {args.json}")
        return 0
    result = evaluate_depth(model, dataset, device=device, protocol=protocol, scaling=scaling, fixed_scale=fixed,
                            min_depth=min_depth, max_depth=max_depth, max_depth_eval=args.max_depth_eval,
                            region=args.region, batch_size=args.batch_size, num_workers=args.workers,
                            progress=not args.no_progress, on_image=on_image)
    print(f"evaluated {result.count} images of {args.data} ({args.dataset}, gt {gt_name}"
          f"{' (velodyne x)' if args.vel_depth else ''}, protocol {protocol}, region {args.region}, "
          f"{width}x{height})" + (f"; {len(result.skipped)} without valid ground truth skipped"
                                  if result.skipped else "")
          + (f"; {len(missing)} listed frames skipped for missing files (--missing skip)" if missing else ""))
    if scaling == "median":
        print(format_ratios(result.ratio_summary))
    else:
        print(f" Fixed scaling factor: {fixed:g}")
    print(format_depth_table(result.metrics))
    if args.json:
        doc = depth_report(result, checkpoint=checkpoint_info(model, args.model), extra_settings=extra)
        doc["missing_files"] = [{"name": name, "missing": what} for name, what in missing]
        write_json(args.json, doc)
        print(f"wrote {args.json}")
    return 0
