"""``sgdepth-ros export-onnx``: a checkpoint's inference graph → an ONNX file (for TensorRT, ONNX Runtime, …).

Input ``image`` [N,3,H,W] float32 (ImageNet-normalised RGB), outputs ``disparity`` [N,1,H,W] float32 and
``labels`` [N,H,W] int32 trainIds (see :mod:`sgdepth_ros.onnx_export`). H×W is fixed at export (default: the
checkpoint's input size); the batch N is fixed (``--batch``) unless ``--dynamic-batch``.
"""
from __future__ import annotations

import argparse
import sys

from .arg_types import batch_size, size


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..onnx_export import DEFAULT_OPSET, MIN_OPSET

    p.add_argument("checkpoint", help="our .safetensors file or a reference SGDepth model.pth")
    p.add_argument("-o", "--output", required=True, help="the ONNX file to write")
    p.add_argument("--input-size", type=size, default=None, metavar="WxH",
                   help="network input, multiples of 32 (default: the checkpoint's, 640x192 for the released models)")
    p.add_argument("--tasks", default="depth,segmentation",
                   help="comma list of depth, segmentation: the outputs the graph computes (default both)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                   help=f"ONNX opset (default {DEFAULT_OPSET}, at least {MIN_OPSET})")
    p.add_argument("--dynamic-batch", action="store_true", help="leave the batch axis free (named 'batch')")
    p.add_argument("--batch", type=batch_size, default=1, help="the fixed batch without --dynamic-batch (default 1)")
    p.add_argument("--check", action="store_true",
                   help="run the file with ONNX Runtime on the CPU against PyTorch fp32 and print the differences "
                        "(needs onnxruntime); exit 1 when they disagree")


def run(args: argparse.Namespace) -> int:
    from ..backends import task_set
    from ..model import load_checkpoint
    from ..onnx_export import check_onnx, export_onnx

    try:
        tasks = task_set(t.strip() for t in args.tasks.split(",") if t.strip())
    except ValueError as exc:
        print(f"error: --tasks: {exc}", file=sys.stderr)
        return 2
    model = load_checkpoint(args.checkpoint)
    meta = model.metadata["input_size"]
    w, h = args.input_size or (meta["width"], meta["height"])
    path = export_onnx(model, args.output, (h, w), tasks, opset=args.opset, dynamic_batch=args.dynamic_batch,
                       batch=args.batch)
    batch = "dynamic batch" if args.dynamic_batch else f"batch {args.batch}"
    print(f"wrote {path}: input image [N,3,{h},{w}] float32 ({batch}), outputs "
          f"{', '.join(('disparity [N,1,H,W] float32' if t == 'depth' else 'labels [N,H,W] int32') for t in tasks)}, "
          f"opset {args.opset}")
    if not args.check:
        return 0
    result = check_onnx(model, path, (h, w), tasks, batch=2 if args.dynamic_batch else args.batch)
    print("ONNX Runtime (CPU) vs PyTorch fp32: " + ", ".join(f"{k} {v:.3g}" for k, v in result.items()))
    ok = result.get("disparity_max_abs_error", 0.0) <= 1e-4 and result.get("labels_agreement", 1.0) >= 0.999
    if not ok:
        print("error: the ONNX graph disagrees with PyTorch (limits: disparity 1e-4, labels 99.9 %)", file=sys.stderr)
    return 0 if ok else 1
