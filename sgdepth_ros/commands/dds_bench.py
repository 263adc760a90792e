"""The client side of a node benchmark over DDS, shared by ``bench-node`` and ``bench-rig`` (not a command).

Camera messages with KITTI-like intrinsics, the arrival times of a probe's outputs by stamp, percentiles for tables,
and the memory of a node process as Linux reports it. ROS imports stay inside the functions that need them, so
importing this module costs nothing.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

# every output of one camera that a benchmark subscribes to (all of them: the node renders only what is subscribed)
OUTPUTS = ("depth", "depth/camera_info", "depth/color", "semantic", "semantic/color", "semantic/overlay", "points")


def kitti_k(width: int, height: int) -> list[float]:
    """KITTI-like intrinsics (row-major 3×3) scaled to a width×height image (fx ≈ 0.58·width)."""
    return [0.58 * width, 0.0, width / 2, 0.0, 1.92 * height, height / 2, 0.0, 0.0, 1.0]


def camera_messages(rgb: np.ndarray, stamp, frame_id: str = "camera_optical"):
    """HxWx3 uint8 RGB and a builtin_interfaces/Time → (sensor_msgs/Image rgb8, CameraInfo), both stamped ``stamp``.

    To publish the same frame again under a new stamp, set ``header.stamp`` of both (no new conversion needed)."""
    from sensor_msgs.msg import CameraInfo
    from std_msgs.msg import Header

    from ..ros.messages import array_to_image

    h, w = rgb.shape[:2]
    header = Header(frame_id=frame_id, stamp=stamp)
    k = kitti_k(w, h)
    info = CameraInfo(header=Header(frame_id=frame_id, stamp=stamp), width=w, height=h, k=k,
                      p=[*k[:3], 0.0, *k[3:6], 0.0, *k[6:], 0.0])
    return array_to_image(rgb, header), info


def arrivals(probe, topic: str) -> dict[int, int]:
    """Header stamp (ns) → receive time (ns, the probe's clock) of every message ``probe`` got on ``topic``."""
    from ..ros.sync import stamp_ns

    return {stamp_ns(m.header): t for t, m in probe.messages[topic]}


def percentile(values, q: float) -> str:
    """The q-th percentile with one decimal for a table, '–' for no values."""
    return f"{np.percentile(values, q):.1f}" if len(values) else "–"


def process_cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system, all threads) process ``pid`` has used so far, in s, from /proc/<pid>/stat; None where
    it cannot be read."""
    import os

    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": field 3 (state) is fields[0]
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime: fields 14, 15


def process_memory_kib(pid: int) -> dict[str, int | None]:
    """Memory of process ``pid`` in KiB: ``rss`` (VmRSS, now), ``hwm`` (VmHWM, its peak RSS) from
    /proc/<pid>/status and ``pss`` (proportional set size: shared pages divided among the processes sharing them,
    so the sum over processes does not count shared libraries twice) from /proc/<pid>/smaps_rollup; None for a
    value this kernel does not give."""
    found: dict[str, int | None] = {"rss": None, "hwm": None, "pss": None}
    for path, keys in ((f"/proc/{pid}/status", {"VmRSS:": "rss", "VmHWM:": "hwm"}),
                       (f"/proc/{pid}/smaps_rollup", {"Pss:": "pss"})):
        try:
            lines = Path(path).read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if parts and parts[0] in keys and found[keys[parts[0]]] is None:
                found[keys[parts[0]]] = int(parts[1])
    return found


def gpu_memory_mib(pids: list[int]) -> float | None:
    """GPU memory used by the processes ``pids`` together (MiB) as ``nvidia-smi`` reports it; None where there is no
    nvidia-smi, it fails, or none of them holds GPU memory (a CPU run)."""
    import shutil
    import subprocess

    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        done = subprocess.run([exe, "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                              capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    used = {}
    for line in done.stdout.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0].isdigit():
            try:
                used[int(parts[0])] = used.get(int(parts[0]), 0.0) + float(parts[1])
            except ValueError:
                continue
    mine = [used[pid] for pid in pids if pid in used]
    return sum(mine) if mine else None
