"""Writing frames in the KITTI raw layout, with depth ground truth, poses, calibration and split files.

Per drive: ``image_02/data/%010d.png`` (RGB), ``image_02/timestamps.txt``, ground-truth depth in the KITTI
depth-completion format (uint16 PNG of metres·256, 0 = invalid: sky and anything beyond 255.99 m) under
``proj_depth/groundtruth/image_02/``, ``poses.txt`` (KITTI odometry: camera-to-world 3×4 per frame, world = the first
frame's camera), and, beyond KITTI, ``synthetic/label_ids/image_02`` (Cityscapes labelIds, uint8 PNG),
``synthetic/instance_ids/image_02`` (uint16 PNG, actor id, 0 = none) and ``synthetic/objects.json`` (every actor's
class, size, whether it moves, and its pose per frame in the same world frame as poses.txt).
Per date: ``calib_cam_to_cam.txt`` with camera 02 as the rendered camera (P_rect_02 = [K|0]) and camera 03 a virtual
right camera 0.54 m to its right (KITTI's baseline), cameras 00/01 identical to 02/03.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np

from sgdepth_ros.imageio import write_rgb

from ..data.kitti import write_poses
from .camera import Camera

BASELINE_M = 0.54
MAX_DEPTH_PNG_M = 65535 / 256


def write_png(path: Path, image: np.ndarray) -> None:
    """Write an RGB (H×W×3 uint8) or single-channel (uint8/uint16) PNG, creating folders, fast zlib level."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_rgb(path, image, png_compression=1)


def depth_to_png16(depth: np.ndarray) -> np.ndarray:
    """[H,W] float32 metres (NaN = invalid) → uint16 metres·256, 0 where invalid or not representable."""
    valid = np.isfinite(depth) & (depth > 0) & (depth < MAX_DEPTH_PNG_M)
    return np.where(valid, np.round(np.nan_to_num(depth) * 256), 0).astype(np.uint16)


def calib_text(camera: Camera) -> str:
    """calib_cam_to_cam.txt for the rendered camera (02) and a virtual right camera (03)."""
    K = camera.K

    def row(values) -> str:
        return " ".join(f"{v:.6e}" for v in np.ravel(values))

    lines = ["calib_time: synthetic (sgdepth_ros synth)", f"corner_dist: {0.0:.6e}"]
    for cam in range(4):
        P = np.hstack([K, [[-K[0, 0] * BASELINE_M if cam % 2 else 0.0], [0.0], [0.0]]])
        T = [-BASELINE_M if cam % 2 else 0.0, 0.0, 0.0]
        lines += [f"S_{cam:02d}: {row([camera.width, camera.height])}", f"K_{cam:02d}: {row(K)}",
                  f"D_{cam:02d}: {row(np.zeros(5))}", f"R_{cam:02d}: {row(np.eye(3))}", f"T_{cam:02d}: {row(T)}",
                  f"S_rect_{cam:02d}: {row([camera.width, camera.height])}", f"R_rect_{cam:02d}: {row(np.eye(3))}",
                  f"P_rect_{cam:02d}: {row(P)}"]
    return "\n".join(lines) + "\n"


def timestamp_line(stamp_ns: int) -> str:
    """KITTI timestamps.txt line: ``YYYY-MM-DD HH:MM:SS.nnnnnnnnn`` (UTC)."""
    seconds, nanos = divmod(stamp_ns, 10**9)
    t = dt.datetime.fromtimestamp(seconds, dt.timezone.utc)
    return f"{t:%Y-%m-%d %H:%M:%S}.{nanos:09d}"


class KittiDriveWriter:
    """Writes one drive: call ``add`` per frame in order, then ``close`` for poses, timestamps and objects."""

    def __init__(self, root: Path, date: str, drive_name: str, camera: Camera):
        self.date_dir = root / date
        self.dir = self.date_dir / drive_name
        if self.dir.exists():
            raise FileExistsError(f"{self.dir} exists already; choose another --out, --seed, or pass --overwrite")
        self.date_dir.mkdir(parents=True, exist_ok=True)
        calib = self.date_dir / "calib_cam_to_cam.txt"
        text = calib_text(camera)
        if calib.exists() and calib.read_text() != text:
            raise FileExistsError(f"{calib} describes another camera; write different sizes to different --out")
        calib.write_text(text)
        self.poses: list[np.ndarray] = []
        self.stamps: list[int] = []
        self.object_frames: list[dict] = []

    def add(self, frame, stamp_ns: int) -> None:
        """Write one rendered Frame (render.Frame) with its header stamp (ns)."""
        name = f"{frame.index:010d}.png"
        write_png(self.dir / "image_02" / "data" / name, frame.rgb)
        write_png(self.dir / "proj_depth" / "groundtruth" / "image_02" / name, depth_to_png16(frame.depth))
        write_png(self.dir / "synthetic" / "label_ids" / "image_02" / name, frame.label_ids)
        write_png(self.dir / "synthetic" / "instance_ids" / "image_02" / name, frame.instance_ids)
        self.poses.append(frame.pose)
        self.stamps.append(stamp_ns)
        self.object_frames.append({
            "index": frame.index,
            "poses": {str(k): np.round(T[:3].ravel(), 6).tolist()
                      for k, T in frame.object_poses.items()}})

    def close(self, actors) -> None:
        """Poses, timestamps and objects.json (``actors``: the world's actors)."""
        write_poses(self.dir / "poses.txt", np.stack(self.poses))
        (self.dir / "image_02" / "timestamps.txt").write_text("".join(timestamp_line(s) + "\n" for s in self.stamps))
        objects = [{"id": a.instance_id, "class": a.kind, "label_id": int(a.mesh.label[0]), "moving": a.moving,
                    "size_m": {"width": a.size[0], "height": a.size[1], "length": a.size[2]}} for a in actors]
        doc = {"frame": "world = camera of the first frame (as poses.txt); pose = object-to-world 3x4 row-major; "
                        "object frame x right, y down, z forward, origin on the ground under its centre",
               "objects": objects, "frames": self.object_frames}
        (self.dir / "synthetic" / "objects.json").write_text(json.dumps(doc))
