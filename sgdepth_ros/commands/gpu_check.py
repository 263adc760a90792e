"""``sgdepth-ros gpu-check``: run once on a GPU — CUDA outputs against fp32 on the CPU, speed against the targets.

``scripts/gpu_check.sh`` runs it (no ROS, nothing to install). Steps, most important first, each skipped with a note
once ``--time-budget`` is spent:

1. accuracy: every CUDA variant (fp32, fp16, bf16; eager and CUDA graphs) against PyTorch fp32 on the CPU on the same
   road images at the network size: disparity max abs error and label agreement, against :data:`GATES`;
2. forward: the backend's time per call (host → device → host included, what ``Prediction.timings['forward']``
   holds) for one frame and for a 4-camera batch against 4 single frames; the 4-camera predictor end to end
   (``predict_batch`` against 4 ``predict`` calls at 1242×375);
3. ``sgdepth-ros bench`` with the CUDA backends: per-stage latency of a 1242×375 frame (decode → colourise);
4. ``sgdepth-ros bench-train``: training images/s, fp32 against AMP bf16 + channels_last;
5. torch.compile (+ graphs), fp16: accuracy and forward (its first frames compile, so it comes last).

The section is written between ``<!-- bench:gpu:start/end -->`` in ``--output`` with the GPU's name; the tables of
``bench`` and ``bench-train`` from this run are embedded in it (their own sections, measured on other machines, are
left as they are). ``--device cpu`` runs the same plumbing on the CPU (the smoke test does, with ``--quick``): then
every GPU row is written as "not measured" and the CPU numbers are only printed, never written as GPU results.
Exit status 1 when an accuracy gate fails.
"""
from __future__ import annotations

import argparse
import datetime as dt
import re
import tempfile
import time
from pathlib import Path

import numpy as np

from .arg_types import size

# variant label → (precision, optimize); the CPU smoke run uses the first entry only
VARIANTS = {"fp32 eager": ("fp32", "none"), "fp32 graphs": ("fp32", "graphs"), "fp16 eager": ("fp16", "none"),
            "fp16 graphs": ("fp16", "graphs"), "bf16 eager": ("bf16", "none"), "bf16 graphs": ("bf16", "graphs")}
COMPILE_VARIANT = ("fp16 compile", ("fp16", "compile"))
# accuracy gates against fp32 on the CPU: (disparity max abs error, fraction of equal labels). fp32 on CUDA may use
# TF32 convolutions (PyTorch's default for cuDNN, a 10-bit mantissa), hence not 1e-6. Set before any GPU run: the
# first run's figures are the ones to tighten them with.
GATES = {"fp32": (5e-3, 0.998), "fp16": (1e-2, 0.995), "bf16": (4e-2, 0.99)}
CAMERAS = 4
FRAME_WH = (1242, 375)
BENCH_BACKENDS = "torch-cpu,torch-cuda-fp32,torch-cuda-fp16,torch-cuda-bf16,torch-cuda-fp16-eager"
TARGETS = (  # key, what, goal text, goal test
    ("forward", "forward, fp16, batch 1 (CUDA graphs; copies to and from the GPU included)", "≤ 1 ms",
     lambda v: v <= 1.0),
    ("batch_gain", "4-camera batch against 4 single frames (forward throughput, fp16 graphs)", "≥ 2×",
     lambda v: v >= 2.0),
    ("end_to_end", f"end to end per frame at {FRAME_WH[0]}×{FRAME_WH[1]}, PNG decode included (`bench` "
                   "torch-cuda-fp16, end_to_end p50)", "≤ 3 ms", lambda v: v <= 3.0),
    ("end_to_end_raw", "the same from a raw RGB frame, as the node gets it (sum of the `bench` stage p50s "
                       "preprocess, forward, postprocess, colourise)", "≤ 3 ms", lambda v: v <= 3.0),
    ("train_gain", "training images/s, AMP bf16 + channels_last against fp32 (`bench-train`, full 6+6)", "≥ 2×",
     lambda v: v >= 2.0),
)
UNITS = {"forward": " ms", "end_to_end": " ms", "end_to_end_raw": " ms", "batch_gain": "×", "train_gain": "×"}
RAW_STAGES = ("preprocess", "forward", "postprocess", "colourise")  # bench's stages after the PNG decode


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu (plumbing smoke run: no GPU numbers)")
    p.add_argument("--model", default=None,
                   help="checkpoint (default: the shipped synthetic-world model; trained weights make the label "
                        "agreement meaningful)")
    p.add_argument("--input-size", type=size, default=(640, 192), metavar="WxH", help="network input (default 640x192)")
    p.add_argument("--quick", action="store_true", help="a few iterations only (plumbing check)")
    p.add_argument("--skip-train", action="store_true", help="leave out bench-train")
    p.add_argument("--skip-compile", action="store_true", help="leave out the torch.compile variant")
    p.add_argument("--time-budget", type=float, default=270.0,
                   help="seconds; later steps are skipped (with a note) once spent (default 270)")
    p.add_argument("--output", default="docs/benchmarks.md", help="Markdown file to update ('-' prints only)")


def table_cell(markdown: str, row: str, column: str) -> str | None:
    """The cell of a Markdown table in ``markdown`` in the row whose first cell is ``row`` and the column whose
    header starts with ``column`` (the first such table); None when absent."""
    header = None
    for line in markdown.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
            continue
        if cells and cells[0] == row:
            for name, cell in zip(header, cells):
                if name.startswith(column):
                    return cell
    return None


def first_number(cell: str | None) -> float | None:
    """'2.4 / 3.1' → 2.4; None for None or a cell without a number."""
    match = re.search(r"[-+]?\d+(\.\d+)?(e[-+]?\d+)?", cell or "")
    return float(match.group()) if match else None


def _median_ms(fn, iterations: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def _p50_p95(times: list[float]) -> str:
    return f"{np.median(times):.3f} / {np.percentile(times, 95):.3f}"


class Check:
    """One gpu-check run: its settings, results and notes (what was skipped and why)."""

    def __init__(self, args: argparse.Namespace, device, model_path: str, model_label: str):
        self.args, self.device, self.model_path, self.model_label = args, device, model_path, model_label
        self.cuda = device.type == "cuda"
        self.start = time.perf_counter()
        self.iterations, self.warmup = (1, 0) if args.quick else (200, 20)
        self.values: dict[str, float] = {}  # target key → measured value
        self.accuracy: list[tuple] = []  # (variant, disparity error, label agreement, gate, passed)
        self.forward: list[tuple] = []  # (variant, batch 1 times, batch 4 times, 4 × single times)
        self.sections: dict[str, str] = {}  # bench / bench-train markdown of this run
        self.notes: list[str] = []
        self.batch_line: list[str] = []  # the predictor-level 4-camera comparison

    def time_left(self, step: str) -> bool:
        spent = time.perf_counter() - self.start
        if spent > self.args.time_budget:
            self.notes.append(f"{step}: skipped, the time budget ({self.args.time_budget:.0f} s) was spent")
            print(f"[gpu-check] {step}: skipped (time budget spent: {spent:.0f} s)", flush=True)
            return False
        print(f"[gpu-check] {step} (at {spent:.0f} s)", flush=True)
        return True

    def predictor(self, precision: str, optimize: str, device=None):
        from ..predictor import Predictor

        return Predictor(self.model_path, device=str(device or self.device), precision=precision, backend="torch",
                         optimize=optimize, input_size=tuple(self.args.input_size))

    def images(self) -> list[np.ndarray]:
        from ..samples import road_scene

        return [road_scene(*FRAME_WH, seed=i) for i in range(CAMERAS)]

    def check_variant(self, label: str, precision: str, optimize: str, reference) -> None:
        """Accuracy against the CPU reference predictions, then the forward timings, of one variant."""
        from ..preprocess import normalize, resize_rgb

        predictor = self.predictor(precision, optimize)
        images = self.images()
        for _ in range(3 if self.cuda else 1):  # eager, capture, replay: the last is what a running node serves
            preds = predictor.predict_batch(images)
        err = max(float(np.abs(p.disparity - r.disparity).max()) for p, r in zip(preds, reference))
        agree = float(np.mean([(p.labels == r.labels).mean() for p, r in zip(preds, reference)]))
        gate = GATES[precision]
        self.accuracy.append((label, err, agree, gate, err <= gate[0] and agree >= gate[1]))
        batch = normalize([resize_rgb(img, predictor.input_size) for img in images])
        singles = [batch[i:i + 1] for i in range(CAMERAS)]
        run = predictor.backend.run
        one = _median_ms(lambda: run(singles[0]), self.iterations, self.warmup)
        four = _median_ms(lambda: run(batch), self.iterations, self.warmup)
        each = _median_ms(lambda: [run(s) for s in singles], self.iterations, self.warmup)
        self.forward.append((label, one, four, each))
        if label == "fp16 graphs":
            self.values["forward"] = float(np.median(one))
            self.values["batch_gain"] = float(np.median(each) / np.median(four))
        print(f"[gpu-check] {label}: disparity max error {err:.2e}, labels equal {100 * agree:.2f} %, forward "
              f"batch 1 {np.median(one):.3f} ms, batch {CAMERAS} {np.median(four):.3f} ms, {CAMERAS} × batch 1 "
              f"{np.median(each):.3f} ms", flush=True)
        del predictor

    def predictor_batch(self) -> str:
        """predict_batch of 4 camera frames against 4 predict calls (fp16 graphs on CUDA) → a Markdown line."""
        variant = "fp16 graphs" if self.cuda else "fp32 eager"
        predictor = self.predictor(*VARIANTS[variant])
        images = self.images()
        iterations, warmup = self.iterations // 4 + 1, self.warmup // 4 + (2 if self.cuda else 0)
        batched = _median_ms(lambda: predictor.predict_batch(images), iterations, warmup)
        single = _median_ms(lambda: [predictor.predict(img) for img in images], iterations, warmup)
        return (f"- predictor end to end, {CAMERAS} cameras at {FRAME_WH[0]}×{FRAME_WH[1]} (preprocess → forward → "
                f"postprocess, outputs at network size), {variant}: `predict_batch` {np.median(batched):.2f} ms "
                f"against {CAMERAS} × `predict` {np.median(single):.2f} ms → "
                f"**{np.median(single) / np.median(batched):.2f}×** the throughput (p50)")

    def run_bench(self, out_dir: Path) -> None:
        from ..cli import run_command

        md = out_dir / "bench.md"
        backends = BENCH_BACKENDS if self.cuda else "torch-cpu"
        iterations, warmup = ("2", "1") if self.args.quick else ("30", "5")
        code = run_command("bench", ["--model", self.model_path, "--backends", backends, "--iterations", iterations,
                                     "--warmup", warmup, "--output", str(md)])
        if code != 0 or not md.is_file():
            self.notes.append(f"bench: failed (exit status {code})")
            return
        self.sections["bench"] = md.read_text()
        e2e = first_number(table_cell(self.sections["bench"], "torch-cuda-fp16", "end_to_end"))
        if e2e is not None:
            self.values["end_to_end"] = e2e
        stages = [first_number(table_cell(self.sections["bench"], "torch-cuda-fp16", s)) for s in RAW_STAGES]
        if None not in stages:
            self.values["end_to_end_raw"] = sum(stages)

    def run_train(self, out_dir: Path) -> None:
        from ..cli import run_command

        md = out_dir / "train.md"
        code = run_command("bench-train", ["--steps", "1" if self.args.quick else "3", "--device", str(self.device),
                                           "--output", str(md)])
        if code != 0 or not md.is_file():
            self.notes.append(f"bench-train: failed or not installed here (exit status {code})")
            return
        self.sections["bench-train"] = md.read_text()
        fp32 = first_number(table_cell(self.sections["bench-train"], "full 6+6", "fp32"))
        amp = first_number(table_cell(self.sections["bench-train"], "full 6+6", "AMP"))
        if fp32 and amp:
            self.values["train_gain"] = amp / fp32


def _demote(markdown: str) -> list[str]:
    """A command's own Markdown section, one heading level down and without its bench markers."""
    lines = []
    for line in markdown.splitlines():
        if line.startswith("<!-- bench:") or line.strip() == "# Benchmarks":
            continue
        lines.append("#" + line if line.startswith("#") else line)
    return lines


def render(check: Check, machine: str, gpu: str) -> str:
    """The gpu section: targets first, then the tables (GPU run), or the targets as "not measured" (no GPU)."""
    args = check.args
    w, h = args.input_size
    lines = ["## GPU check (`scripts/gpu_check.sh` = `sgdepth-ros gpu-check`)", ""]
    if check.cuda:
        lines += [f"- GPU: **{gpu}**; {machine}",
                  f"- date: {dt.date.today().isoformat()}; network input {w}×{h}; model: {check.model_label}; "
                  f"{check.iterations} timed calls after {check.warmup} warm-up per figure"]
    else:
        lines += ["No GPU was available where this section was written: every GPU row below is **not measured** "
                  "(never estimated). Run `bash scripts/gpu_check.sh` on a CUDA machine to fill it in "
                  f"(last plumbing run on the CPU: {dt.date.today().isoformat()})."]
    lines += ["", "| target | goal | measured | met |", "|---|---|---|---|"]
    for key, what, goal, test in TARGETS:
        value = check.values.get(key) if check.cuda else None
        shown = f"{value:.3g}{UNITS[key]}" if value is not None else "not measured"
        met = ("yes" if test(value) else "**no**") if value is not None else "—"
        lines.append(f"| {what} | {goal} | {shown} | {met} |")
    if not check.cuda:
        return "\n".join(lines)
    lines += ["", "### CUDA against PyTorch fp32 on the CPU", "",
              f"{CAMERAS} road images {FRAME_WH[0]}×{FRAME_WH[1]} at the network size; the third call of each "
              "variant (a replayed CUDA graph for the graph variants).", "",
              "| variant | disparity max abs error | labels equal | gate (error, labels) | passed |", "|---|---|---|---|---|"]
    for label, err, agree, gate, ok in check.accuracy:
        lines.append(f"| {label} | {err:.2e} | {100 * agree:.2f} % | ≤ {gate[0]:g}, ≥ {100 * gate[1]:g} % | "
                     f"{'yes' if ok else '**no**'} |")
    lines += ["", "### Forward (backend call: copy in, network, copy out), ms p50 / p95", "",
              f"| variant | batch 1 | batch {CAMERAS} | {CAMERAS} × batch 1 | batch-{CAMERAS} throughput gain |",
              "|---|---|---|---|---|"]
    for label, one, four, each in check.forward:
        lines.append(f"| {label} | {_p50_p95(one)} | {_p50_p95(four)} | {_p50_p95(each)} | "
                     f"{np.median(each) / np.median(four):.2f}× |")
    lines += ["", *check.batch_line]
    for name in ("bench", "bench-train"):
        if name in check.sections:
            lines += ["", *_demote(check.sections[name])]
    if check.notes:
        lines += ["", *(f"- {n}" for n in check.notes)]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..backends import resolve_device
    from ..default_model import default_model_path
    from ..model import load_checkpoint, save_checkpoint
    from ..predictor import _check_input_size
    from .helpers import machine_description, update_markdown

    if args.time_budget <= 0:
        print("error: --time-budget must be positive")
        return 2
    _check_input_size(args.input_size)
    device = resolve_device(args.device)
    source = args.model or default_model_path()
    if source is None:
        print("error: no --model given and this checkout has no shipped model (sgdepth_ros/models/)")
        return 2
    print(f"[gpu-check] torch {torch.__version__}, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else " (no GPU: plumbing only)"),
          flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = load_checkpoint(source)  # the same weights at the asked input size, for bench too
        meta = dict(model.metadata)
        meta["input_size"] = {"width": args.input_size[0], "height": args.input_size[1]}
        model_path = str(save_checkpoint(model, tmp / "model.safetensors", meta))
        label = f"{Path(source).name} ({'trained' if meta.get('trained', True) else 'random'} weights)"
        check = Check(args, device, model_path, label)
        reference = None
        if check.time_left("accuracy and forward"):
            reference = check.predictor("fp32", "none", device="cpu").predict_batch(check.images())
            variants = list(VARIANTS.items()) if check.cuda else list(VARIANTS.items())[:1]
            for label, (precision, optimize) in variants:
                if check.time_left(label):
                    check.check_variant(label, precision, optimize, reference)
            if check.time_left("predictor batch"):
                check.batch_line = [check.predictor_batch()]
                print(f"[gpu-check] {check.batch_line[0]}", flush=True)
        if check.time_left("bench"):
            check.run_bench(tmp)
        if args.skip_train:
            check.notes.append("bench-train: left out (--skip-train)")
        elif check.time_left("bench-train"):
            check.run_train(tmp)
        if not check.cuda or args.skip_compile:
            check.notes.append("torch.compile: left out" + (" (--skip-compile)" if args.skip_compile else " (CPU)"))
        elif reference is not None and check.time_left("torch.compile"):
            label, (precision, optimize) = COMPILE_VARIANT
            try:
                check.check_variant(label, precision, optimize, reference)
            except Exception as exc:  # noqa: BLE001 — a compiler missing on this machine is a finding, not a crash
                check.notes.append(f"torch.compile: failed ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})")
    gpu = (f"{torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda}" if check.cuda else "none")
    text = render(check, machine_description(), gpu)
    print(text)
    if not check.cuda:
        for label, one, four, each in check.forward:  # plumbing numbers: printed, never written as GPU results
            print(f"[gpu-check] CPU smoke {label}: batch 1 {_p50_p95(one)} ms, batch {CAMERAS} {_p50_p95(four)} ms")
    if args.output != "-":
        update_markdown(Path(args.output), text, key="gpu")
        print(f"\nwritten to {args.output}")
    failed = [a[0] for a in check.accuracy if not a[4]]
    if failed:
        print(f"error: accuracy gate failed for {', '.join(failed)}")
        return 1
    print(f"[gpu-check] done in {time.perf_counter() - check.start:.0f} s", flush=True)
    return 0
