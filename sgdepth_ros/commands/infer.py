"""``sgdepth-ros infer``: run a checkpoint over image files, a folder or a video.

Each file fails alone: an unreadable, corrupt or oversized image (or one whose results cannot be written) is named
with the reason in ``summary.json`` and on stderr, and the others are processed; the exit code is 1 if any failed.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..scale import DEFAULT_SCALE_MODE, SCALE_MODES

DEPTH_PNG_SCALE = 256.0  # KITTI convention: uint16 = depth·256, 0 = invalid


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None,
                   help="checkpoint: our .safetensors or a reference SGDepth model.pth (default: the shipped "
                        "synthetic-world model, which knows only the synthetic world)")
    p.add_argument("--input", required=True, help="an image file, a folder of images, or a video file")
    p.add_argument("--output", required=True, help="folder for the results (created if missing)")
    p.add_argument("--width", type=int, default=None, help="network input width, multiple of 32 (default: checkpoint's, 640)")
    p.add_argument("--height", type=int, default=None, help="network input height, multiple of 32 (default: checkpoint's, 192)")
    p.add_argument("--format", choices=("png", "jpg"), default="png", help="format of the colour images")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "bf16"), help="fp16/bf16 need CUDA")
    p.add_argument("--backend", default="auto", choices=("auto", "torch", "openvino"))
    p.add_argument("--resolution", default="input", choices=("input", "network"),
                   help="write results at the input image size (default) or the network size")
    p.add_argument("--scale-mode", choices=SCALE_MODES, default=DEFAULT_SCALE_MODE,
                   help="auto (default): --scale-factor, else the factor stored in the checkpoint, else relative "
                        "depth; fixed: the same but an error without a factor; relative: always model units")
    p.add_argument("--scale-factor", type=float, default=None,
                   help="metres per model unit (default: the checkpoint's, see --scale-mode)")
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity of the label colours, 0..1")
    p.add_argument("--npy", action="store_true", help="also write depth as float32 .npy")
    p.add_argument("--no-preview", action="store_true", help="skip the stacked image|labels|depth preview")


@dataclass
class InputItem:
    name: str               # output stem
    path: Path
    frame: int | None = None


def collect_inputs(source: Path) -> tuple[list[InputItem], list[str]]:
    """→ (items to process, notes on skipped files). Folders are read non-recursively, sorted."""
    from ..imageio import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

    if not source.exists():
        raise FileNotFoundError(f"{source}: no such file or folder")
    if source.is_dir():
        files = sorted(f for f in source.iterdir() if f.is_file() and not f.name.startswith("."))
    else:
        files = [source]
    items, skipped, used = [], [], set()
    for f in files:
        ext = f.suffix.lower()
        if source.is_dir() and ext not in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS:
            skipped.append(f"{f.name}: skipped, not an image or video extension")
            continue
        stem = f.stem if f.stem not in used else f"{f.stem}_{ext.lstrip('.')}"
        used.add(stem)
        items.append(InputItem(stem, f, -1 if ext in VIDEO_EXTENSIONS else None))
    return items, skipped


def iter_images(items: list[InputItem]):
    """Yield (name, rgb array | None, error message | None); videos expand to frames.

    A file that cannot be read (missing, unreadable, corrupt, too large to decode, out of memory) yields its error
    and the next file follows; a video that fails part-way keeps the frames before the failure.
    """
    from ..imageio import iter_video, read_rgb

    for item in items:
        if item.frame is None:
            try:
                rgb = read_rgb(item.path)
            except Exception as exc:  # noqa: BLE001 — one bad file fails alone (MemoryError included)
                yield item.name, None, _reason(item.path, exc)
            else:
                yield item.name, rgb, None
            continue
        try:
            for index, frame in iter_video(item.path):
                yield f"{item.name}_{index:06d}", frame, None
        except Exception as exc:  # noqa: BLE001
            yield item.name, None, _reason(item.path, exc)


def _describe(exc: BaseException) -> str:
    """What went wrong, in one line."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, MemoryError):
        return f"out of memory ({text})"
    return text if isinstance(exc, (ValueError, OSError)) else f"{type(exc).__name__}: {text}"


def _reason(path: Path, exc: BaseException) -> str:
    """One line naming the file and what went wrong."""
    text = _describe(exc)
    return text if str(path) in text else f"{path}: {text}"


def write_results(out_dir: Path, name: str, pred, args) -> None:
    from ..colorize import colorize_depth, colorize_labels, overlay_labels
    from ..imageio import write_rgb

    base = pred.image
    ext = args.format
    panels = [base]
    if pred.labels is not None:
        seg = colorize_labels(pred.labels)
        write_rgb(out_dir / f"{name}_labels.png", pred.labels)
        write_rgb(out_dir / f"{name}_seg_color.{ext}", seg)
        write_rgb(out_dir / f"{name}_overlay.{ext}", overlay_labels(base, pred.labels, args.alpha, seg))
        panels.append(seg)
    if pred.depth is not None:
        depth_u16 = np.clip(np.round(pred.depth * DEPTH_PNG_SCALE), 0, 65535).astype(np.uint16)
        write_rgb(out_dir / f"{name}_depth.png", depth_u16)
        if args.npy:
            np.save(out_dir / f"{name}_depth.npy", pred.depth)
        depth_color = colorize_depth(pred.depth)
        write_rgb(out_dir / f"{name}_depth_color.{ext}", depth_color)
        panels.append(depth_color)
    if not args.no_preview:
        write_rgb(out_dir / f"{name}_preview.{ext}", np.concatenate(panels, axis=0))


def run(args: argparse.Namespace) -> int:
    import time

    from tqdm import tqdm

    from ..default_model import default_model_path
    from ..predictor import Predictor
    from ..preprocess import as_rgb8

    if not 0.0 <= args.alpha <= 1.0:
        print(f"error: --alpha must be within [0, 1], got {args.alpha}", file=sys.stderr)
        return 2
    if (args.width is None) != (args.height is None):
        print("error: give both --width and --height, or neither", file=sys.stderr)
        return 2
    try:
        items, skipped = collect_inputs(Path(args.input))
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    model = args.model or default_model_path()
    if model is None:
        print("error: no --model given and the default model file is not in this installation", file=sys.stderr)
        return 2
    size = (args.width, args.height) if args.width else None
    predictor = Predictor(model, device=args.device, precision=args.precision, input_size=size,
                          backend=args.backend, output_resolution=args.resolution,
                          scale_mode=args.scale_mode, scale_factor=args.scale_factor)
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"model: {model}\nrunning: {predictor.describe()}")
    if not args.model:
        print("NOTE: no --model given: the shipped default model knows only the synthetic world; for real cameras "
              "use the released SGDepth weights (--model model.pth).")
    if not predictor.trained:
        print("NOTE: these weights are UNTRAINED (random initialisation); the outputs show that the "
              "pipeline runs, not what SGDepth predicts.")
    failures, done, timings = [], [], []
    for name, rgb, error in tqdm(iter_images(items), desc="infer", unit="img", dynamic_ncols=True):
        if error is not None:
            failures.append(error)
            continue
        try:
            t0 = time.perf_counter()
            rgb = as_rgb8(rgb)  # grey, RGBA and 16-bit files become RGB8
            pred = predictor.predict(rgb)
            t1 = time.perf_counter()
            write_results(out_dir, name, pred, args)
            t2 = time.perf_counter()
        except Exception as exc:  # noqa: BLE001 — one bad image fails alone (MemoryError included)
            failures.append(f"{name}: {_describe(exc)}")
            continue
        timings.append({**pred.timings, "write": (t2 - t1) * 1e3, "total": (t2 - t0) * 1e3})
        done.append(name)
    summary = {
        "model": str(model), "runner": predictor.describe(), "trained_weights": predictor.trained,
        "depth_units": "metres" if predictor.is_metric else "model units (relative)",
        "scale": {"mode": args.scale_mode, "factor": predictor.scale_factor, "source": predictor.scale.describe()},
        "processed": len(done), "failed": failures, "skipped": skipped,
        "median_ms": {k: float(np.median([t[k] for t in timings])) for k in (timings[0] if timings else {})},
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"processed {len(done)} image(s), {len(failures)} failed, {len(skipped)} skipped → {out_dir}")
    if timings:
        print("median ms: " + ", ".join(f"{k} {v:.1f}" for k, v in summary["median_ms"].items()))
    for line in skipped:
        print(f"  skipped: {line}")
    for line in failures:
        print(f"  FAILED: {line}", file=sys.stderr)
    if not predictor.trained:
        print("NOTE: results come from UNTRAINED weights.")
    return 1 if failures or not done else 0
