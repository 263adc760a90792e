"""``sgdepth-ros bench``: per-stage latency of the predictor, written to docs/benchmarks.md.

Stages for one 1242×375 PNG frame at the network size (640×192 by default), depth +
segmentation: decode (PNG → RGB), preprocess (resize + normalise), forward, postprocess
(disparity → depth, labels), colourise (depth colours, label colours, overlay). The backends
are measured interleaved, frame by frame, in the same run, so machine noise hits them alike.

A second table measures the lazy work of the node: the predictor with only the depth tail, only
the segmentation tail, or both (what an output with no subscriber saves), interleaved likewise.

A third, the node's own cost (issue 16): one 1242×375 rgb8 Image message through the node's per-frame path
with outputs at the camera size (``output_resolution`` "input") — decode, predictor, render, message fill,
serialisation (``rclpy.serialization.serialize_message``, what publishing does to each message) — for every output
and for depth + semantic only, beside the predictor alone, interleaved frame by frame, for the shipped default model
and the benchmark's model; the ratio node ÷ predictor against the targets ≤ 1.25 (every output) and ≤ 1.1
(depth + semantic). Needs rclpy (the section is skipped without it).
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import tempfile
import time
from pathlib import Path

import numpy as np

STAGES = ("decode", "preprocess", "forward", "postprocess", "colourise")
TASK_SETS = {"both": ("depth", "segmentation"), "depth only": ("depth",), "segmentation only": ("segmentation",)}
# the node's own cost: output sets (keys of sgdepth_ros.ros.outputs.OUTPUT_KEYS) → the target node ÷ predictor
NODE_COST_SETS = {"every output": (("depth", "depth_info", "depth_color", "semantic", "semantic_color", "overlay",
                                    "points"), 1.25),
                  "depth + semantic": (("depth", "depth_info", "semantic"), 1.1)}
NODE_COST_STAGES = ("decode", "predictor", "render", "fill", "serialize")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="checkpoint (default: random weights; speed does not depend on them)")
    p.add_argument("--iterations", type=int, default=30, help="measured frames per backend")
    p.add_argument("--warmup", type=int, default=5, help="unmeasured frames per backend first")
    p.add_argument("--backends", default=None,
                   help="comma list among torch-cpu, openvino, torch-cuda-fp32, torch-cuda-fp16, torch-cuda-bf16 "
                        "(CUDA graphs, the default on CUDA), torch-cuda-fp32-eager, torch-cuda-fp16-eager, "
                        "torch-cuda-bf16-eager (no graphs), torch-cuda-fp16-compile (torch.compile + graphs) "
                        "(default: the CPU ones, plus CUDA when present)")
    p.add_argument("--node-cost-backend", default="auto",
                   help="backend of the node-own-cost table (one of --backends' names); 'auto' (default): "
                        "openvino when --backends holds it, else torch-cpu when it holds that, else none; 'none' "
                        "skips the table")
    p.add_argument("--output", default="docs/benchmarks.md", help="Markdown file to update ('-' prints only)")


def _make_predictors(model_path: str, names: list[str]):
    from ..predictor import Predictor

    spec = {"torch-cpu": ("cpu", "fp32", "torch", "auto"), "openvino": ("cpu", "fp32", "openvino", "auto"),
            "torch-cuda-fp16-compile": ("cuda", "fp16", "torch", "compile")}
    for prec in ("fp32", "fp16", "bf16"):  # CUDA: graphs (the default) and eager
        spec[f"torch-cuda-{prec}"] = ("cuda", prec, "torch", "graphs")
        spec[f"torch-cuda-{prec}-eager"] = ("cuda", prec, "torch", "none")
    unknown = [n for n in names if n not in spec]
    if unknown:
        raise ValueError(f"unknown backend(s) {unknown}; valid: {sorted(spec)}")
    return {n: Predictor(model_path, device=spec[n][0], precision=spec[n][1], backend=spec[n][2],
                         optimize=spec[n][3]) for n in names}


def measure(predictors: dict, png: bytes, iterations: int, warmup: int) -> dict[str, dict[str, list[float]]]:
    """Run every predictor on the PNG frame, interleaved → {backend: {stage: [ms, …], 'end_to_end': …}}."""
    import cv2

    from ..colorize import colorize_depth, colorize_labels, overlay_labels

    buf = np.frombuffer(png, np.uint8)
    times = {n: {s: [] for s in STAGES + ("end_to_end",)} for n in predictors}
    for i in range(warmup + iterations):
        for name, predictor in predictors.items():
            t0 = time.perf_counter()
            rgb = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            t1 = time.perf_counter()
            pred = predictor.predict(rgb)
            t2 = time.perf_counter()
            colorize_depth(pred.depth)
            colours = colorize_labels(pred.labels)
            overlay_labels(pred.image, pred.labels, colours=colours)
            t3 = time.perf_counter()
            if i < warmup:
                continue
            rec = times[name]
            rec["decode"].append((t1 - t0) * 1e3)
            for stage in ("preprocess", "forward", "postprocess"):
                rec[stage].append(pred.timings[stage])
            rec["colourise"].append((t3 - t2) * 1e3)
            rec["end_to_end"].append((t3 - t0) * 1e3)
    return times


def precision_errors(model_path: str) -> list[str]:
    """On CUDA: max |fp16 − fp32| and |bf16 − fp32| of the depth, and label agreement."""
    import torch

    from ..predictor import Predictor
    from ..samples import road_scene

    if not torch.cuda.is_available():
        return []
    rgb = road_scene()
    ref = Predictor(model_path, device="cuda", precision="fp32", backend="torch").predict(rgb)
    lines = []
    for prec in ("fp16", "bf16"):
        p = Predictor(model_path, device="cuda", precision=prec, backend="torch").predict(rgb)
        rel = np.abs(p.depth - ref.depth) / ref.depth
        lines.append(f"- {prec} vs fp32: depth max rel. error {rel.max():.2e} (mean {rel.mean():.2e}), "
                     f"labels equal on {100 * (p.labels == ref.labels).mean():.2f}% of pixels")
    return lines


def measure_tasks(predictors: dict, rgb: np.ndarray, iterations: int, warmup: int) -> dict[str, dict[str, list]]:
    """Predictor time (preprocess + forward + postprocess, ms) per task set, task sets and backends interleaved
    → {backend: {task set name: [ms, …]}}."""
    times = {n: {t: [] for t in TASK_SETS} for n in predictors}
    for i in range(warmup + iterations):
        for name, predictor in predictors.items():
            for label, tasks in TASK_SETS.items():
                pred = predictor.predict(rgb, tasks=tasks)
                if i >= warmup:
                    times[name][label].append(sum(pred.timings.values()))
    return times


def node_frame(predictor, image_msg, info, wanted: tuple[str, ...] | None, settings) -> dict[str, float]:
    """One frame through the node's per-frame path (:func:`sgdepth_ros.ros.camera_channel.process_frames` and
    ``CameraChannel.finish`` without the node): decode the Image message, predict at its size, render ``wanted``,
    fill the messages, serialise each → ms per stage of :data:`NODE_COST_STAGES`. ``wanted`` None: the predictor
    alone (both tasks), after the decode."""
    from rclpy.serialization import serialize_message

    from ..ros import messages
    from ..ros.camera_model import scale_geometry
    from ..ros.image_codec import image_message_to_rgb
    from ..ros.output_tasks import tasks_for_outputs
    from ..ros.outputs import render

    t0 = time.perf_counter()
    rgb = image_message_to_rgb(image_msg)
    t1 = time.perf_counter()
    tasks = tasks_for_outputs(set(wanted)) if wanted else TASK_SETS["both"]
    pred = predictor.predict_batch([rgb], output_resolution="input", tasks=tasks)[0]
    t2 = time.perf_counter()
    stages = {"decode": (t1 - t0) * 1e3, "predictor": (t2 - t1) * 1e3}
    if wanted is None:
        return stages
    height, width = (pred.depth if pred.depth is not None else pred.labels).shape
    geometry = scale_geometry(messages.camera_info_geometry(info), width, height)
    outputs = render(pred, set(wanted), settings, geometry)
    t3 = time.perf_counter()
    msgs = messages.output_messages(outputs, image_msg.header, info, geometry, set(wanted))
    t4 = time.perf_counter()
    for msg in msgs.values():
        serialize_message(msg)
    t5 = time.perf_counter()
    stages.update(render=(t3 - t2) * 1e3, fill=(t4 - t3) * 1e3, serialize=(t5 - t4) * 1e3)
    return stages


def measure_node_cost(predictors: dict, rgb: np.ndarray, iterations: int, warmup: int) -> dict:
    """The predictor alone and the node's per-frame path per output set of :data:`NODE_COST_SETS`, models and sets
    interleaved frame by frame → {model: {"predictor alone" | set name: {stage: [ms, …]}}}."""
    from builtin_interfaces.msg import Time

    from ..ros.outputs import RenderSettings
    from .dds_bench import camera_messages

    image_msg, info = camera_messages(rgb, Time())
    settings = RenderSettings()
    runs = {"predictor alone": None, **{name: keys for name, (keys, _) in NODE_COST_SETS.items()}}
    times = {m: {r: {s: [] for s in NODE_COST_STAGES} for r in runs} for m in predictors}
    for i in range(warmup + iterations):
        for model, predictor in predictors.items():
            for run, wanted in runs.items():
                stages = node_frame(predictor, image_msg, info, wanted, settings)
                if i >= warmup:
                    for stage, ms in stages.items():
                        times[model][run][stage].append(ms)
    return times


def render_node_cost_table(times: dict) -> list[str]:
    """The node-own-cost table: per model, the predictor alone and each output set with its stages (p50 ms), the
    node path p50 / p95 and the ratio node ÷ predictor against the target.

    The ratio is (predictor alone p50 + own cost p50) / predictor alone p50, the own cost being each frame's node
    path less its own predictor time: the predictor's frame-to-frame noise (the larger part on a shared machine)
    then cancels instead of landing in the ratio."""
    lines = ["| model | outputs | predictor p50 / p95 | decode | render | message fill | serialise | own cost p50 "
             "| node p50 / p95 | node ÷ predictor | target |", "|" + "---|" * 11]
    for model, runs in times.items():
        alone = runs["predictor alone"]
        base = float(np.median(np.add(alone["decode"], alone["predictor"])))
        lines.append(f"| {model} | predictor alone | {np.median(alone['predictor']):.1f} / "
                     f"{np.percentile(alone['predictor'], 95):.1f} | {np.median(alone['decode']):.2f} "
                     f"| – | – | – | – | {base:.1f} | 1.00 | |")
        for name, (_, target) in NODE_COST_SETS.items():
            rec = runs[name]
            total = np.sum([rec[s] for s in NODE_COST_STAGES], axis=0)
            own = float(np.median(total - np.asarray(rec["predictor"])))
            ratio = (base + own) / base
            verdict = "met" if ratio <= target else "**missed**"
            lines.append(f"| {model} | {name} | {np.median(rec['predictor']):.1f} / "
                         f"{np.percentile(rec['predictor'], 95):.1f} | {np.median(rec['decode']):.2f} | "
                         f"{np.median(rec['render']):.2f} | {np.median(rec['fill']):.2f} | "
                         f"{np.median(rec['serialize']):.2f} | {own:.2f} | {np.median(total):.1f} / "
                         f"{np.percentile(total, 95):.1f} | **{ratio:.3f}** | ≤ {target} {verdict} |")
    return lines


def _node_cost_section(args, model_path: str, names: list[str]) -> list[str]:
    """The node-own-cost subsection (empty when skipped): predictors at the camera size for the shipped default
    model (when the checkout has it) and the benchmark's model, on ``--node-cost-backend`` (``names``: the
    benchmark's backends, for "auto")."""
    from ..default_model import default_model_path
    from ..samples import road_scene

    backend = args.node_cost_backend
    if backend == "auto":
        backend = next((n for n in ("openvino", "torch-cpu") if n in names), "none")
    if backend == "none":
        return []
    if importlib.util.find_spec("rclpy") is None:
        return ["### The node's own cost", "", "Skipped: rclpy is not installed.", ""]
    models = {}
    shipped = default_model_path()
    if shipped is not None:
        models["shipped default"] = str(shipped)
    models["benchmark model"] = model_path
    predictors = {}
    for label, path in models.items():
        predictor = _make_predictors(path, [backend])[backend]
        w, h = predictor.input_size
        predictors[f"{label} {w}×{h}"] = predictor
    times = measure_node_cost(predictors, road_scene(1242, 375), args.iterations, args.warmup)
    return [
        "### The node's own cost at the camera size", "",
        f"One 1242×375 rgb8 Image message per frame through the node's per-frame path on {backend}, outputs at the "
        "camera size (`output_resolution: input`): decode the message, the predictor (resize + normalise, forward, "
        "upsampling), render the wanted outputs, fill their messages, serialise each "
        "(`rclpy.serialization.serialize_message`, the copy a publish makes) — beside the predictor alone (after the "
        "same decode), models and output sets interleaved frame by frame; ms, "
        f"{args.iterations} frames after {args.warmup} warm-up. Own cost = each frame's path less its own predictor "
        "time; node ÷ predictor = (predictor p50 + own cost p50) / predictor p50 (decode included on both sides). "
        "Targets (issue 16): ≤ 1.25 with every output, ≤ 1.1 with depth + semantic (depth, depth/camera_info, "
        "semantic).", "",
        *render_node_cost_table(times), "",
    ]


def _signed_percent(change: float) -> str:
    """-0.39 → '−39 %', 0.04 → '+4 %' (a task set slower than both tasks, e.g. within the noise on a GPU)."""
    percent = round(100 * change)
    return f"{'−' if percent < 0 else '+'}{abs(percent)} %" if percent else "±0 %"


def render_task_table(times: dict) -> list[str]:
    lines = ["| backend | " + " | ".join(f"{t} p50 / p95" for t in TASK_SETS) + " |",
             "|" + "---|" * (len(TASK_SETS) + 1)]
    for name, rec in times.items():
        both = np.median(rec["both"])
        cells = []
        for label in TASK_SETS:
            cell = f"{np.median(rec[label]):.1f} / {np.percentile(rec[label], 95):.1f}"
            if label != "both":
                cell += f" ({_signed_percent(np.median(rec[label]) / both - 1)})"
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def render_table(times: dict, baseline: str | None) -> list[str]:
    head = "| backend | " + " | ".join(f"{s} p50 / p95" for s in STAGES + ("end_to_end",)) + " | e2e / forward |"
    lines = [head, "|" + "---|" * (len(STAGES) + 3)]
    for name, rec in times.items():
        cells = [f"{np.median(rec[s]):.1f} / {np.percentile(rec[s], 95):.1f}" for s in STAGES + ("end_to_end",)]
        ratio = np.median(rec["end_to_end"]) / np.median(rec["forward"])
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {ratio:.2f} |")
    if baseline in times:
        base = np.median(times[baseline]["forward"])
        lines.append("")
        for name, rec in times.items():
            if name != baseline:
                lines.append(f"- forward speed-up of {name} over {baseline} (eager fp32), same run: "
                             f"**{base / np.median(rec['forward']):.2f}×**")
    return lines


def run(args: argparse.Namespace) -> int:
    import cv2
    import torch

    from ..samples import road_scene
    from .helpers import machine_description, make_untrained_checkpoint, update_markdown

    if args.iterations < 1 or args.warmup < 0:
        print("error: --iterations must be ≥ 1 and --warmup ≥ 0")
        return 2
    names = args.backends.split(",") if args.backends else (
        ["torch-cpu", "openvino"] + (["torch-cuda-fp32", "torch-cuda-fp16"] if torch.cuda.is_available() else []))
    with tempfile.TemporaryDirectory() as tmp:
        model_path = args.model or str(make_untrained_checkpoint(Path(tmp) / "random.safetensors"))
        predictors = _make_predictors(model_path, names)
        ok, png = cv2.imencode(".png", cv2.cvtColor(road_scene(1242, 375), cv2.COLOR_RGB2BGR))
        times = measure(predictors, png.tobytes(), args.iterations, args.warmup)
        task_times = measure_tasks(predictors, road_scene(1242, 375), args.iterations, args.warmup)
        extra = precision_errors(model_path) if any("cuda" in n for n in names) else []
        size = next(iter(predictors.values())).input_size
        node_cost = _node_cost_section(args, model_path, names)
    section = [
        "## Inference latency per stage (`sgdepth-ros bench`)", "",
        f"1242×375 PNG frame → network {size[0]}×{size[1]}, depth + segmentation, outputs at network size; "
        f"milliseconds, {args.iterations} frames per backend after {args.warmup} warm-up, backends interleaved.", "",
        f"- machine: {machine_description()}",
        f"- date: {dt.date.today().isoformat()}; command: `sgdepth-ros bench --iterations {args.iterations}`", "",
        *render_table(times, "torch-cpu" if "torch-cpu" in times else None), *extra, "",
        "### Lazy work: only the wanted decoder tail", "",
        "The node runs only the tasks its subscribers need (`Predictor.predict(..., tasks=...)`; OpenVINO compiles "
        "one graph per task set on first use). Predictor time (preprocess + forward + postprocess) of the same frame "
        "per task set, ms, interleaved; in brackets the saving over both tasks:", "",
        *render_task_table(task_times), "",
        *node_cost,
    ]
    text = "\n".join(section)
    print(text)
    if args.output != "-":
        update_markdown(Path(args.output), text)
        print(f"\nwritten to {args.output}")
    return 0
