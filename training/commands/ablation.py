"""``sgdepth-ros ablation``: the masking ablation of issue 17 — train runs a–e on the same synthetic data, evaluate
them on the test drives (all / moving / static pixels, holes on moving objects) and write the report.

    sgdepth-ros synth --preset dynamic --out data/ablation              # the data (scripts/ablation.sh does both)
    sgdepth-ros ablation --data data/ablation --out runs/ablation --report docs/ablation.md
    sgdepth-ros ablation ... --seeds 1,2                                # again: finished runs kept, others resumed
    sgdepth-ros ablation ... --no-train                                  # report on what the runs have so far

Runs: a only depth (synthetic_only_depth), b full without masking, c full with masking, d masking every
dynamic-class pixel without the static-frame detection, e masking from epoch 5 of 20 (the schedule's diagnostic). Run
folders: <out>/<run>_seed<seed>/ (ordinary training runs: export, eval-depth and train --resume work on them).
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from sgdepth_ros.commands.arg_types import multiple_of_32, size


def _keys(text: str) -> tuple[str, ...]:
    from ..ablation import RUNS

    keys = tuple(t.strip() for t in text.split(",") if t.strip())
    if not keys or not set(keys) <= set(RUNS) or len(set(keys)) != len(keys):
        raise argparse.ArgumentTypeError(f"must be a comma list of distinct runs {', '.join(RUNS)}; got {text!r}")
    return keys


def _seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(t) for t in text.replace(" ", ",").split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a comma list of integers ≥ 0, got {text!r}") from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"must be a comma list of distinct integers ≥ 0, got {text!r}")
    return seeds


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, type=Path,
                   help="a `sgdepth-ros synth --preset dynamic` output (KITTI + Cityscapes formats)")
    p.add_argument("--out", type=Path, default=Path("runs/ablation"), help="folder of the run folders and "
                                                                           "ablation.json (default runs/ablation)")
    p.add_argument("--report", type=Path, default=None, help="write the markdown report here (e.g. docs/ablation.md)")
    p.add_argument("--figure", type=Path, default=None, help="the figure PNG (default: the report's path with .png)")
    p.add_argument("--runs", type=_keys, default=None, help="which runs (default all: a,b,c,d,e)")
    p.add_argument("--seeds", type=_seeds, default=(1,), help="training seeds, e.g. 1,2 (default 1)")
    p.add_argument("--steps", type=_positive, default=800,
                   help="steps per run (every run the same; rounded to a multiple of --epochs; default 800 ≈ 1 h per "
                        "run on 2 CPU cores at 320x96)")
    p.add_argument("--epochs", type=_positive, default=20,
                   help="epochs the steps are cut into (default 20, the reference's; lr step and masking start at "
                        "15/20 of them)")
    p.add_argument("--width", type=multiple_of_32, default=320, help="network width (default 320; 640 on a GPU)")
    p.add_argument("--height", type=multiple_of_32, default=96, help="network height (default 96; 192 on a GPU)")
    p.add_argument("--seg-resize", type=size, default=None, metavar="WxH",
                   help="Cityscapes-format resize before the crop (default: the data's size)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--amp", choices=("off", "bf16", "fp16"), default="off", help="mixed precision (GPU: bf16)")
    p.add_argument("--pretrained", choices=("scratch", "imagenet", "auto"), default="scratch",
                   help="encoder initialisation (default scratch: the same on every machine)")
    p.add_argument("--num-workers", type=int, default=1, help="data-loading processes per run (default 1)")
    p.add_argument("--set", action="append", default=[], dest="settings", metavar="[RUN:]KEY=VALUE",
                   help="a training setting for every run, or for one (c:masking_from_epoch=10); e.g. to find out "
                        "why an effect is missing")
    p.add_argument("--figure-frames", type=int, default=3, help="test frames in the figure (default 3)")
    p.add_argument("--eval-batch", type=_positive, default=4, help="evaluation batch size")
    p.add_argument("--no-train", action="store_true",
                   help="train nothing: evaluate and report the runs as they are (partial ones marked)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _per_run_settings(texts: list[str]) -> dict[str, dict]:
    from ..ablation import RUNS
    from ..config import parse_setting

    out: dict[str, dict] = {}
    for text in texts:
        run, sep, rest = text.partition(":")
        if sep and run.strip() in RUNS and "=" not in run:
            key, value = parse_setting(rest)
            out.setdefault(run.strip(), {})[key] = value
        else:
            key, value = parse_setting(text)
            out.setdefault("*", {})[key] = value
    return out


def run(args: argparse.Namespace) -> int:
    from ..ablation import RUNS, StudySettings, run_study

    try:
        # absolute in the run configs (a run resumes from any working directory), as given in the report
        study = StudySettings(data=args.data.resolve(), out=args.out.resolve(), runs=args.runs or tuple(RUNS),
                              seeds=args.seeds, steps=args.steps, epochs=args.epochs, width=args.width,
                              height=args.height, device=args.device,
                              amp=args.amp, pretrained=args.pretrained, num_workers=args.num_workers,
                              seg_resize=args.seg_resize, settings=_per_run_settings(args.settings),
                              figure_frames=args.figure_frames, eval_batch=args.eval_batch)
        study.validate()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    world = study.manifest().get("config", {}).get("world", "default")
    if world != "dynamic":
        print(f"warning: {args.data} shows the {world} world; the ablation's data is `synth --preset dynamic`",
              file=sys.stderr)
    command = "sgdepth-ros ablation " + " ".join(shlex.quote(a) for a in sys.argv[2:]) \
        if len(sys.argv) > 2 and sys.argv[1] == "ablation" else None
    try:
        doc = run_study(study, train=not args.no_train, report=args.report, figure=args.figure,
                        progress=False if args.no_progress else None, command=command)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for r in doc["results"]:
        m, s = r["regions"].get("moving"), r["regions"].get("static")
        holes = (r.get("holes") or {}).get("fraction")
        print(f"({r['run']}) seed {r['seed']}, step {r['global_step']}{'' if r['finished'] else ' (partial)'}: "
              f"AbsRel all {r['regions']['all']['abs_rel']:.3f}, moving "
              + (f"{m['abs_rel']:.3f}" if m else "–") + ", static " + (f"{s['abs_rel']:.3f}" if s else "–")
              + ", holes " + (f"{100 * holes:.1f} %" if holes is not None else "–"))
    print(f"wrote {Path(args.out) / 'ablation.json'}" + (f" and {args.report}" if args.report else ""))
    return 0
