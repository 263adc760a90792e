"""``sgdepth-ros bench-train``: training throughput (images/s) of the full SGDepth step on this machine.

A step here is what the trainer does per iteration: the joint forward (depth batch + segmentation batch through the
shared encoder, pose net on both frame pairs), view synthesis at 4 scales, the losses, backward and the Adam update.
Inputs are random tensors of the right shapes (data loading runs in worker processes in real training and is not
measured). Images/s counts depth + segmentation images. On a GPU the fp32 baseline is compared with AMP (bf16) +
channels_last.
"""
from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path

CASES = (  # name, width, height, depth batch, seg batch, masking active
    ("full 6+6", 640, 192, 6, 6, False),
    ("full 6+6, masking on", 640, 192, 6, 6, True),
    ("only depth 12", 640, 192, 12, 0, False),
    ("full 6+6 at 320×96", 320, 96, 6, 6, False),
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=int, default=3, help="timed steps per case (after one warm-up step)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda")
    p.add_argument("--output", default="docs/benchmarks.md", help="Markdown file to update ('-' prints only)")


def _batch(width: int, height: int, depth_batch: int, seg_batch: int, device):
    import torch

    g = torch.Generator().manual_seed(0)
    K = torch.tensor([[0.58 * width, 0, 0.5 * width, 0], [0, 1.92 * height, 0.5 * height, 0], [0, 0, 1, 0],
                      [0, 0, 0, 1]]).repeat(depth_batch, 1, 1)
    depth = {"K": K, "inv_K": torch.linalg.inv(K)}
    for f in (0, -1, 1):
        image = torch.rand(depth_batch, 3, height, width, generator=g)
        depth[("color", f)] = image
        depth[("color_aug", f)] = image
    seg = None
    if seg_batch:
        seg = {"color_aug": torch.rand(seg_batch, 3, height, width, generator=g),
               "segmentation": torch.randint(0, 19, (seg_batch, height, width), generator=g)}
    return depth, seg


def measure(width: int, height: int, depth_batch: int, seg_batch: int, masking: bool, steps: int, device,
            amp: str = "off", channels_last: bool = False) -> float:
    """Images per second over ``steps`` training steps after one warm-up step."""
    import contextlib

    import torch

    from ..masking import MaskingSchedule
    from ..network import JointNetwork, build_model
    from ..step import LossSettings, training_loss

    model, _ = build_model(18, 1, 4, (0.9, 0.1) if seg_batch else (1.0, 0.0), "scratch")
    model.to(device).train()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    net = JointNetwork(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    schedule = MaskingSchedule(from_epoch=0, threshold=0.5) if masking else None
    depth, seg = _batch(width, height, depth_batch, seg_batch, device)
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if amp == "bf16" else contextlib.nullcontext())

    def step():
        with autocast:
            result = training_loss(net, depth, seg, LossSettings(), schedule, device)
        optimizer.zero_grad(set_to_none=True)
        result.loss.backward()
        optimizer.step()

    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * (depth_batch + seg_batch) / (time.perf_counter() - start)


def run(args: argparse.Namespace) -> int:
    import torch

    from sgdepth_ros.backends import resolve_device
    from sgdepth_ros.commands.helpers import machine_description, update_markdown

    if args.steps < 1:
        print("error: --steps must be ≥ 1")
        return 2
    device = resolve_device(args.device)
    variants = [("fp32", "off", False)]
    if device.type == "cuda":
        variants.append(("AMP bf16 + channels_last", "bf16", True))
    rows = []
    for name, w, h, db, sb, masking in CASES:
        speeds = [measure(w, h, db, sb, masking, args.steps, device, amp, cl) for _, amp, cl in variants]
        rows.append((name, w, h, speeds))
        print(f"{name:<24} {w}x{h}: " + ", ".join(f"{v[0]} {s:.2f} images/s" for v, s in zip(variants, speeds)))
    header = "| case | input | " + " | ".join(f"{v[0]} images/s" for v in variants) + " |"
    lines = [
        "## Training throughput (`sgdepth-ros bench-train`)",
        "",
        f"Machine: {machine_description()}; {device}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"{args.steps} timed steps after one warm-up; {dt.date.today().isoformat()}.",
        "One step = joint forward (depth + segmentation batch through the shared encoder, pose net on both pairs), "
        "view synthesis at 4 scales, losses, backward, Adam. Images/s counts depth + segmentation images.",
        "",
        header,
        "|---|---|" + "---|" * len(variants),
    ]
    for name, w, h, speeds in rows:
        lines.append(f"| {name} | {w}×{h} | " + " | ".join(f"{s:.2f}" for s in speeds) + " |")
    if device.type != "cuda":
        lines += ["", "No GPU on this machine: the AMP/channels_last comparison and the ≥ 2× target over the reference's "
                      "fp32 GPU throughput need `sgdepth-ros bench-train --device cuda` on a GPU."]
    section = "\n".join(lines)
    if args.output != "-":
        update_markdown(Path(args.output), section, key="train")
        print(f"updated {args.output}")
    return 0
