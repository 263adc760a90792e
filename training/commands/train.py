"""``sgdepth-ros train``: SGDepth training on KITTI raw + Cityscapes (or the synthetic world), one command.

    sgdepth-ros train --preset zhou_full --kitti ~/data/kitti_raw --cityscapes ~/data/cityscapes --out runs/full
    sgdepth-ros train --preset synthetic_full --synthetic data/synth --out runs/synth --epochs 4
    sgdepth-ros train --resume runs/full                      # after a crash: continues exactly where it stopped
    torchrun --nproc_per_node 2 -m sgdepth_ros.cli train ...  # DDP, one process per GPU (gloo on CPUs)
    sgdepth-ros train --preset zhou_full ... --set automask=false --set grad_scales=1,0   # any setting, checked
    sgdepth-ros train --preset kitti_full --split-json ~/ifn/kitti_kitti_split ...       # SGDepth's JSON split
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from sgdepth_ros.commands.arg_types import size

# command-line flag → TrainConfig field, for the plain overrides (None = keep the preset's value)
_OVERRIDES = {
    "epochs": int, "batches_per_epoch": int, "depth_batch": int, "seg_batch": int, "lr": float, "lr_step": int,
    "lr_gamma": float, "width": int, "height": int, "num_workers": int, "seed": int, "device": str, "amp": str,
    "checkpoint_every_epochs": int, "checkpoint_every_steps": int, "log_every_steps": int,
    "image_every_steps": int, "max_steps": int, "max_seconds": float, "val_max_images": int,
    "masking_from_epoch": int, "split": str, "sides": str, "intrinsics": str, "missing": str, "pretrained": str,
    "init_weights": str, "num_layers": int, "split_pos": int,
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..config import PRESETS

    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="reference experiment (zhou_full, zhou_only_depth, kitti_full, kitti_only_depth) or "
                        "synthetic_full / synthetic_only_depth; default zhou_full, or synthetic_full with --synthetic")
    p.add_argument("--out", type=Path, help="run folder (config, checkpoints, TensorBoard logs); must be new")
    p.add_argument("--resume", type=Path, metavar="RUN", help="continue the run in this folder exactly")
    p.add_argument("--kitti", help="KITTI raw root (<date>/<date>_drive_XXXX_sync/image_0{2,3}/data)")
    p.add_argument("--cityscapes", help="Cityscapes root (leftImg8bit/, gtFine/); leave out for depth only")
    p.add_argument("--synthetic", help="a `sgdepth-ros synth` output folder (sets --kitti and --cityscapes)")
    for name, kind in _OVERRIDES.items():
        p.add_argument("--" + name.replace("_", "-"), type=kind, default=None, metavar=kind.__name__.upper(),
                       help=f"override the preset's {name}")
    p.add_argument("--set", action="append", default=[], dest="settings", metavar="KEY=VALUE",
                   help="set any training setting (config.json key), e.g. --set automask=false --set grad_scales=1,0 "
                        "--set smoothness=1e-3 --set max_depth=80 --set masking_linear=false; checked against its "
                        "type and valid range. Keys: " + ", ".join(_settable()))
    p.add_argument("--split-json", type=Path, default=None, metavar="DIR",
                   help="SGDepth's split folder (train.json, validation.json, test.json, e.g. kitti_kitti_split/): "
                        "converted into the split files of --split (a folder, or <kitti>/splits/<name>) first")
    p.add_argument("--seg-resize", type=size, default=None, metavar="WxH",
                   help="Cityscapes resize before the random zoom-out and crop (default 1024x512)")
    p.add_argument("--no-masking", action="store_true", help="turn the semantic masking of moving objects off")
    p.add_argument("--no-validate", action="store_true", help="skip validation between epochs")
    p.add_argument("--deterministic", action="store_true", help="deterministic algorithms (slower on GPU)")
    p.add_argument("--channels-last", action="store_true", help="channels_last memory format (GPU)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.epilog = "lr_gamma: 0.1 by default (monodepth2); the reference code's effective value is 1e-4."


def _settable() -> list[str]:
    from ..config import settable_fields

    return sorted(settable_fields())


def _settings(args: argparse.Namespace, overrides: dict) -> dict:
    """The ``--set`` values, typed; a key also given by its own flag (with another value) is an error."""
    from ..config import parse_setting

    settings: dict = {}
    for text in args.settings:
        key, value = parse_setting(text)
        if overrides.get(key) is not None and overrides[key] != value:
            raise ValueError(f"{key} is given twice (--{key.replace('_', '-')} and --set {text})")
        settings[key] = value
    return settings


def _convert_split_json(config, src: Path) -> None:
    """Write the split files of ``config.split`` from SGDepth's JSONs (kept when already identical): into the folder
    ``--split`` names, or ``<kitti>/splits/<name>`` — where training then reads them. Under torchrun only rank 0
    writes; the others wait for it when the process group forms."""
    from ..data.sgdepth_json import convert_sgdepth_split, describe

    if os.environ.get("RANK", "0") != "0":
        return
    split = Path(config.split)
    is_folder = split.is_absolute() or len(split.parts) > 1 or (split / "train_files.txt").is_file()
    target = split if is_folder else Path(config.kitti_root) / "splits" / config.split
    print(describe(convert_sgdepth_split(src, target), target))


def config_from_args(args: argparse.Namespace):
    from ..config import from_preset

    overrides = {name: getattr(args, name) for name in _OVERRIDES}
    kitti, cityscapes = args.kitti, args.cityscapes
    if args.synthetic:
        root = Path(args.synthetic)
        if not (root / "synth.json").is_file():
            raise ValueError(f"{root}: not a `sgdepth-ros synth` output (no synth.json)")
        kitti = kitti or str(root / "kitti")
        cityscapes = cityscapes or (str(root / "cityscapes") if (root / "cityscapes").is_dir() else None)
    preset = args.preset or ("synthetic_full" if args.synthetic else "zhou_full")
    overrides.update(kitti_root=kitti, cityscapes_root=cityscapes, seg_resize=args.seg_resize)
    if args.no_masking:
        overrides["masking"] = False
    if args.no_validate:
        overrides["validate"] = False
    if args.deterministic:
        overrides["deterministic"] = True
    if args.channels_last:
        overrides["channels_last"] = True
    config = from_preset(preset, settings=_settings(args, overrides), **overrides)
    if args.split_json is not None:
        _convert_split_json(config, args.split_json)
    return config


def run(args: argparse.Namespace) -> int:
    from ..config import TrainConfig, validate
    from ..loop import train

    if args.resume is not None:
        if args.out is not None and Path(args.out) != args.resume:
            print("error: give either --out (a new run) or --resume RUN, not both")
            return 2
        if args.settings or args.split_json is not None:
            print("error: a resumed run keeps its config.json (exact resume); --set and --split-json only start "
                  "new runs")
            return 2
        config = TrainConfig.load(args.resume / "config.json")
        # how far to go is per invocation: a resumed run goes to the end unless told
        config.max_steps, config.max_seconds = args.max_steps, args.max_seconds
        validate(config)
        run_dir, resume = args.resume, True
    else:
        if args.out is None:
            print("error: --out RUN_FOLDER is required for a new run (or --resume RUN)")
            return 2
        config = config_from_args(args)
        run_dir, resume = args.out, False
    result = train(config, run_dir, resume=resume, progress_bar=False if args.no_progress else None)
    state = "finished" if result.finished else f"stopped at step {result.progress.global_step} (resumable)"
    print(f"{state}: {run_dir} — epoch {result.progress.epoch}/{config.epochs}, "
          f"{result.images_per_second:.1f} images/s; export with: sgdepth-ros export {run_dir}")
    return 0
