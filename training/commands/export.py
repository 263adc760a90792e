"""``sgdepth-ros export RUN -o model.safetensors``: a training run → the checkpoint the node and `infer` run."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", type=Path, help="training run folder (config.json + checkpoints/)")
    p.add_argument("-o", "--out", type=Path, required=True, help="output .safetensors file")
    p.add_argument("--checkpoint", default=None, help="a file in RUN/checkpoints (default: the newest)")
    p.add_argument("--fp16", action="store_true", help="store float16 weights (half the size)")
    p.add_argument("--scale-split", default=None, metavar="val|test|FILE",
                   help="measure a metric scale factor (median gt/pred) on this split's frames with ground truth "
                        "and store it: the node then publishes metres")
    p.add_argument("--max-images", type=int, default=None, help="cap the frames used for the scale")
    p.add_argument("--name", default=None, help="model name stored in the metadata")
    p.add_argument("--device", default="cpu", help="device for the scale measurement")


def run(args: argparse.Namespace) -> int:
    from ..export import export_run

    if not args.run.is_dir():
        print(f"error: {args.run}: no such run folder")
        return 2
    if args.out.suffix != ".safetensors":
        print(f"error: {args.out}: the output must end in .safetensors")
        return 2
    path, meta = export_run(args.run, args.out, state=args.checkpoint, fp16=args.fp16, scale_split=args.scale_split,
                            name=args.name, device=args.device, max_images=args.max_images)
    size_mb = path.stat().st_size / 1e6
    print(f"wrote {path} ({size_mb:.1f} MB, {'fp16' if args.fp16 else 'fp32'}), from "
          f"{meta['provenance']['checkpoint']} (epoch {meta['provenance']['epoch']}, "
          f"step {meta['provenance']['global_step']})")
    if "scale" in meta:
        acc = meta["accuracy"]
        print(f"metric scale factor {meta['scale']['factor']:.4f} m/unit ({meta['scale']['source']}); "
              f"AbsRel {acc['metrics_fixed_scale']['abs_rel']:.3f} with it, "
              f"{acc['metrics_median_scaled']['abs_rel']:.3f} median-scaled")
        print(json.dumps({"fixed_scale": acc["metrics_fixed_scale"]}, indent=None))
    return 0
