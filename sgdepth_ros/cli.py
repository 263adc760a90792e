"""``sgdepth-ros``: one command-line entry point with subcommands."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

# subcommand → (module under sgdepth_ros.commands, or an absolute module path, one-line help).
# Offline commands live in sgdepth_training (the checkout's training/ folder); the vehicle path never imports them.
COMMANDS = {
    "infer": ("infer", "run a checkpoint on images, a folder or a video; write depth, labels and colour views"),
    "convert": ("convert", "convert a reference SGDepth model.pth to our .safetensors format (with metadata)"),
    "export-onnx": ("export_onnx", "a checkpoint's inference graph → ONNX (fixed input size, optional dynamic batch; "
                                   "--check compares it with PyTorch in ONNX Runtime)"),
    "gpu-check": ("gpu_check", "once on a GPU: CUDA outputs against fp32 CPU, forward/batch/end-to-end and training "
                               "speed against the targets; writes docs/benchmarks.md (scripts/gpu_check.sh)"),
    "demo": ("demo", "the README main job: draw road images and run the whole inference pipeline on them"),
    "bench": ("bench", "per-stage latency benchmark; writes docs/benchmarks.md"),
    "bench-node": ("bench_node", "sgdepth_node end to end over DDS beside the predictor; writes docs/benchmarks.md"),
    "bench-rig": ("bench_rig", "several cameras on one node against one node process per camera (rates, latency, "
                               "memory) and predict_batch against sequential predict; writes docs/benchmarks.md"),
    "replay": ("replay", "accuracy, latency and an output bag of a model on a recorded rosbag2 drive "
                         "(offline, or live through the node)"),
    "synth": ("sgdepth_training.commands.synth",
              "render synthetic drives with ground truth as KITTI raw, Cityscapes and rosbag2"),
    "train": ("sgdepth_training.commands.train",
              "train SGDepth on KITTI raw + Cityscapes or the synthetic world (presets, resume, DDP, AMP)"),
    "export": ("sgdepth_training.commands.export",
               "a training run → the node's checkpoint (inference weights, metadata, optional metric scale)"),
    "quantize": ("sgdepth_training.commands.quantize",
                 "int8 post-training quantisation with NNCF, gated on accuracy against fp32 (OpenVINO, CPU)"),
    "bench-precision": ("sgdepth_training.commands.bench_precision",
                        "CPU precisions side by side (PyTorch fp32, OpenVINO fp32/bf16/int8): forward speed "
                        "interleaved and accuracy against fp32 with the int8 gate; writes docs/benchmarks.md"),
    "bench-train": ("sgdepth_training.commands.bench_train",
                    "training throughput (images/s) of the full SGDepth step; writes docs/benchmarks.md"),
    "bench-synth": ("sgdepth_training.commands.bench_synth",
                    "synthetic-world rendering speed and demo-drive time; writes docs/benchmarks.md"),
    "bench-replay": ("sgdepth_training.commands.bench_replay",
                     "bag replay throughput (offline) and latency under load (live); writes docs/benchmarks.md"),
    "eval-depth": ("sgdepth_training.commands.eval_depth",
                   "depth metrics of a checkpoint on KITTI (Eigen / KITTI split / KITTI 2015) or the synthetic world"),
    "eval-pose": ("sgdepth_training.commands.eval_pose",
                  "ego-motion of a checkpoint's pose net: 5-frame-snippet ATE (KITTI odometry or a synthetic drive)"),
    "eval-scale": ("sgdepth_training.commands.eval_scale",
                   "metric scale from the camera height against its targets: replay offline and live on a drive bag "
                   "with depth ground truth; writes docs/benchmarks.md"),
    "eval-seg": ("sgdepth_training.commands.eval_seg",
                 "segmentation mIoU of a checkpoint on Cityscapes (or the synthetic world's Cityscapes export)"),
    "ablation": ("sgdepth_training.commands.ablation",
                 "the masking ablation (issue 17): runs a-d on `synth --preset dynamic` data, evaluated on "
                 "all/moving/static pixels with holes; writes the report (scripts/ablation.sh)"),
}


TRAINING_PACKAGE = "sgdepth_training"


def training_missing_message(what: str, error: ImportError) -> str:
    """One line for a command that needs the offline tools (``sgdepth_training`` and its extras) when they are absent
    (e.g. a runtime-only colcon install)."""
    missing = error.name or str(error)
    return (f"error: {what} needs the offline tools (the {TRAINING_PACKAGE} package and its extras), which this "
            f"installation lacks ({missing} cannot be imported). Install them from the sgdepth_ros checkout with "
            f"'pip install -e .[train,replay]'; the node, infer, convert and replay need only the runtime.")


class _Unavailable:
    """Stands in for a command module that cannot be imported here: any arguments, one clear line, exit 2."""

    def __init__(self, name: str, error: ImportError):
        self.name, self.error = name, error

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("rest", nargs="*", help=argparse.SUPPRESS)

    def run(self, args: argparse.Namespace) -> int:
        print(training_missing_message(f"'sgdepth-ros {self.name}'", self.error), file=sys.stderr)
        return 2


def _command_module(name: str):
    module = COMMANDS[name][0]
    if "." not in module:
        return importlib.import_module(f"sgdepth_ros.commands.{module}")
    try:
        return importlib.import_module(module)
    except ImportError as error:  # a runtime-only install: the offline commands (or their extras) are absent
        return _Unavailable(name, error)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="sgdepth-ros", description="SGDepth monocular depth + semantic segmentation: tools.")
    parser.add_argument("--version", action="version", version=f"sgdepth-ros {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in COMMANDS.items():
        command = _command_module(name)
        if isinstance(command, _Unavailable):  # takes any arguments as they are, to say what is missing
            p = sub.add_parser(name, help=f"(not installed here) {help_text}", prefix_chars="\x01", add_help=False)
        else:
            p = sub.add_parser(name, help=help_text, description=help_text)
        command.add_arguments(p)
    return parser


def run_command(name: str, argv: list[str]) -> int:
    """Run one subcommand with its own arguments (``sgdepth-ros NAME ARGV…``) in this process → its exit code.

    For a command that builds on another (``demo`` runs ``replay``) without importing its module.
    """
    parser = argparse.ArgumentParser(prog=f"sgdepth-ros {name}")
    module = _command_module(name)
    module.add_arguments(parser)
    return module.run(parser.parse_args(argv))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    module = _command_module(args.command)
    try:
        return module.run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # expected errors carry a clear message; print it without a traceback
        from .backends import BackendError
        from .model import CheckpointError

        if isinstance(exc, (CheckpointError, BackendError, ValueError, OSError)):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
