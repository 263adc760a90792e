"""``sgdepth-ros quantize CHECKPOINT -o OUT.safetensors``: int8 with NNCF, accuracy-gated against fp32.

The output runs on the CPU with OpenVINO wherever a checkpoint is taken (predictor, node, replay, infer). Gate
frames come from the synthetic world (rendered fresh at the network size, or ``--gate-data`` of an earlier
``sgdepth-ros synth``): its val drive picks which layers stay out of int8, its test drive is the reported gate;
calibration images are its train drive's frames, or ``--calibration DIR`` (a folder of images). A result that misses
the gate is not written unless ``--force``; the message says by how much. See :mod:`sgdepth_training.quantize`.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from sgdepth_ros.commands.arg_types import size

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", type=Path, help="float checkpoint (.safetensors of sgdepth_ros or SGDepth model.pth)")
    p.add_argument("-o", "--out", type=Path, required=True, help="output .safetensors file (int8 OpenVINO graphs)")
    p.add_argument("--input-size", type=size, default=None, help="network input WxH (default: the checkpoint's)")
    p.add_argument("--calibration", default="synth", metavar="synth|DIR",
                   help="calibration images: the synthetic world's train drive (default) or a folder of PNG/JPEG")
    p.add_argument("--calibration-frames", type=int, default=40, help="calibration images used (40)")
    p.add_argument("--gate-data", type=Path, default=None,
                   help="an `sgdepth-ros synth` output (3+ drives) for the gate (default: rendered now, --seed)")
    p.add_argument("--gate-frames", type=int, default=24, help="frames per drive rendered for the gate (24)")
    p.add_argument("--seed", type=int, default=11, help="town seed of the rendered gate data (11: not the default "
                                                        "model's training town, 7)")
    p.add_argument("--rest-precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="precision of what stays out of int8 (auto: bf16 where the CPU runs it natively)")
    p.add_argument("--force", action="store_true", help="write the file even when it misses the gate")


def run(args: argparse.Namespace) -> int:
    from sgdepth_ros.model import CheckpointError, load_checkpoint
    from sgdepth_ros.model.checkpoint import file_sha256

    if args.out.suffix != ".safetensors":
        print(f"error: {args.out}: the output must end in .safetensors")
        return 2
    if args.calibration != "synth" and not Path(args.calibration).is_dir():
        print(f"error: --calibration {args.calibration}: not a folder of images (or 'synth')")
        return 2
    if not 1 <= args.calibration_frames <= 1000:
        print(f"error: --calibration-frames must be in [1, 1000], got {args.calibration_frames}")
        return 2
    try:
        model = load_checkpoint(args.checkpoint)
    except CheckpointError as error:
        print(f"error: {error}")
        return 2
    width, height = args.input_size or (model.metadata["input_size"]["width"], model.metadata["input_size"]["height"])
    with tempfile.TemporaryDirectory(prefix="sgdepth-quantize-") as tmp:
        kitti = _gate_root(args, Path(tmp), (width, height))
        if kitti is None:
            return 2
        return _quantize(args, model, file_sha256(args.checkpoint), kitti, (width, height))


def _gate_root(args, tmp: Path, input_size: tuple[int, int]) -> Path | None:
    """The KITTI root of the gate data: given, or rendered now at the network size."""
    if args.gate_data is not None:
        kitti = args.gate_data / "kitti"
        if not (kitti / "splits").is_dir():
            print(f"error: {args.gate_data}: not an `sgdepth-ros synth` output with a kitti/ tree of 3+ drives")
            return None
        return kitti
    from ..synth.generate import SynthConfig, generate

    config = SynthConfig(out=tmp / "gate", drives=3, frames=args.gate_frames, seed=args.seed, formats=("kitti",),
                         width=input_size[0], height=input_size[1])
    try:
        config.validate()
    except ValueError as error:
        print(f"error: {error}")
        return None
    print(f"rendering the gate data: 3 drives × {args.gate_frames} frames at {input_size[0]}x{input_size[1]}, "
          f"seed {args.seed}")
    generate(config, progress=False)
    return config.out / "kitti"


def _calibration_images(args, kitti: Path, input_size: tuple[int, int]):
    """RGB calibration images and a description of where they came from; None (after a message) when unusable."""
    from sgdepth_ros.imageio import read_rgb

    from ..quantize import read_gate_frames

    if args.calibration == "synth":
        frames = read_gate_frames(kitti, "train", input_size, args.calibration_frames)
        return [f.rgb for f in frames], f"synthetic world, train drive ({len(frames)} frames)"
    folder = Path(args.calibration)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[: args.calibration_frames]
    if not files:
        print(f"error: --calibration {folder}: holds no {'/'.join(IMAGE_SUFFIXES)} image")
        return None
    try:
        return [read_rgb(p) for p in files], f"{folder} ({len(files)} images)"
    except Exception as error:  # a bad file names itself
        print(f"error: --calibration {folder}: {error}")
        return None


def _quantize(args, model, sha256: str, kitti: Path, input_size: tuple[int, int]) -> int:
    import nncf
    import openvino

    from sgdepth_ros.quantized import save_quantized

    from ..quantize import calibration_inputs, quantize, read_gate_frames

    found = _calibration_images(args, kitti, input_size)
    if found is None:
        return 2
    images, described = found
    select, test = read_gate_frames(kitti, "val", input_size), read_gate_frames(kitti, "test", input_size)
    result = quantize(model, sha256, input_size, calibration_inputs(images, input_size), select, test,
                      None if args.rest_precision == "auto" else args.rest_precision)
    gate = result.test_gate
    print(f"int8 '{result.candidate}' ({len(result.kept_layers)} convolutions kept in {result.rest_precision}), "
          f"{result.seconds:.0f} s; test drive ({gate.candidate.frames} frames) against fp32:")
    for name, key, scale in (("AbsRel", "abs_rel", 1), ("δ<1.25", "a1", 1), ("mIoU %", "miou", 100)):
        print(f"  {name:8s} fp32 {scale * getattr(gate.fp32, key):.4f}  int8 {scale * getattr(gate.candidate, key):.4f}")
    print(f"  label agreement {100 * gate.candidate.label_agreement:.2f} %")
    if not gate.passed:
        print("the int8 model misses the accuracy gate: " + "; ".join(gate.misses))
        if not args.force:
            print(f"not written (--force writes it anyway, with the miss recorded): {args.out}")
            return 1
    meta = dict(model.metadata)
    meta["quantization"] = {
        "precision": "int8", "rest_precision": result.rest_precision, "candidate": result.candidate,
        "kept_layers": result.kept_layers, "input_size": {"width": input_size[0], "height": input_size[1]},
        "source": {"file": args.checkpoint.name, "sha256": sha256},
        "calibration": described, "gate_data": str(args.gate_data or f"synthetic world, seed {args.seed}, rendered"),
        "versions": {"nncf": nncf.__version__, "openvino": openvino.__version__},
        "gate": gate.as_dict(), "selection": result.selection, "forced": bool(args.force and not gate.passed),
    }
    meta["input_size"] = {"width": input_size[0], "height": input_size[1]}
    path = save_quantized(args.out, json.loads(json.dumps(meta, default=float)), result.graphs)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, int8; gate {'held' if gate.passed else 'MISSED'})")
    return 0
