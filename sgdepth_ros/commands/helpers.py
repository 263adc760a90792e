"""Helpers that several commands share (runtime and ``sgdepth_training`` ones alike).

Command modules import from here (and from :mod:`.arg_types`), never from each other: a command is a thin layer of
argument parsing and printing, and one command importing another made them load in a loop (bench → demo → replay →
bench).
"""
from __future__ import annotations

import os
import platform
from pathlib import Path


# Instruction-set extensions that decide which CPU kernels OpenVINO / oneDNN / PyTorch pick (fp32, bf16, int8).
SIMD_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx_vnni",
              "amx_tile", "amx_bf16", "amx_int8", "asimd", "sve")


def cpu_flags(cpuinfo: str | None = None) -> list[str]:
    """The SIMD flags of :data:`SIMD_FLAGS` this CPU reports in /proc/cpuinfo (empty where it cannot be read)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return []
    present = set()
    for line in cpuinfo.splitlines():
        if line.split(":", 1)[0].strip() in ("flags", "Features"):
            present.update(line.split(":", 1)[1].split())
    return [flag for flag in SIMD_FLAGS if flag in present]


def machine_description() -> str:
    """One line naming the CPU, its SIMD flags, core count, GPU, Python, torch and OpenVINO versions (for benchmark
    tables: the same code runs at different speeds on machines of the same kind with other CPU features)."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags = cpu_flags()
    cpu += f" ({' '.join(flags)})" if flags else " (CPU flags unknown)"
    import torch

    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    try:
        import openvino
        ov = f", OpenVINO {openvino.__version__.split('-')[0]}"
    except ImportError:
        ov = ""
    return (f"{cpu}, {os.cpu_count()} logical cores{gpu}; Python {platform.python_version()}, "
            f"torch {torch.__version__}{ov}")


def update_markdown(path: Path, section: str, key: str = "inference") -> None:
    """Replace the block between ``<!-- bench:KEY:start -->`` and ``…:end -->`` (appended if absent)."""
    start, end = f"<!-- bench:{key}:start -->", f"<!-- bench:{key}:end -->"
    text = path.read_text() if path.is_file() else "# Benchmarks\n"
    block = f"{start}\n{section}\n{end}"
    if start in text and end in text:
        text = text[:text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def make_untrained_checkpoint(path: Path, seed: int = 0) -> Path:
    """Write a randomly initialised SGDepth in our format, marked untrained in its metadata → ``path``.

    For benchmarks (speed does not depend on the weights) and for a checkout without the default model.
    """
    import torch

    from ..model import SGDepth, save_checkpoint

    torch.manual_seed(seed)
    model = SGDepth(pose_layers=None)
    meta = {"trained": False,
            "provenance": {"source": f"random initialisation (torch seed {seed})",
                           "note": "not a depth or segmentation result"}}
    return save_checkpoint(model, path, meta)
