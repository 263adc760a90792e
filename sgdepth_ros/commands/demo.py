"""``sgdepth-ros demo``: the README's main job on the embedded default model.

Renders a short drive of the synthetic world as a rosbag2 bag (a town the default model never saw in training:
camera images, CameraInfo, ground-truth depth and labels, tf), then replays it **live** through the real
``sgdepth_node`` process over DDS with the shipped default checkpoint (``sgdepth-ros replay --mode live
--use-sim-time``) and writes the output bag, the accuracy/latency report and a preview picture. ``--model`` runs any
other checkpoint instead; without the default file (a checkout without it) the demo falls back to random weights and
says so plainly.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEMO_TOWN_SEED = 1  # the default model was trained on seed 7's towns
DEMO_SIZE = (640, 192)  # camera width × height of the rendered drive


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output", default="demo_output", help="folder for the drive bag and the replay (demo_output)")
    p.add_argument("--model", default=None, help="checkpoint to run (default: the shipped synthetic-world model)")
    p.add_argument("--frames", type=int, default=40, help="frames of the drive at 10 Hz (3..300, default 40)")
    p.add_argument("--mode", choices=("live", "offline"), default="live",
                   help="live: through the node process over DDS (default); offline: the predictor in process")
    p.add_argument("--rate", type=float, default=1.0, help="live: multiple of real time (default 1.0)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")


def render_drive_bag(out: Path, frames: int) -> Path:
    """One synthetic drive as an MCAP bag under ``out`` → the bag folder."""
    from sgdepth_training.synth.generate import SynthConfig, generate

    generate(SynthConfig(out=out, drives=1, frames=frames, seed=DEMO_TOWN_SEED, formats=("bag",),
                         width=DEMO_SIZE[0], height=DEMO_SIZE[1], overwrite=True), progress=False)
    return next((out / "bags").iterdir())


def run(args: argparse.Namespace) -> int:
    from ..cli import run_command, training_missing_message
    from ..default_model import default_model_path
    from .helpers import make_untrained_checkpoint

    try:  # the drive is rendered by the synthetic world of the offline tools
        import sgdepth_training.synth.generate  # noqa: F401
    except ImportError as error:
        print(training_missing_message("'sgdepth-ros demo' (it renders its drive with the synthetic world)", error)
              + " Without them, replay a bag of your own: sgdepth-ros replay BAG --out OUT.", file=sys.stderr)
        return 2
    if not 3 <= args.frames <= 300:
        print(f"error: --frames must be within 3..300, got {args.frames}")
        return 2
    if not args.rate > 0:
        print(f"error: --rate must be > 0, got {args.rate}")
        return 2
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    model = Path(args.model) if args.model else default_model_path()
    untrained = model is None
    if untrained:
        model = make_untrained_checkpoint(out / "untrained_random_init.safetensors")
    width, height = DEMO_SIZE
    print(f"rendering a {args.frames}-frame synthetic drive ({width}x{height}, 10 Hz) as a rosbag2 bag …")
    bag = render_drive_bag(out / "synth", args.frames)
    print(f"replaying it {args.mode} " + ("through sgdepth_node over DDS " if args.mode == "live" else "")
          + f"with {model.name} …")
    replay_args = [str(bag), "--model", str(model), "--mode", args.mode, "--out", str(out / "replay"),
                   "--overwrite", "--device", args.device]
    if args.mode == "live":
        replay_args += ["--rate", f"{args.rate:g}", "--use-sim-time"]
    code = run_command("replay", replay_args)
    print(f"\ndemo drive bag: {bag}\ndemo replay: {out / 'replay'} (report.md, preview.png, the output bag)")
    if untrained:
        print("The network above had UNTRAINED random weights (the default model file is missing): this checks the "
              "pipeline end to end. Pass --model with a released SGDepth model.pth for real results.")
    elif not args.model:
        print("Default model: trained on the synthetic world only. Real cameras need the released SGDepth "
              "weights (--model model.pth) or a KITTI-trained model.")
    return code
