"""``sgdepth-ros demo``: the README's main job on an embedded default.

Draws a few road images, runs ``infer`` on them and says where the results are. No trained
default model ships yet, so unless ``--model`` is given it runs a randomly initialised network
and says so plainly: the outputs then show that the whole pipeline works, not depth quality.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output", default="demo_output", help="folder for inputs, model and results")
    p.add_argument("--model", default=None, help="checkpoint to run (default: untrained random weights)")
    p.add_argument("--frames", type=int, default=4, help="number of drawn road images (1..100)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")


def make_untrained_checkpoint(path: Path, seed: int = 0) -> Path:
    """Write a randomly initialised SGDepth in our format, marked untrained in its metadata."""
    import torch

    from ..model import SGDepth, save_checkpoint

    torch.manual_seed(seed)
    model = SGDepth(pose_layers=None)
    meta = {"trained": False,
            "provenance": {"source": f"random initialisation (torch seed {seed})",
                           "note": "no trained default model ships yet; not a depth or segmentation result"}}
    return save_checkpoint(model, path, meta)


def run(args: argparse.Namespace) -> int:
    from ..imageio import write_rgb
    from ..samples import road_scene
    from . import infer

    if not 1 <= args.frames <= 100:
        print(f"error: --frames must be within 1..100, got {args.frames}")
        return 2
    out = Path(args.output)
    inputs = out / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    for i in range(args.frames):
        write_rgb(inputs / f"road_{i:03d}.png", road_scene(seed=i))
    model = Path(args.model) if args.model else make_untrained_checkpoint(out / "untrained_random_init.safetensors")
    parser = argparse.ArgumentParser()
    infer.add_arguments(parser)
    infer_args = parser.parse_args(["--model", str(model), "--input", str(inputs),
                                    "--output", str(out / "results"), "--device", args.device])
    code = infer.run(infer_args)
    print(f"\ndemo inputs: {inputs}\ndemo results: {out / 'results'} (see *_preview.png)")
    if not args.model:
        print("The network above had UNTRAINED random weights: this demo checks the pipeline end to end. "
              "Pass --model with a released SGDepth model.pth (or sgdepth-ros convert output) for real results.")
    return code
