"""``sgdepth-ros bench-precision``: the CPU precisions side by side — speed interleaved, accuracy against fp32.

Per network size: the gate data are rendered (as ``sgdepth-ros quantize`` renders them: 3 synthetic drives of a town
the shipped model never saw), the model is quantised to int8 there (the layer choice measured on the val drive), and
then eager PyTorch fp32, OpenVINO fp32, OpenVINO bf16 (where the CPU runs it natively) and OpenVINO int8 run the
forward pass of both tasks in turn, frame after frame (interleaved: load changes hit every variant alike), and their
accuracy on the held-out test drive is judged by the int8 gate against OpenVINO fp32. This lives with the trainer:
it needs the synthetic world and NNCF, which the vehicle path does not.
"""
from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

import numpy as np

from sgdepth_ros.commands.arg_types import size

TARGETS = {"int8": 2.0, "bf16": 1.5}  # forward speed-up over OpenVINO fp32 (issue 16)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, default=None, help="float checkpoint (default: the shipped model)")
    p.add_argument("--sizes", type=lambda text: [size(s) for s in text.split(",")], default=[(640, 192), (320, 96)],
                   help="network sizes WxH, comma-separated (default 640x192,320x96)")
    p.add_argument("--frames", type=int, default=30, help="timed forward passes per variant and size")
    p.add_argument("--gate-frames", type=int, default=24, help="frames per rendered drive")
    p.add_argument("--seed", type=int, default=11, help="town seed of the gate data")
    p.add_argument("--output", default="docs/benchmarks.md", help="Markdown file to update ('-' prints only)")


def _variants(model, sha: str, hw: tuple[int, int], int8_graphs: dict, rest: str) -> dict:
    """name → backend, in table order; bf16 only where the CPU runs it natively."""
    import torch

    from sgdepth_ros.backends import OpenVINOBackend, TorchBackend, cpu_supports_bf16

    variants = {"torch fp32": TorchBackend(model, torch.device("cpu")),
                "openvino fp32": OpenVINOBackend(model, hw, weights_key=sha)}
    if cpu_supports_bf16():
        variants["openvino bf16"] = OpenVINOBackend(model, hw, weights_key=sha, precision="bf16")
    variants["openvino int8"] = OpenVINOBackend(None, hw, precision="int8", graphs=int8_graphs, rest_precision=rest)
    return variants


def _measure(args, model, sha: str, input_size: tuple[int, int]) -> list[str]:
    from sgdepth_ros.backends import TASKS
    from sgdepth_ros.preprocess import normalize

    from ..quantize import accuracy, calibration_inputs, judge, quantize, read_gate_frames, run_graph
    from ..synth.generate import SynthConfig, generate

    width, height = input_size
    with tempfile.TemporaryDirectory(prefix="sgdepth-bench-precision-") as tmp:
        config = SynthConfig(out=Path(tmp) / "gate", drives=3, frames=args.gate_frames, seed=args.seed,
                             formats=("kitti",), width=width, height=height)
        generate(config, progress=False)
        kitti = config.out / "kitti"
        train = read_gate_frames(kitti, "train", input_size)
        select, test = read_gate_frames(kitti, "val", input_size), read_gate_frames(kitti, "test", input_size)
    result = quantize(model, sha, input_size, calibration_inputs([f.rgb for f in train], input_size), select, test)
    variants = _variants(model, sha, (height, width), result.graphs, result.rest_precision)
    min_depth, max_depth = float(model.metadata["min_depth"]), float(model.metadata["max_depth"])
    outputs = {name: run_graph(backend, test) for name, backend in variants.items()}  # also the warm-up
    reference = outputs["openvino fp32"]
    fp32 = accuracy(reference, test, min_depth, max_depth)
    times = {name: [] for name in variants}
    inputs = [normalize([f.rgb]) for f in test]
    for i in range(args.frames):
        for name, backend in variants.items():
            start = time.perf_counter()
            backend.run(inputs[i % len(inputs)], TASKS)
            times[name].append((time.perf_counter() - start) * 1e3)
    base = float(np.median(times["openvino fp32"]))
    rows = []
    for name in variants:
        acc = accuracy(outputs[name], test, min_depth, max_depth, [labels for _, labels in reference])
        gate = judge(fp32, acc)
        p50 = float(np.median(times[name]))
        precision = name.split()[-1]
        target = f" (target ≥ {TARGETS[precision]:g}×: {'met' if base / p50 >= TARGETS[precision] else 'NOT met'})" \
            if precision in TARGETS else ""
        label = (f"{name} ({result.candidate}: {len(result.kept_layers)} convolutions in {result.rest_precision})"
                 if precision == "int8" else name)
        rows.append(f"| {width}×{height} | {label} | {p50:.1f} | {base / p50:.2f}×{target} | {acc.abs_rel:.4f} | "
                    f"{acc.a1:.4f} | {100 * acc.miou:.2f} | {100 * acc.label_agreement:.2f} | "
                    f"{'held' if gate.passed else 'MISSED: ' + '; '.join(gate.misses)} |")
        print(rows[-1])
    return rows


def run(args: argparse.Namespace) -> int:
    from sgdepth_ros.commands.helpers import machine_description, update_markdown
    from sgdepth_ros.default_model import default_model_path
    from sgdepth_ros.model import CheckpointError, load_checkpoint
    from sgdepth_ros.model.checkpoint import file_sha256

    path = args.model or default_model_path()
    if path is None:
        print("error: no --model and no shipped model in this checkout")
        return 2
    try:
        model = load_checkpoint(path)
    except CheckpointError as error:
        print(f"error: {error}")
        return 2
    sha = file_sha256(path)
    rows = [row for input_size in args.sizes for row in _measure(args, model, sha, input_size)]
    sizes = ",".join(f"{w}x{h}" for w, h in args.sizes)
    table = "\n".join([
        f"## CPU precisions ({dt.date.today()}, `sgdepth-ros bench-precision --sizes {sizes} --frames {args.frames}`)",
        f"Machine: {machine_description()}", "",
        f"Model: {Path(path).name}. Forward pass of both tasks (batch 1), p50 over {args.frames} passes per variant, "
        "the variants interleaved frame by frame; × = speed-up over OpenVINO fp32 in the same run. Accuracy on the "
        f"held-out test drive of a synthetic town (seed {args.seed}) the model never saw, at the network size: depth "
        "median-scaled (capped protocol), mIoU over the classes present; agreement = pixels labelled as OpenVINO fp32 "
        "labels them; gate = the int8 gate of `sgdepth-ros quantize` against OpenVINO fp32 (AbsRel +0.002, δ<1.25 "
        "−0.005, mIoU −0.6 points, agreement ≥ 99 %). int8: the layers kept out of int8 chosen by measurement on the "
        "val drive (`all` = every convolution int8; `encoder` = the decoders kept in the rest precision).", "",
        "| size | backend / precision | forward p50 ms | × vs OpenVINO fp32 | AbsRel | δ<1.25 | mIoU % | "
        "agreement % | gate |", "|---|---|---|---|---|---|---|---|---|", *rows,
    ])
    print(table)
    if args.output != "-":
        update_markdown(Path(args.output), table, key="precision")
        print(f"updated {args.output}")
    return 0
