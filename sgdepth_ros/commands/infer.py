"""``sgdepth-ros infer``: run a checkpoint over image files, a folder or a video.

Each file fails alone: an unreadable, corrupt or oversized image (or one whose results cannot be written) is named
with the reason in ``summary.json`` and on stderr, and the others are processed; the exit code is 1 if any failed.

``--scale-mode camera_height --camera-height 1.65`` measures the scale on every image from the camera's height over
the road plane the network sees (:mod:`sgdepth_ros.ground_plane`) and filters it over the images in file order
(:mod:`sgdepth_ros.scale_filter`), so the input is one drive of one camera: a folder of its frames, or a video. The
camera matrix comes from ``--intrinsics fx,fy,cx,cy`` (pixels of the input images) or ``--calib`` (a KITTI
``calib_cam_to_cam.txt``: ``P_rect_02``, image size ``S_rect_02``). The first images (before the filter holds a few
estimates) are written in model units; ``summary.json`` lists each image's own estimate, the filtered scale and the
unit its depth was written in.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..scale import DEFAULT_SCALE_MODE, SCALE_MODES
from .arg_types import positive_float

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
                        "depth; fixed: the same but an error without a factor; relative: always model units; "
                        "camera_height: measured on each image from --camera-height and the road plane (images of "
                        "one drive, in file order; needs --intrinsics or --calib)")
    p.add_argument("--scale-factor", type=float, default=None,
                   help="metres per model unit (default: the checkpoint's, see --scale-mode)")
    p.add_argument("--camera-height", type=positive_float, default=None,
                   help="camera_height: metres from the camera down to the road (needs --intrinsics or --calib)")
    camera = p.add_mutually_exclusive_group()
    camera.add_argument("--intrinsics", default=None, metavar="FX,FY,CX,CY",
                        help="camera_height: the camera matrix in pixels of the input images")
    camera.add_argument("--calib", default=None, metavar="CALIB_CAM_TO_CAM",
                        help="camera_height: a KITTI calib_cam_to_cam.txt (P_rect_02 and S_rect_02 of image_02)")
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity of the label colours, 0..1")
    p.add_argument("--npy", action="store_true", help="also write depth as float32 .npy")
    p.add_argument("--no-preview", action="store_true", help="skip the stacked image|labels|depth preview")


@dataclass
class InputItem:
    name: str               # output stem
    path: Path
    frame: int | None = None


@dataclass(frozen=True)
class CameraMatrix:
    """The intrinsics of the input images for scale_mode camera_height.

    K: 3×3 float64 in pixels of the input images; size: (width, height) the images must have (None: not known,
    only cx, cy are checked to lie inside each image); source: where it came from, for the summary."""

    K: np.ndarray
    size: tuple[int, int] | None
    source: str

    def check(self, width: int, height: int) -> None:
        """ValueError when an image of width × height cannot have these intrinsics."""
        if self.size is not None and self.size != (width, height):
            raise ValueError(f"the image is {width}x{height} but {self.source} describes {self.size[0]}x"
                             f"{self.size[1]} images")
        cx, cy = self.K[0, 2], self.K[1, 2]
        if not (0 < cx < width and 0 < cy < height):
            raise ValueError(f"the principal point ({cx:g}, {cy:g}) of {self.source} lies outside the "
                             f"{width}x{height} image: the intrinsics must be in pixels of the input images")


def parse_intrinsics(text: str) -> CameraMatrix:
    """'fx,fy,cx,cy' (pixels) → CameraMatrix; ValueError naming the valid form."""
    try:
        fx, fy, cx, cy = (float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise ValueError(f"--intrinsics must be four numbers fx,fy,cx,cy in pixels, got {text!r}") from None
    if not all(np.isfinite(v) for v in (fx, fy, cx, cy)) or fx <= 0 or fy <= 0:
        raise ValueError(f"--intrinsics needs finite fx, fy > 0 and finite cx, cy, got {text!r}")
    K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    return CameraMatrix(K, None, f"--intrinsics {fx:g},{fy:g},{cx:g},{cy:g}")


def read_kitti_calib(path: Path) -> CameraMatrix:
    """A KITTI calib_cam_to_cam.txt → P_rect_02[:3, :3] and S_rect_02 (the parser of the offline tools)."""
    try:
        from sgdepth_training.data.kitti_calib import camera_intrinsics, read_calib_file
    except ImportError as error:
        from ..cli import training_missing_message
        raise ValueError(training_missing_message("--calib", error).removeprefix("error: ")
                         + "; or give --intrinsics fx,fy,cx,cy") from None
    try:
        K, size = camera_intrinsics(read_calib_file(path))
    except Exception as error:  # DatasetError: a missing file or key, a malformed line (names the file)
        text = str(error)
        raise ValueError(text if str(path) in text else f"{path}: {text}") from None
    return CameraMatrix(K, size, f"{path} (P_rect_02, {size[0]}x{size[1]})")


def camera_matrix(args: argparse.Namespace) -> CameraMatrix | None:
    """The intrinsics asked for with scale_mode camera_height (None in the other modes); ValueError for a missing
    or malformed source, or one given with another mode."""
    given = args.intrinsics is not None or args.calib is not None
    if args.scale_mode != "camera_height":
        if given or args.camera_height is not None:
            raise ValueError("--camera-height, --intrinsics and --calib are used only with --scale-mode camera_height")
        return None
    if args.camera_height is None:
        raise ValueError("--scale-mode camera_height needs --camera-height (metres from the camera down to the road)")
    if not given:
        raise ValueError("--scale-mode camera_height needs the camera's intrinsics: --intrinsics fx,fy,cx,cy (pixels "
                         "of the input images) or --calib calib_cam_to_cam.txt (KITTI)")
    return parse_intrinsics(args.intrinsics) if args.intrinsics is not None else read_kitti_calib(Path(args.calib))


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


def _scale_record(name: str, source, pred) -> dict:
    """One image's camera-height scale for summary.json: its own estimate, the filtered scale, the unit written."""
    return {"name": name, "estimate": source.last_estimate, "scale": pred.scale,
            "depth_units": "metres" if pred.is_metric else "model units (relative)"}


def _camera_height_summary(height_m: float, camera: CameraMatrix, per_image: list[dict]) -> dict:
    """summary.json's camera_height section: the inputs and how the scale went over the images."""
    scales = np.asarray([r["scale"] for r in per_image if r["scale"] is not None], np.float64)
    return {"height_m": height_m, "intrinsics": camera.source,
            "K": [[float(v) for v in row] for row in camera.K],
            "images_with_estimate": sum(r["estimate"] is not None for r in per_image),
            "images_metric": int(scales.size),
            "final_scale": float(scales[-1]) if scales.size else None,
            "jitter": float(scales.std() / scales.mean()) if scales.size >= 2 else None,
            "per_image": per_image}


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
        camera = camera_matrix(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
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
                          scale_mode=args.scale_mode, scale_factor=args.scale_factor,
                          camera_height=args.camera_height)
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"model: {model}\nrunning: {predictor.describe()}")
    if not args.model:
        print("NOTE: no --model given: the shipped default model knows only the synthetic world; for real cameras "
              "use the released SGDepth weights (--model model.pth).")
    if not predictor.trained:
        print("NOTE: these weights are UNTRAINED (random initialisation); the outputs show that the "
              "pipeline runs, not what SGDepth predicts.")
    failures, done, timings, per_image = [], [], [], []
    for name, rgb, error in tqdm(iter_images(items), desc="infer", unit="img", dynamic_ncols=True):
        if error is not None:
            failures.append(error)
            continue
        try:
            t0 = time.perf_counter()
            rgb = as_rgb8(rgb)  # grey, RGBA and 16-bit files become RGB8
            if camera is not None:
                camera.check(rgb.shape[1], rgb.shape[0])
                pred = predictor.predict(rgb, intrinsics=camera.K)
                per_image.append(_scale_record(name, predictor.scale, pred))
            else:
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
        **({"camera_height": _camera_height_summary(args.camera_height, camera, per_image)} if camera else {}),
        "median_ms": {k: float(np.median([t[k] for t in timings])) for k in (timings[0] if timings else {})},
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"processed {len(done)} image(s), {len(failures)} failed, {len(skipped)} skipped → {out_dir}")
    if camera is not None:
        height = summary["camera_height"]
        print(f"camera height {args.camera_height:g} m: an estimate on {height['images_with_estimate']} of "
              f"{len(per_image)} image(s), metric depth on {height['images_metric']}; final scale "
              + (f"×{height['final_scale']:.4g} m/unit" if height["final_scale"] else "none (no road seen)"))
    if timings:
        print("median ms: " + ", ".join(f"{k} {v:.1f}" for k, v in summary["median_ms"].items()))
    for line in skipped:
        print(f"  skipped: {line}")
    for line in failures:
        print(f"  FAILED: {line}", file=sys.stderr)
    if not predictor.trained:
        print("NOTE: results come from UNTRAINED weights.")
    return 1 if failures or not done else 0
