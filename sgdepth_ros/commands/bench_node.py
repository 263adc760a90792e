"""``sgdepth-ros bench-node``: sgdepth_node end to end over DDS, beside the predictor alone.

The node runs as its own process on an isolated loopback graph; this process publishes rgb8
frames (1242×375 by default) with CameraInfo, stamped with the current time, subscribes to
every output at network resolution and measures stamp → arrival of the depth image and of the
last output of the frame. First the very first frame after the node started (served after the
node's configure-time warm-up), then three loads: closed loop (next frame once the previous is
answered: pure latency), a fixed rate (10 Hz), and a flood (30 Hz: the achieved output rate is the
maximum sustainable rate; the rest are dropped, newest frame first).
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from .dds_bench import OUTPUTS, arrivals as _arrivals, camera_messages, kitti_k as _k, percentile as _p


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="checkpoint (default: random weights; speed does not depend on them)")
    p.add_argument("--width", type=int, default=1242, help="camera image width")
    p.add_argument("--height", type=int, default=375, help="camera image height")
    p.add_argument("--frames", type=int, default=40, help="frames per load")
    p.add_argument("--rate", type=float, default=10.0, help="the fixed input rate in Hz")
    p.add_argument("--flood-rate", type=float, default=30.0, help="the overload input rate in Hz")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--precision", default="fp32", help="fp32, or fp16/bf16 on CUDA")
    p.add_argument("--output", default="docs/benchmarks.md", help="Markdown file to update ('-' prints only)")


def _predictor_alone(model: str, rgb: np.ndarray, frames: int, device: str, precision: str) -> dict:
    """Predictor.predict on the raw RGB frame, then the same plus rendering every output (ms lists)."""
    from ..predictor import Predictor
    from ..ros.camera_model import check_geometry, scale_geometry
    from ..ros.outputs import OUTPUT_KEYS, RenderSettings, render

    predictor = Predictor(model, device=device, precision=precision, scale_factor=1.0)
    h, w = rgb.shape[:2]
    geometry = scale_geometry(check_geometry(w, h, _k(w, h), [0.0] * 12), *predictor.input_size)
    predict, with_render = [], []
    for i in range(frames + 3):
        t0 = time.perf_counter()
        pred = predictor.predict(rgb)
        t1 = time.perf_counter()
        render(pred, set(OUTPUT_KEYS), RenderSettings(), geometry)
        t2 = time.perf_counter()
        if i >= 3:
            predict.append((t1 - t0) * 1e3)
            with_render.append((t2 - t0) * 1e3)
    return {"describe": predictor.describe(), "predict": predict, "predict+render": with_render}


def _run_load(probe, rgb: np.ndarray, frames: int, rate: float | None) -> dict:
    """Publish ``frames`` frames (rate None = closed loop) → latency lists (ms) and counts."""
    from ..ros.sync import stamp_ns

    for topic in OUTPUTS:
        probe.messages[topic].clear()
    sent, start = [], time.monotonic()
    for i in range(frames):
        image, info = camera_messages(rgb, probe.get_clock().now().to_msg())
        stamp = stamp_ns(image.header)
        sent.append(stamp)
        probe.info_pub.publish(info)
        probe.image_pub.publish(image)
        if rate is None:
            probe.spin_until(lambda: _arrivals(probe, "points").get(stamp) is not None, 30)
        else:
            probe.spin_until(lambda: False, max(0.0, start + (i + 1) / rate - time.monotonic()))
    probe.spin_for(2.0)  # let the last frame's outputs arrive
    duration = time.monotonic() - start - 2.0
    depth = _arrivals(probe, "depth")
    last = {}
    for topic in OUTPUTS:
        for stamp, t in _arrivals(probe, topic).items():
            last[stamp] = max(last.get(stamp, 0), t)
    complete = [s for s in sent if all(s in _arrivals(probe, t) for t in OUTPUTS)]
    diag = probe.latest_diagnostics()
    return {"node_predict_ms": float(diag.get("predict_p50_ms", "nan")), "diagnostics": diag,
            "sent": len(sent), "processed": len(depth), "complete": len(complete),
            "depth_ms": [(depth[s] - s) / 1e6 for s in sent if s in depth],
            "all_ms": [(last[s] - s) / 1e6 for s in complete],
            "output_hz": len(depth) / duration,
            "input_hz": len(sent) / duration}


def _node_loads(model: str, rgb: np.ndarray, args) -> tuple[dict, str]:
    import rclpy

    from ..ros.launcher import NodeProcess, ros_environment
    from ..ros.probe import Probe

    env = ros_environment()
    os.environ.update(env)
    params = {"model_path": model, "device": args.device, "precision": args.precision, "scale_mode": "fixed",
              "scale_factor": 1.0, "log_period_sec": 0.0}
    node = NodeProcess(params, env).start()
    rclpy.init(domain_id=int(env["ROS_DOMAIN_ID"]))
    probe = Probe(list(OUTPUTS), name="bench_probe")
    try:
        node.wait_for_output("active:", timeout=300)
        if not probe.wait_for_subscribers(60):
            raise RuntimeError("the node's topics did not match within 60 s:\n" + node.output)
        # no warm-up by the client: the first frame shows what a camera's first frame gets
        loads = {"first frame after start": _run_load(probe, rgb, 1, None),
                 "closed loop (one frame at a time)": _run_load(probe, rgb, args.frames, None),
                 f"{args.rate:g} Hz": _run_load(probe, rgb, args.frames, args.rate),
                 f"{args.flood_rate:g} Hz (flood)": _run_load(probe, rgb, 3 * args.frames, args.flood_rate)}
    finally:
        probe.destroy_node()
        rclpy.try_shutdown()
        node.stop()
    return loads, node.output


def run(args: argparse.Namespace) -> int:
    from ..samples import road_scene
    from .helpers import machine_description, make_untrained_checkpoint, update_markdown

    if args.frames < 5:
        print("error: --frames must be ≥ 5")
        return 2
    rgb = road_scene(args.width, args.height)
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or str(make_untrained_checkpoint(Path(tmp) / "random.safetensors"))
        alone = _predictor_alone(model, rgb, args.frames, args.device, args.precision)
        loads, _ = _node_loads(model, rgb, args)
    predict_p50 = float(np.median(alone["predict"]))
    lines = [
        "## Node end to end over DDS (`sgdepth-ros bench-node`)", "",
        f"{args.width}×{args.height} rgb8 + CameraInfo published by a client process → `sgdepth_node` process "
        f"({alone['describe']}) → every output at network resolution (depth 32FC1, depth/camera_info, depth/color, "
        "semantic, semantic/color, semantic/overlay, points) received by the client. Latency = arrival − "
        "header stamp, in ms; Fast DDS with the package's large-image profile, loopback.", "",
        f"- machine: {machine_description()}",
        f"- date: {dt.date.today().isoformat()}; command: `sgdepth-ros bench-node --frames {args.frames}`", "",
        "| | p50 | p95 |", "|---|---|---|",
        f"| predictor alone: `predict()` on the raw RGB frame | {predict_p50:.1f} | {_p(alone['predict'], 95)} |",
        f"| predictor + rendering every output (in process) | {_p(alone['predict+render'], 50)} | "
        f"{_p(alone['predict+render'], 95)} |", "",
        "| input load | sent | processed (all outputs) | input Hz | output Hz | stamp→depth p50 / p95 | "
        "stamp→last output p50 / p95 | predictor in the node p50 | node overhead p50 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    first = loads.pop("first frame after start")
    for name, r in loads.items():
        inside = r["node_predict_ms"]
        overhead = (float(np.median(r["all_ms"])) - inside) if r["all_ms"] else float("nan")
        lines.append(f"| {name} | {r['sent']} | {r['processed']} ({r['complete']}) | {r['input_hz']:.1f} | "
                     f"{r['output_hz']:.1f} | {_p(r['depth_ms'], 50)} / {_p(r['depth_ms'], 95)} | "
                     f"{_p(r['all_ms'], 50)} / {_p(r['all_ms'], 95)} | {inside:.1f} | {overhead:.1f} ms "
                     f"({100 * overhead / inside:.0f} %) |")
    lines += ["", "Node overhead = stamp→last output p50 − the predictor's own time inside the node (its "
              "`predict_p50_ms` diagnostic: preprocess + forward + postprocess, same frames): conversion, rendering "
              "every output, DDS both ways and the client's deserialisation. The closed-loop row is the pure cost; "
              "under the fixed rate and the flood a frame may also wait for the inference in progress (newest frame "
              "wins, the rest are dropped and counted), so latency stays bounded by about two inference periods "
              "instead of growing."]
    steady, diag = loads["closed loop (one frame at a time)"], first["diagnostics"]
    lines += ["", "First frame after start against steady state (closed loop p50). The node warmed the predictor "
              f"up at configure (one prediction at the network size per task set, rendering every output: "
              f"`warmup_ms` {float(diag.get('warmup_ms', 'nan')):.0f} ms), so the first camera frame does not pay "
              "the backends' first-call cost; what remains is the first message on each DDS topic.", "",
              "| | stamp→depth | stamp→last output | predictor in the node |", "|---|---|---|---|",
              f"| first frame | {_p(first['depth_ms'], 50)} | {_p(first['all_ms'], 50)} | "
              f"{float(diag.get('first_predict_ms', 'nan')):.1f} |",
              f"| steady (closed loop p50) | {_p(steady['depth_ms'], 50)} | {_p(steady['all_ms'], 50)} | "
              f"{steady['node_predict_ms']:.1f} |"]
    text = "\n".join(lines)
    print(text)
    if args.output != "-":
        update_markdown(Path(args.output), text, key="node")
        print(f"\nwritten to {args.output}")
    return 0
