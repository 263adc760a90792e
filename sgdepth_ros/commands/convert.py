"""``sgdepth-ros convert``: a reference SGDepth model.pth (or one of ours) → our .safetensors format."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="reference SGDepth model.pth (or one of our .safetensors files)")
    p.add_argument("-o", "--output", required=True, help="output .safetensors file")
    p.add_argument("--fp16", action="store_true", help="store weights as float16 (half the size)")
    p.add_argument("--keep-pose", action="store_true",
                   help="keep the pose network (training, eval-pose and the node's ego-motion need it)")
    p.add_argument("--scale-factor", type=float, default=None,
                   help="metres per model unit to record in the metadata (e.g. measured on your camera)")
    p.add_argument("--scale-source", default=None, help="where the scale factor comes from (free text)")
    p.add_argument("--width", type=int, default=None, help="network input width to record (default 640)")
    p.add_argument("--height", type=int, default=None, help="network input height to record (default 192)")
    p.add_argument("--name", default=None, help="a name for the weights, e.g. 'SGDepth full'")


def run(args: argparse.Namespace) -> int:
    import torch

    from ..model import CheckpointError, load_checkpoint, save_checkpoint

    if args.scale_factor is not None and not args.scale_factor > 0:
        print(f"error: --scale-factor must be positive, got {args.scale_factor}", file=sys.stderr)
        return 2
    for dim in (args.width, args.height):
        if dim is not None and (dim <= 0 or dim % 32):
            print(f"error: --width/--height must be positive multiples of 32, got {dim}", file=sys.stderr)
            return 2
    try:
        model = load_checkpoint(args.source)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    meta = dict(model.metadata)
    if args.name:
        meta["provenance"] = {**meta.get("provenance", {}), "name": args.name}
    if args.scale_factor is not None:
        meta["scale"] = {"factor": args.scale_factor, "source": args.scale_source or "given to sgdepth-ros convert"}
    if args.width or args.height:
        meta["input_size"] = {"width": args.width or meta["input_size"]["width"],
                              "height": args.height or meta["input_size"]["height"]}
    out = save_checkpoint(model, args.output, meta, dtype=torch.float16 if args.fp16 else torch.float32,
                          inference_only=not args.keep_pose)
    size_mb = Path(out).stat().st_size / 1e6
    print(f"wrote {out} ({size_mb:.1f} MB, {'fp16' if args.fp16 else 'fp32'}, "
          f"{'with' if args.keep_pose else 'without'} pose network)")
    return 0
