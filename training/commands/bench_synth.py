"""``sgdepth-ros bench-synth``: how fast the synthetic world renders, and how long the demo drive takes to make.

Render throughput is frames per second of the frame-parallel renderer (``--workers`` processes, default 2) after
the workers have started, at 640×192 and 1242×375; single-process latency (Embree on 2 threads) is shown beside
it. The demo drive is ``sgdepth-ros synth`` with DEMO_DRIVE settings, every format, timed end to end.
"""
from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

SIZES = ((640, 192), (1242, 375))
TARGET_FPS = {(640, 192): 20.0, (1242, 375): 5.0}
DEMO_DRIVE = dict(drives=1, frames=50, width=1242, height=375)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--frames", type=int, default=40, help="frames rendered per size")
    p.add_argument("--workers", type=int, default=2, help="render processes")
    p.add_argument("--output", default="docs/benchmarks.md", help="Markdown file to update ('-' prints only)")


def throughput(width: int, height: int, frames: int, workers: int) -> tuple[float, float]:
    """(frames/s of the worker pool, ms/frame of one process with 2 Embree threads) at width×height."""
    from ..synth.camera import kitti_camera
    from ..synth.generate import FrameSource, render_task

    camera = kitti_camera(width, height)
    tasks = [(0, 0, frames + workers, camera, i, 0.0, 0.0) for i in range(frames + workers)]
    with FrameSource(workers) as source:
        stream = source.frames(tasks)
        for _ in range(workers):  # warm-up: workers start and build the town
            next(stream)
        start = time.perf_counter()
        n = sum(1 for _ in stream)
        fps = n / (time.perf_counter() - start)
    render_task(tasks[0])  # single process: build once, then time
    start = time.perf_counter()
    for task in tasks[1:11]:
        render_task(task)
    return fps, (time.perf_counter() - start) / 10 * 1000


def demo_drive_seconds(workers: int) -> float:
    from ..synth.generate import SynthConfig, generate

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        generate(SynthConfig(Path(tmp) / "demo", workers=workers, **DEMO_DRIVE), progress=False)
        return time.perf_counter() - start


def run(args: argparse.Namespace) -> int:
    from sgdepth_ros.commands.helpers import machine_description, update_markdown

    rows = []
    for w, h in SIZES:
        fps, single_ms = throughput(w, h, args.frames, args.workers)
        rows.append(f"| {w}×{h} | {fps:.1f} | {TARGET_FPS[(w, h)]:.0f} | {'yes' if fps >= TARGET_FPS[(w, h)] else 'NO'}"
                    f" | {single_ms:.0f} ms |")
        print(rows[-1])
    seconds = demo_drive_seconds(args.workers)
    d = DEMO_DRIVE
    table = "\n".join([
        f"## Synthetic world rendering ({dt.date.today()}, `sgdepth-ros bench-synth --frames {args.frames} "
        f"--workers {args.workers}`)",
        f"Machine: {machine_description()}", "",
        "Frame = colour + z-depth + labelIds + instance ids, Embree ray casting, trilinear textures; throughput of "
        f"{args.workers} worker processes after start-up; latency of one process with 2 Embree threads beside it.", "",
        "| size | frames/s | target | met | one process, ms/frame |", "|---|---|---|---|---|", *rows, "",
        f"Demo drive ({d['drives']} drive × {d['frames']} frames at {d['width']}×{d['height']}, KITTI + Cityscapes "
        f"(every 5th frame, 1024×512) + MCAP bag, files written): **{seconds:.1f} s**.",
    ])
    print(table)
    if args.output != "-":
        update_markdown(Path(args.output), table, key="synth")
        print(f"updated {args.output}")
    return 0
