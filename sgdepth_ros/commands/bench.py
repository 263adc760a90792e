"""``sgdepth-ros bench``: per-stage latency of the predictor, written to docs/benchmarks.md.

Stages for one 1242×375 PNG frame at the network size (640×192 by default), depth +
segmentation: decode (PNG → RGB), preprocess (resize + normalise), forward, postprocess
(disparity → depth, labels), colourise (depth colours, label colours, overlay). The backends
are measured interleaved, frame by frame, in the same run, so machine noise hits them alike.

A second table measures the lazy work of the node: the predictor with only the depth tail, only
the segmentation tail, or both (what an output with no subscriber saves), interleaved likewise.
"""
from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

import numpy as np

STAGES = ("decode", "preprocess", "forward", "postprocess", "colourise")
TASK_SETS = {"both": ("depth", "segmentation"), "depth only": ("depth",), "segmentation only": ("segmentation",)}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="checkpoint (default: random weights; speed does not depend on them)")
    p.add_argument("--iterations", type=int, default=30, help="measured frames per backend")
    p.add_argument("--warmup", type=int, default=5, help="unmeasured frames per backend first")
    p.add_argument("--backends", default=None,
                   help="comma list among torch-cpu, openvino, torch-cuda-fp32, torch-cuda-fp16, torch-cuda-bf16 "
                        "(default: the CPU ones, plus CUDA when present)")
    p.add_argument("--output", default="docs/benchmarks.md", help="Markdown file to update ('-' prints only)")


def _make_predictors(model_path: str, names: list[str]):
    from ..predictor import Predictor

    spec = {"torch-cpu": ("cpu", "fp32", "torch"), "openvino": ("cpu", "fp32", "openvino"),
            "torch-cuda-fp32": ("cuda", "fp32", "torch"), "torch-cuda-fp16": ("cuda", "fp16", "torch"),
            "torch-cuda-bf16": ("cuda", "bf16", "torch")}
    unknown = [n for n in names if n not in spec]
    if unknown:
        raise ValueError(f"unknown backend(s) {unknown}; valid: {sorted(spec)}")
    return {n: Predictor(model_path, device=spec[n][0], precision=spec[n][1], backend=spec[n][2]) for n in names}


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


def render_task_table(times: dict) -> list[str]:
    lines = ["| backend | " + " | ".join(f"{t} p50 / p95" for t in TASK_SETS) + " |",
             "|" + "---|" * (len(TASK_SETS) + 1)]
    for name, rec in times.items():
        both = np.median(rec["both"])
        cells = []
        for label in TASK_SETS:
            cell = f"{np.median(rec[label]):.1f} / {np.percentile(rec[label], 95):.1f}"
            if label != "both":
                cell += f" (−{100 * (1 - np.median(rec[label]) / both):.0f} %)"
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
        *render_task_table(task_times),
    ]
    text = "\n".join(section)
    print(text)
    if args.output != "-":
        update_markdown(Path(args.output), text)
        print(f"\nwritten to {args.output}")
    return 0
