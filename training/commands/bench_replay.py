"""``sgdepth-ros bench-replay``: bag replay throughput (offline) and latency under load (live), on a rendered drive.

Renders one synthetic drive bag (KITTI-sized 1242×375 at 10 Hz by default), then runs ``sgdepth-ros replay`` on it
as a user would, each in its own process: offline with each CPU backend (frames/s), and live through the node at
several multiples of the bag's rate (delivered / dropped frames, latency send → outputs). Writes the table into
docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from sgdepth_ros.commands.arg_types import positive_float, size


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--frames", type=int, default=60, help="frames of the drive (10 Hz; default 60)")
    p.add_argument("--size", type=size, default=(1242, 375), help="camera image size (default 1242x375)")
    p.add_argument("--rates", type=positive_float, nargs="+", default=[1.0, 2.0, 4.0],
                   help="live: multiples of the bag's 10 Hz (default 1 2 4)")
    p.add_argument("--backends", nargs="+", default=["openvino", "torch"], choices=("openvino", "torch"),
                   help="offline backends (default openvino torch)")
    p.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    p.add_argument("--device", default="cpu", help="auto | cpu | cuda | cuda:N (default cpu)")
    p.add_argument("--output", default="docs/benchmarks.md", help="Markdown file to update ('-' prints only)")


def _replay(bag: Path, out: Path, *args: str) -> dict:
    command = [sys.executable, "-m", "sgdepth_ros.cli", "replay", str(bag), "--out", str(out), "--no-bag",
               "--previews", "0", *args]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return json.loads((out / "report.json").read_text())


def run(args: argparse.Namespace) -> int:
    from sgdepth_ros.commands.helpers import machine_description, update_markdown
    from sgdepth_ros.default_model import default_model_path

    from ..synth.generate import SynthConfig, generate

    if args.frames < 10:
        print("error: --frames must be ≥ 10")
        return 2
    model = args.model or str(default_model_path())
    width, height = args.size
    rows_offline, rows_live = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        generate(SynthConfig(out=tmp / "synth", drives=1, frames=args.frames, seed=1, formats=("bag",),
                             width=width, height=height), progress=False)
        bag = next((tmp / "synth" / "bags").iterdir())
        common = ["--model", model, "--device", args.device]
        for backend in args.backends:
            r = _replay(bag, tmp / f"offline_{backend}", *common, "--backend", backend)
            lat = r["latency_ms"]
            rows_offline.append(f"| {backend} | {r['frames']['delivered']} | {r['throughput_fps']:.1f} | "
                                f"{lat['p50']:.1f} / {lat['p95']:.1f} | "
                                f"{r['depth']['median']['metrics']['abs_rel']:.3f} |")
            print(rows_offline[-1])
        for rate in args.rates:
            r = _replay(bag, tmp / f"live_{rate:g}", *common, "--mode", "live", "--rate", f"{rate:g}",
                        "--use-sim-time")
            f, lat, depth_lat, node = r["frames"], r["latency_ms"], r["latency_depth_ms"], r["node"] or {}
            rows_live.append(
                f"| {10 * rate:g} Hz (×{rate:g}) | {f['sent']} | {f['delivered']} | {f['dropped_by_node']} / "
                f"{f['lost']} | {r['throughput_fps']:.1f} | {depth_lat['p50']:.0f} / {depth_lat['p95']:.0f} | "
                f"{lat['p50']:.0f} / {lat['p95']:.0f} | {float(node.get('predict_p50_ms', 'nan')):.0f} | "
                f"{r['depth']['median']['metrics']['abs_rel']:.3f} |")
            print(rows_live[-1])
    text = "\n".join([
        "## Bag replay (`sgdepth-ros bench-replay`)", "",
        f"A rendered synthetic drive bag, {args.frames} frames of {width}×{height} rgb8 at 10 Hz with CameraInfo, "
        "dense depth and label ground truth, replayed by `sgdepth-ros replay` with the shipped default model "
        "(320×96), every output rendered at the camera size. Each run is its own process, as a user runs it.", "",
        f"- machine: {machine_description()}",
        f"- date: {dt.date.today().isoformat()}; command: `sgdepth-ros bench-replay --frames {args.frames} "
        f"--size {width}x{height}`", "",
        "Offline (every frame through the predictor in process, nothing dropped; predictor = resize, forward, "
        "upsampling):", "",
        "| backend | frames | frames/s (whole replay: decode, predict, render every output, score) | "
        "predictor ms p50 / p95 | AbsRel (median scaling) |",
        "|---|---|---|---|---|", *rows_offline, "",
        "Live (the bag played over DDS to the `sgdepth_node` process, `/clock` = bag time; latency = arrival of the "
        "output − the wall time the frame was sent, ms):", "",
        "| input rate | sent | delivered (all outputs) | dropped by the node / lost before it | output frames/s | "
        "send→depth p50 / p95 | send→last output p50 / p95 | node predict p50 | AbsRel (delivered frames) |",
        "|---|---|---|---|---|---|---|---|---|", *rows_live, "",
        "\"Dropped by the node\": frames that arrived while it was busy and were replaced by a newer one (its "
        "newest-frame policy). \"Lost before it\": replaced in its depth-1 input queue before its callback ran. "
        "The node never queues stale frames, so latency stays bounded while the output rate saturates.",
    ])
    print(text)
    if args.output != "-":
        update_markdown(Path(args.output), text, key="replay")
    return 0
