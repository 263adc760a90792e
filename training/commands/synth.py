"""``sgdepth-ros synth``: render synthetic drives with exact ground truth as KITTI raw, Cityscapes and rosbag2.

``--rig front,left,right,rear`` (built-in cameras) or ``--rig rig.yaml`` (a rig file, format in
sgdepth_training.synth.rig) renders every camera of a rig per frame: ``<out>/rig/<cam>/`` is a KITTI raw root per
camera, ``<out>/bags/<drive>/`` one bag with ``/<cam>/…`` topics, ``<out>/rig/rig.yaml`` the rig.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from sgdepth_ros.commands.arg_types import size


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, type=Path, help="output folder (created; an old synth output needs "
                                                            "--overwrite)")
    p.add_argument("--drives", type=int, default=1, help="number of drives (≥ 3: last is test, one before val)")
    p.add_argument("--frames", type=int, default=50, help="frames per drive, at 10 Hz")
    p.add_argument("--seed", type=int, default=0, help="town seed: same seed, same data")
    p.add_argument("--formats", default="kitti,cityscapes,bag", help="comma list of kitti, cityscapes, bag")
    p.add_argument("--width", type=int, default=1242, help="KITTI/bag image width (KITTI native 1242)")
    p.add_argument("--height", type=int, default=375, help="KITTI/bag image height (KITTI native 375)")
    p.add_argument("--cityscapes-size", type=size, default=(1024, 512), help="Cityscapes image WxH (2:1)")
    p.add_argument("--cityscapes-every", type=int, default=5, help="render every Nth frame for Cityscapes")
    p.add_argument("--bag-storage", default="mcap", help="mcap or sqlite3")
    p.add_argument("--bag-image", default="rgb8", help="rgb8, bgr8 (sensor_msgs/Image) or jpeg (CompressedImage)")
    p.add_argument("--exposure-jitter", type=float, default=0.0, help="per-frame exposure change ±A (off: 0)")
    p.add_argument("--noise", type=float, default=0.0, help="Gaussian sensor noise σ in [0,1] units (off: 0)")
    p.add_argument("--workers", type=int, default=None, help="render processes (default: min(2, CPUs))")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier synth output in --out")
    p.add_argument("--rig", default=None,
                   help="render a camera rig: a comma list of built-in cameras (front, left, right, rear; front = "
                        "the KITTI camera at --width x --height, the others scale with it) or a rig .yaml file "
                        "(per camera: name, width, height, fx[, fy, cx, cy] or hfov_deg, xyz in base_link, rpy_deg; "
                        "--width/--height unused). KITTI goes to <out>/rig/<cam>/ (one KITTI raw root per camera), "
                        "the bag gets /<cam>/image_raw, /<cam>/camera_info, /<cam>/ground_truth/{depth,semantic} "
                        "and tf for every camera. Cityscapes images stay the front mount's, with the Cityscapes "
                        "camera. Without --rig: one camera, as always")


def config_from_args(args: argparse.Namespace):
    from ..synth.generate import SynthConfig

    config = SynthConfig(out=args.out, drives=args.drives, frames=args.frames, seed=args.seed,
                         formats=tuple(f.strip() for f in args.formats.split(",") if f.strip()),
                         width=args.width, height=args.height, cityscapes_width=args.cityscapes_size[0],
                         cityscapes_height=args.cityscapes_size[1], cityscapes_every=args.cityscapes_every,
                         bag_storage=args.bag_storage, bag_image=args.bag_image,
                         exposure_jitter=args.exposure_jitter, noise_sigma=args.noise, overwrite=args.overwrite,
                         rig=args.rig)
    if args.workers is not None:
        config.workers = args.workers
    return config


def run(args: argparse.Namespace) -> int:
    from ..synth.generate import generate

    config = config_from_args(args)
    try:
        config.validate()
    except ValueError as exc:
        print(f"error: {exc}")
        return 2
    manifest = generate(config)
    c = manifest["counts"]
    rig = f" for {len(manifest['rig'])} cameras ({', '.join(r['name'] for r in manifest['rig'])})" \
        if "rig" in manifest else ""
    print(f"wrote {args.out}: {c['kitti_frames']} KITTI frames{rig} ({manifest['splits']}), "
          f"{c['cityscapes_train']}+{c['cityscapes_val']} Cityscapes train+val, {c['bag_messages']} bag messages "
          f"in {manifest['seconds']} s")
    return 0
