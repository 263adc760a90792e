"""``sgdepth-ros export RUN -o model.safetensors``: a training run → the checkpoint the node and `infer` run."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", type=Path, help="training run folder (config.json + checkpoints/)")
    p.add_argument("-o", "--out", type=Path, required=True, help="output .safetensors file")
    p.add_argument("--checkpoint", default=None, help="a file in RUN/checkpoints (default: the newest)")
    p.add_argument("--fp16", action="store_true", help="store float16 weights (half the size)")
    p.add_argument("--keep-pose", action="store_true",
                   help="keep the pose network (eval-pose and the node's ego-motion output need it; +12.5 M weights)")
    p.add_argument("--scale-split", default=None, metavar="val|test|FILE",
                   help="measure a metric scale factor (median gt/pred) on this split's frames with ground truth "
                        "and store it: the node then publishes metres")
    p.add_argument("--test-split", default=None, metavar="test|FILE",
                   help="also measure and store the depth accuracy on this split (median-scaled and with the "
                        "scale; moving-object pixels too on the synthetic world)")
    p.add_argument("--seg-val", default=None, metavar="CITYSCAPES_ROOT",
                   help="also measure and store the mIoU on this Cityscapes root's val split")
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
                            test_split=args.test_split, seg_val=args.seg_val, name=args.name, device=args.device, max_images=args.max_images,
                            keep_pose=args.keep_pose)
    size_mb = path.stat().st_size / 1e6
    print(f"wrote {path} ({size_mb:.1f} MB, {'fp16' if args.fp16 else 'fp32'}), from "
          f"{meta['provenance']['checkpoint']} (epoch {meta['provenance']['epoch']}, "
          f"step {meta['provenance']['global_step']})")
    if "scale" in meta:
        acc = meta["accuracy"]
        print(f"metric scale factor {meta['scale']['factor']:.4f} m/unit ({meta['scale']['source']}); "
              f"AbsRel {acc['metrics_fixed_scale']['abs_rel']:.3f} with it, "
              f"{acc['metrics_median_scaled']['abs_rel']:.3f} median-scaled")
    test = meta.get("accuracy", {}).get("test")
    if test is not None:
        for scaling in ("median_scaled", "fixed_scale"):
            for region, m in test.get(scaling, {}).items():
                if m is None:
                    print(f"test ({scaling}): no {region} pixels in the split")
                    continue
                print(f"test ({test['images']} frames, {scaling}, {region} pixels): AbsRel {m['abs_rel']:.3f}, "
                      f"δ<1.25 {m['a1']:.3f}")
    seg = meta.get("accuracy", {}).get("segmentation")
    if seg is not None:
        print(f"segmentation ({seg['images']} val images at {seg['input']}): mIoU {100 * seg['miou']:.1f} % "
              f"{seg['miou_over']}")
    return 0
