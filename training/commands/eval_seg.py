"""``sgdepth-ros eval-seg``: segmentation mIoU of a checkpoint on Cityscapes fine (or the synthetic world's
Cityscapes export), spec §6.2: images resized to 1024x512, labels at their native size, nearest upsampling."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sgdepth_ros.commands.arg_types import batch_size, count, multiple_of_32


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="checkpoint: our .safetensors or the reference SGDepth model.pth")
    p.add_argument("--data", required=True, type=Path, help="Cityscapes root (leftImg8bit/, gtFine/) or <synth>/cityscapes")
    p.add_argument("--split", default="val", help="split folder under leftImg8bit/ (default val)")
    p.add_argument("--width", type=multiple_of_32, default=1024, help="network input width (default 1024)")
    p.add_argument("--height", type=multiple_of_32, default=512, help="network input height (default 512)")
    p.add_argument("--label-kind", choices=("auto", "labelIds", "labelTrainIds"), default="auto",
                   help="which gtFine files to read (auto: labelIds, else labelTrainIds, per image)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--batch-size", type=batch_size, default=1)
    p.add_argument("--workers", type=count, default=0, help="data-loading processes (default 0)")
    p.add_argument("--json", type=Path, help="write the scores, per-class IoU and confusion counts to this file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from sgdepth_ros.backends import resolve_device
    from sgdepth_ros.model import load_checkpoint

    from ..data.cityscapes import CityscapesSegDataset
    from ..evaluation.report import checkpoint_info, format_seg_table, seg_report, write_json
    from ..evaluation.runner import evaluate_segmentation

    if not args.data.is_dir():
        print(f"error: --data {args.data}: no such folder", file=sys.stderr)
        return 2
    device = resolve_device(args.device)
    model = load_checkpoint(args.model, device)
    dataset = CityscapesSegDataset(args.data, args.split, height=args.height, width=args.width,
                                   label_kind=args.label_kind, native_labels=True)
    result = evaluate_segmentation(model, dataset, device=device, batch_size=args.batch_size,
                                   num_workers=args.workers, progress=not args.no_progress)
    print(f"evaluated {result.count} images of {args.data} ({args.split}, input {args.width}x{args.height}, "
          f"labels at native size)")
    print(format_seg_table(result.scores))
    if args.json:
        extra = {"data": str(args.data), "split": args.split, "width": args.width, "height": args.height,
                 "label_kind": args.label_kind, "device": str(device)}
        write_json(args.json, seg_report(result, checkpoint=checkpoint_info(model, args.model), extra_settings=extra))
        print(f"wrote {args.json}")
    return 0
