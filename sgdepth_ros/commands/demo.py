"""``sgdepth-ros demo``: the README's main job on the embedded default model.

Renders a short drive of the synthetic world (a town the default model never saw in training), runs ``infer`` on it
with the shipped default checkpoint (trained on the synthetic world, fp16), compares the depth with the rendered
ground truth and says where everything is. ``--model`` runs any other checkpoint instead; without the default file
(a checkout without it) the demo falls back to random weights and says so plainly.
"""
from __future__ import annotations

import argparse
from pathlib import Path

DEMO_TOWN_SEED = 1  # the default model was trained on seed 7's towns


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output", default="demo_output", help="folder for inputs, model and results")
    p.add_argument("--model", default=None, help="checkpoint to run (default: the shipped synthetic-world model)")
    p.add_argument("--frames", type=int, default=4, help="number of synthetic frames (3..100)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")


def make_untrained_checkpoint(path: Path, seed: int = 0) -> Path:
    """Write a randomly initialised SGDepth in our format, marked untrained in its metadata."""
    import torch

    from ..model import SGDepth, save_checkpoint

    torch.manual_seed(seed)
    model = SGDepth(pose_layers=None)
    meta = {"trained": False,
            "provenance": {"source": f"random initialisation (torch seed {seed})",
                           "note": "not a depth or segmentation result"}}
    return save_checkpoint(model, path, meta)


def render_drive(out: Path, frames: int) -> tuple[Path, Path]:
    """One synthetic drive in KITTI layout under ``out`` → (images folder, KITTI root)."""
    from sgdepth_training.synth.generate import SynthConfig, generate

    generate(SynthConfig(out=out, drives=1, frames=frames, seed=DEMO_TOWN_SEED, formats=("kitti",), overwrite=True),
             progress=False)
    images = sorted((out / "kitti").glob("*/*_sync/image_02/data"))[0]
    return images, out / "kitti"


def depth_accuracy(model_path: Path, kitti_root: Path, frames: int, device: str) -> str:
    """One line: AbsRel and δ<1.25 of the checkpoint on the rendered frames (its metric scale when it has one)."""
    from sgdepth_ros.model import load_checkpoint
    from sgdepth_training.data.kitti import KittiRawDepthDataset
    from sgdepth_training.data.splits import SplitEntry
    from sgdepth_training.evaluation.runner import evaluate_depth

    from ..backends import resolve_device

    model = load_checkpoint(model_path)
    meta = model.metadata
    folder = next(kitti_root.glob("*/*_sync")).relative_to(kitti_root).as_posix()
    entries = [SplitEntry(folder, i, "l") for i in range(frames)]
    size = meta["input_size"]
    dataset = KittiRawDepthDataset(kitti_root, entries, frame_offsets=(0,), height=size["height"],
                                   width=size["width"])
    factor = (meta.get("scale") or {}).get("factor")
    result = evaluate_depth(model, dataset, device=resolve_device(device), protocol="capped",
                            scaling="fixed" if factor else "median", fixed_scale=factor,
                            min_depth=meta["min_depth"], max_depth=meta["max_depth"], progress=False)
    how = f"its metric scale ×{factor:.3g}" if factor else "per-image median scaling"
    return (f"depth vs rendered ground truth on these {result.count} frames ({how}, 1e-3–80 m): "
            f"AbsRel {result.metrics['abs_rel']:.3f}, δ<1.25 {result.metrics['a1']:.3f}")


def run(args: argparse.Namespace) -> int:
    from ..default_model import default_model_path
    from . import infer

    if not 3 <= args.frames <= 100:
        print(f"error: --frames must be within 3..100, got {args.frames}")
        return 2
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    model = Path(args.model) if args.model else default_model_path()
    untrained = model is None
    if untrained:
        model = make_untrained_checkpoint(out / "untrained_random_init.safetensors")
    print(f"rendering {args.frames} frames of a synthetic drive …")
    inputs, kitti_root = render_drive(out / "synth", args.frames)
    parser = argparse.ArgumentParser()
    infer.add_arguments(parser)
    infer_args = parser.parse_args(["--model", str(model), "--input", str(inputs),
                                    "--output", str(out / "results"), "--device", args.device])
    code = infer.run(infer_args)
    print(f"\ndemo inputs: {inputs}\ndemo results: {out / 'results'} (see *_preview.png)")
    if untrained:
        print("The network above had UNTRAINED random weights (the default model file is missing): this checks the "
              "pipeline end to end. Pass --model with a released SGDepth model.pth for real results.")
    else:
        print(depth_accuracy(model, kitti_root, args.frames, args.device))
        if not args.model:
            print("Default model: trained on the synthetic world only. Real cameras need the released SGDepth "
                  "weights (--model model.pth) or a KITTI-trained model.")
    return code
