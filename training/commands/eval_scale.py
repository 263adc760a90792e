"""``sgdepth-ros eval-scale BAG``: the metric scale from the camera height against issue 14's targets, offline and
live.

Runs ``sgdepth-ros replay BAG --scale-mode camera_height`` as a user would, each mode in its own process: offline
(every frame through the predictor, the scale measured in process) and live (the bag played to the ``sgdepth_node``
process with ``scale_mode: camera_height``, the scale measured by the node). From each report it takes the per-frame
scale error against the ground truth's scale (median of ground truth / prediction in model units), the frame-to-frame
jitter of the filtered scale and the depth metrics with the camera-height scale beside per-image median scaling on
the same frames, checks them against the targets and writes the table into docs/benchmarks.md (``bench:scale``).

The held-out synthetic test drive is the last drive of the default model's data set::

    sgdepth-ros synth --out /tmp/synth14 --drives 8 --frames 80 --seed 7 --formats kitti,bag
    sgdepth-ros eval-scale /tmp/synth14/bags/2030_01_08_drive_0008
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from sgdepth_ros.commands.arg_types import positive_float

# issue 14: filtered scale error median ≤ 3 %, p95 ≤ 10 %; AbsRel with the camera-height scale at most 0.01 above
# per-image median scaling; jitter (std / mean of the filtered scale) ≤ 2 %
TARGETS = {"median": 0.03, "p95": 0.10, "abs_rel_gap": 0.01, "jitter": 0.02}
MODES = ("offline", "live")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bag", help="a drive bag with CameraInfo and dense depth ground truth (e.g. a synthetic drive)")
    p.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES), help="replay modes (default both)")
    p.add_argument("--camera-height", type=positive_float, default=None,
                   help="metres (default: from the bag's /tf_static)")
    p.add_argument("--rate", type=positive_float, default=0.5,
                   help="live: multiple of the bag's pace (default 0.5: a 2-core CPU keeps up with most frames)")
    p.add_argument("--device", default="cpu", help="auto | cpu | cuda | cuda:N (default cpu)")
    p.add_argument("--backend", default="auto", choices=("auto", "torch", "openvino"),
                   help="offline backend (the node uses its default)")
    p.add_argument("--out", default=None, help="keep the replay reports here (default: a temporary folder)")
    p.add_argument("--output", default="docs/benchmarks.md", help="Markdown file to update ('-' prints only)")


def replay_command(args: argparse.Namespace, mode: str, out: Path) -> list[str]:
    command = ["sgdepth-ros", "replay", str(args.bag), "--scale-mode", "camera_height", "--mode", mode,
               "--out", str(out), "--overwrite", "--device", args.device, "--previews", "2"]
    if args.model:
        command += ["--model", str(args.model)]
    if args.camera_height:
        command += ["--camera-height", f"{args.camera_height:g}"]
    if mode == "offline":
        command += ["--backend", args.backend]
    else:
        command += ["--rate", f"{args.rate:g}", "--use-sim-time", "--drain", "60"]
    return command


def _replay(command: list[str], out: Path) -> dict:
    done = subprocess.run([sys.executable, "-m", "sgdepth_ros.cli", *command[1:]], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return json.loads((out / "report.json").read_text())


def check(report: dict) -> dict:
    """The target numbers of one replay report: value and met per target (None where it could not be measured)."""
    height = report.get("camera_height") or {}
    error = height.get("scale_error") or {}
    metrics, median = height.get("metrics") or {}, height.get("median_same_frames") or {}
    gap = metrics["abs_rel"] - median["abs_rel"] if metrics and median else None
    values = {"median": error.get("median_abs"), "p95": error.get("p95_abs"), "abs_rel_gap": gap,
              "jitter": height.get("jitter")}
    return {key: (value, None if value is None else value <= TARGETS[key]) for key, value in values.items()}


def ratio_of_medians_offset(report: dict) -> float | None:
    """Median over frames of filtered scale / the median-scaling ratio (median gt / median pred, the evaluator's
    per-image ratio) − 1: how far the scale sits from what per-image median scaling would pick."""
    values = [r["scale_filtered"] / r["ratio"] - 1 for r in report.get("per_frame") or []
              if r.get("scale_filtered") is not None and r.get("ratio")]
    return float(sorted(values)[len(values) // 2]) if values else None


def _pct(value) -> str:
    return "–" if value is None else f"{100 * value:.2f} %"


def _met(flag) -> str:
    return {True: "yes", False: "**no**", None: "–"}[flag]


def table_rows(mode: str, report: dict, met: dict) -> list[str]:
    height, frames = report["camera_height"], report["frames"]
    fixed = (report["depth"] or {}).get("fixed") or {}
    metrics, median = height["metrics"] or {}, height["median_same_frames"] or {}
    estimate = height["estimate_error"]
    scored = f"{frames['delivered']} of {frames['sent']} delivered, {height['frames_with_scale']} with a scale"
    return [
        f"| {mode} | {scored} | {_pct(met['median'][0])} ({_met(met['median'][1])}) | "
        f"{_pct(met['p95'][0])} ({_met(met['p95'][1])}) | {_pct(met['jitter'][0])} ({_met(met['jitter'][1])}) | "
        f"{metrics.get('abs_rel', float('nan')):.3f} / {median.get('abs_rel', float('nan')):.3f} "
        f"({met['abs_rel_gap'][0]:+.3f}, {_met(met['abs_rel_gap'][1])}) | "
        f"{fixed.get('metrics', {}).get('abs_rel', float('nan')):.3f} | "
        f"{_pct(estimate['median_abs'])} / {_pct(estimate['p95_abs'])} | {_pct(ratio_of_medians_offset(report))} |"]


def run(args: argparse.Namespace) -> int:
    from sgdepth_ros.commands.helpers import machine_description, update_markdown

    rows, reports, commands = [], {}, []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.out) if args.out else Path(tmp)
        for mode in args.modes:
            out = base / mode
            command = replay_command(args, mode, out)
            print(f"$ {shlex.join(command)}", flush=True)
            try:
                report = _replay(command, out)
            except RuntimeError as error:
                print(f"error: {error}", file=sys.stderr)
                return 1
            if not report.get("camera_height") or not report.get("depth"):
                print(f"error: {args.bag}: the {mode} replay measured no camera-height scale or had no depth ground "
                      f"truth", file=sys.stderr)
                return 1
            reports[mode], met = report, check(report)
            rows += table_rows(mode, report, met)
            commands.append(shlex.join(command))
            print(rows[-1], flush=True)
    first = next(iter(reports.values()))
    height = first["camera_height"]
    lines = [
        "## Metric scale from the camera height (`sgdepth-ros eval-scale`)", "",
        f"`sgdepth-ros replay --scale-mode camera_height` on `{Path(args.bag).name}` "
        f"({first['frames']['in_bag']} frames) with `{Path(first['model']).name}`: the scale from the "
        f"camera height {height['height_m']:g} m ({height['height_source']}) over the road plane fitted to the "
        "network's own road pixels, filtered over frames. Error = filtered scale / the ground truth's scale − 1 (the "
        "ground truth's scale of a frame: median of ground truth / prediction in model units over its evaluated "
        "pixels); jitter = std / mean of the filtered scale over the frames that had one; AbsRel over the frames "
        "with a scale (the first two frames of a drive stay relative: the filter needs 3 estimates).", "",
        f"- machine: {machine_description()}",
        f"- date: {dt.date.today().isoformat()}; command: `sgdepth-ros eval-scale {args.bag}"
        + (f" --rate {args.rate:g}" if "live" in args.modes else "") + (f" --out {args.out}" if args.out else "")
        + "`, which runs:",
        *[f"  - `{c}`" for c in commands], "",
        f"Targets: median error ≤ {100 * TARGETS['median']:g} %, p95 ≤ {100 * TARGETS['p95']:g} % (filtered); "
        f"AbsRel with the camera-height scale at most {TARGETS['abs_rel_gap']:g} above per-image median scaling "
        f"(lower is better, so a negative difference meets it); jitter ≤ {100 * TARGETS['jitter']:g} %.", "",
        "| replay | frames | scale error, median (met) | p95 (met) | jitter (met) | AbsRel camera height / median "
        "scaling, same frames (difference, met) | AbsRel fixed scale (checkpoint) | per-frame estimate error median / "
        "p95 | filtered scale vs the median-scaling ratio |",
        "|---|---|---|---|---|---|---|---|---|", *rows, "",
        "The last column compares with the evaluator's per-image median-scaling ratio, median(gt) / median(pred), "
        "instead of the per-pixel median(gt / pred) the errors use. The two differ where the model's depth error is "
        "not one factor over the image (gt / pred changes with distance); the camera height, measured on the road "
        "near the car, follows the per-pixel ratio.", "",
        "Live: the node measures the scale on the frames it processes (a busy node skips frames, so its filter sees "
        "fewer of them) and publishes each metric frame's factor on `depth/scale`; it publishes no per-frame "
        "estimates (\"–\").",
    ]
    text = "\n".join(lines)
    print(text)
    if args.output != "-":
        update_markdown(Path(args.output), text, key="scale")
    return 0
