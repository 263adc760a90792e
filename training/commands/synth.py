"""``sgdepth-ros synth``: render synthetic drives with exact ground truth as KITTI raw, Cityscapes and rosbag2.

``--rig front,left,right,rear`` (built-in cameras) or ``--rig rig.yaml`` (a rig file, format in
sgdepth_training.synth.rig) renders every camera of a rig per frame: ``<out>/rig/<cam>/`` is a KITTI raw root per
camera, ``<out>/bags/<drive>/`` one bag with ``/<cam>/…`` topics, ``<out>/rig/rig.yaml`` the rig.

``--preset dynamic`` is the data of the masking ablation (issue 17, scripts/ablation.sh): the dynamic world (a lead
car at or near the ego's speed in every drive, oncoming cars near it, many parked cars) over 10 drives of 80 frames,
the last 2 drives held out for testing, KITTI and Cityscapes formats at 640×192 / 512×256. Flags given explicitly
override a preset's values.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from sgdepth_ros.commands.arg_types import size

# Flag defaults; a preset replaces some of them (an explicitly given flag always wins).
DEFAULTS = {"drives": 1, "frames": 50, "formats": "kitti,cityscapes,bag", "width": 1242, "height": 375,
            "cityscapes_size": (1024, 512), "cityscapes_every": 5, "world": "default", "test_drives": 1}
PRESETS = {
    "dynamic": {"world": "dynamic", "drives": 10, "frames": 80, "test_drives": 2, "formats": "kitti,cityscapes",
                "width": 640, "height": 192, "cityscapes_size": (512, 256), "cityscapes_every": 2},
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, type=Path, help="output folder (created; an old synth output needs "
                                                            "--overwrite)")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="named settings: dynamic = the masking ablation's data (" + _describe(PRESETS["dynamic"])
                        + "); explicit flags override them")
    p.add_argument("--drives", type=int, default=None, help="number of drives (≥ 3: last is test, one before val; "
                                                            "default 1)")
    p.add_argument("--frames", type=int, default=None, help="frames per drive, at 10 Hz (default 50)")
    p.add_argument("--seed", type=int, default=0, help="town seed: same seed, same data")
    p.add_argument("--formats", default=None, help="comma list of kitti, cityscapes, bag (default all three)")
    p.add_argument("--width", type=int, default=None, help="KITTI/bag image width (default: KITTI native 1242)")
    p.add_argument("--height", type=int, default=None, help="KITTI/bag image height (default: KITTI native 375)")
    p.add_argument("--cityscapes-size", type=size, default=None, help="Cityscapes image WxH (2:1, default 1024x512)")
    p.add_argument("--cityscapes-every", type=int, default=None, help="render every Nth frame for Cityscapes "
                                                                       "(default 5)")
    p.add_argument("--world", default=None, help="the traffic: default (the everyday town), dynamic (a lead car "
                                                 "at or near the ego's speed in every drive, oncoming cars near it, "
                                                 "many parked cars: the masking ablation's world) or queue (still "
                                                 "cars queued in the ego lane ahead instead of a lead car)")
    p.add_argument("--test-drives", type=int, default=None,
                   help="the last N drives are the test split, the one before them validation (needs ≥ N+2 drives; "
                        "default 1)")
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


def _describe(preset: dict) -> str:
    return ", ".join(f"--{k.replace('_', '-')} " + ("x".join(map(str, v)) if isinstance(v, tuple) else str(v))
                     for k, v in preset.items())


def resolve(args: argparse.Namespace) -> dict:
    """The value of every preset-able flag: given explicitly, else the preset's, else the default."""
    preset = PRESETS.get(getattr(args, "preset", None) or "", {})
    return {k: getattr(args, k) if getattr(args, k, None) is not None else preset.get(k, default)
            for k, default in DEFAULTS.items()}


def config_from_args(args: argparse.Namespace):
    from ..synth.generate import SynthConfig

    v = resolve(args)
    config = SynthConfig(out=args.out, drives=v["drives"], frames=v["frames"], seed=args.seed,
                         formats=tuple(f.strip() for f in v["formats"].split(",") if f.strip()),
                         width=v["width"], height=v["height"], cityscapes_width=v["cityscapes_size"][0],
                         cityscapes_height=v["cityscapes_size"][1], cityscapes_every=v["cityscapes_every"],
                         bag_storage=args.bag_storage, bag_image=args.bag_image,
                         exposure_jitter=args.exposure_jitter, noise_sigma=args.noise, overwrite=args.overwrite,
                         rig=args.rig, world=v["world"], test_drives=v["test_drives"])
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
