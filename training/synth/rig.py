"""A camera rig on the synthetic ego car: named pinhole cameras and their mounts; the built-in set and rig files.

Frames (ROS REP 103 / 105):
- ``base_link``: on the road under the car, 1.0 m behind the front camera; x forward, y left, z up.
- ``<cam>_link``: the camera body, mounted at ``xyz`` (metres) with ``rpy`` = (roll, pitch, yaw) (radians) in
  base_link, rotation R = Rz(yaw)·Ry(pitch)·Rx(roll) (URDF order: positive pitch looks down, positive yaw turns left).
- ``<cam>_optical_frame``: x right, y down, z forward (the renderer's camera frame), <cam>_link rotated by
  R_LINK_OPTICAL.
The world's ego camera (``World.camera_pose``) is the front camera below: 1.65 m up, 1.0 m forward, level; every rig
camera's pose is the ego camera's pose times its ``mount`` (its optical frame in the ego camera's optical frame).

Built-in cameras (``--rig front,left,right,rear``; sizes at --width 1242 --height 375, scaled with them):
front = today's KITTI camera 1242×375; left / right = 960×600 wide-angle (100° horizontal) on the mirrors, yaw ±90°,
pitched 10° down; rear = 1024×320 (90° horizontal) at the back of the roof, yaw 180°.

Rig file (YAML; ``sgdepth-ros synth --rig rig.yaml``; at most MAX_CAMERAS cameras)::

    cameras:
      - name: front                # ^[A-Za-z][A-Za-z0-9_]*$, unique
        width: 1242                # pixels, [32, 4096]
        height: 375
        fx: 721.5377               # pixels; or hfov_deg: 81.4 (horizontal field of view; fx = fy from it)
        fy: 721.5377               # default fx
        cx: 609.5593               # default (width − 1)/2 (pixel centres at integers)
        cy: 172.854                # default (height − 1)/2
        xyz: [1.0, 0.0, 1.65]      # metres in base_link (z = height above the road)
        rpy_deg: [0, 0, 0]         # roll, pitch, yaw in degrees (or rpy: radians); default level, forward
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .camera import CAMERA_HEIGHT_M, Camera, KITTI_SIZE, kitti_camera

MAX_CAMERAS = 8
SIZE_RANGE = (32, 4096)
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
XY_RANGE_M = (-20.0, 20.0)
Z_RANGE_M = (0.2, 20.0)            # above the kerbs (0.15 m), below anything sensible
HFOV_RANGE_DEG = (1.0, 179.0)
CAMERA_FORWARD_M = 1.0             # the front camera ahead of base_link
# <cam>_link (x forward, y left, z up) → optical (x right, y down, z forward): columns are the optical axes
R_LINK_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def rpy_to_rotation(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """[3,3] Rz(yaw)·Ry(pitch)·Rx(roll) (radians; the URDF / tf2 fixed-axis convention)."""
    cr, sr, cp, sp, cy, sy = math.cos(roll), math.sin(roll), math.cos(pitch), math.sin(pitch), math.cos(yaw), \
        math.sin(yaw)
    return np.array([[cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
                     [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
                     [-sp, cp * sr, cp * cr]])


def _pose(R: np.ndarray, t) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = t
    return T


def _rigid_inverse(T: np.ndarray) -> np.ndarray:
    """Inverse of a 4×4 rigid transform, exact for axis-permutation rotations (Rᵀ, −Rᵀt)."""
    return _pose(T[:3, :3].T, -T[:3, :3].T @ T[:3, 3])


@dataclass(frozen=True)
class RigCamera:
    """One named camera: intrinsics ``camera`` and its mount ``xyz`` (m) / ``rpy`` (rad) of <name>_link in base_link."""

    name: str
    camera: Camera
    xyz: tuple[float, float, float]
    rpy: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def link(self) -> str:
        return f"{self.name}_link"

    @property
    def optical_frame(self) -> str:
        return f"{self.name}_optical_frame"

    def base_to_link(self) -> np.ndarray:
        """4×4 pose of <name>_link in base_link."""
        return _pose(rpy_to_rotation(*self.rpy), self.xyz)

    def base_to_optical(self) -> np.ndarray:
        """4×4 pose of <name>_optical_frame in base_link."""
        T = self.base_to_link()
        T[:3, :3] = T[:3, :3] @ R_LINK_OPTICAL
        return T

    def mount(self) -> np.ndarray | None:
        """4×4 pose of this optical frame in the ego (front) camera's optical frame; None where they coincide."""
        M = _rigid_inverse(ego_base_to_optical()) @ self.base_to_optical()
        return None if np.array_equal(M, np.eye(4)) else M

    def describe(self) -> dict:
        """JSON-ready description (intrinsics in pixels, mount in metres / radians and degrees)."""
        c = self.camera
        return {"name": self.name, "width": c.width, "height": c.height, "fx": c.fx, "fy": c.fy, "cx": c.cx,
                "cy": c.cy, "xyz": list(self.xyz), "rpy": list(self.rpy),
                "rpy_deg": [round(math.degrees(a), 9) for a in self.rpy], "frame_id": self.optical_frame,
                "base_to_optical": np.round(self.base_to_optical(), 9).tolist()}


def ego_base_to_optical() -> np.ndarray:
    """4×4 pose of the world's ego camera (the front camera: 1.0 m forward, 1.65 m up, level) in base_link."""
    return _pose(R_LINK_OPTICAL, (CAMERA_FORWARD_M, 0.0, CAMERA_HEIGHT_M))


# --- the built-in cameras --------------------------------------------------------------------------------------

def _wide(width: int, height: int, hfov_deg: float) -> Camera:
    f = width / 2 / math.tan(math.radians(hfov_deg) / 2)
    return Camera(width, height, f, f, (width - 1) / 2, (height - 1) / 2)


# name → (intrinsics at the KITTI size 1242×375, xyz in base_link, rpy in degrees)
BUILTIN = {
    "front": (kitti_camera(), (CAMERA_FORWARD_M, 0.0, CAMERA_HEIGHT_M), (0.0, 0.0, 0.0)),
    "left": (_wide(960, 600, 100.0), (0.1, 0.95, 1.55), (0.0, 10.0, 90.0)),
    "right": (_wide(960, 600, 100.0), (0.1, -0.95, 1.55), (0.0, 10.0, -90.0)),
    "rear": (_wide(1024, 320, 90.0), (-0.9, 0.0, 1.6), (0.0, 0.0, 180.0)),
}


def builtin_camera(name: str, width: int = KITTI_SIZE[0], height: int = KITTI_SIZE[1]) -> RigCamera:
    """Built-in camera ``name`` for a front image of ``width``×``height``: front is exactly ``kitti_camera(width,
    height)``; the others keep their field of view and scale by width/1242 and height/375."""
    native, xyz, rpy_deg = BUILTIN[name]
    if name == "front":
        camera = kitti_camera(width, height)
        rpy = (0.0, 0.0, 0.0)
    else:
        size = (round(native.width * width / KITTI_SIZE[0]), round(native.height * height / KITTI_SIZE[1]))
        if not all(SIZE_RANGE[0] <= s <= SIZE_RANGE[1] for s in size):
            raise ValueError(f"--rig: built-in camera {name} at --width {width} --height {height} would be "
                             f"{size[0]}x{size[1]}; each side must be in [{SIZE_RANGE[0]}, {SIZE_RANGE[1]}]")
        camera = native.resized(*size)
        rpy = tuple(math.radians(a) for a in rpy_deg)
    return RigCamera(name, camera, xyz, rpy)


def parse_rig(spec: str, width: int = KITTI_SIZE[0], height: int = KITTI_SIZE[1]) -> tuple[RigCamera, ...]:
    """``--rig`` value → cameras: a rig file (``*.yaml``/``*.yml`` or an existing file) or a comma list of built-in
    names (sized from the front ``width``×``height``). Raises ValueError naming the problem."""
    if spec.lower().endswith((".yaml", ".yml")) or Path(spec).is_file():
        return load_rig_file(Path(spec))
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        raise ValueError(f"--rig must be a comma list of built-in cameras ({', '.join(BUILTIN)}) or a rig .yaml "
                         f"file, got {spec!r}")
    for name in names:
        if name not in BUILTIN:
            raise ValueError(f"--rig: unknown built-in camera {name!r}; built-in: {', '.join(BUILTIN)} "
                             f"(or give a rig .yaml file)")
    _check_names(names, "--rig")
    return tuple(builtin_camera(n, width, height) for n in names)


def _check_names(names: list[str], where: str) -> None:
    if not 1 <= len(names) <= MAX_CAMERAS:
        raise ValueError(f"{where}: a rig has 1 to {MAX_CAMERAS} cameras, got {len(names)}")
    seen = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{where}: camera name {name!r} appears twice; names must be unique")
        seen.add(name)


# --- rig files -------------------------------------------------------------------------------------------------

_FIELDS = ("name", "width", "height", "fx", "fy", "cx", "cy", "hfov_deg", "xyz", "rpy", "rpy_deg")


def load_rig_file(path: Path) -> tuple[RigCamera, ...]:
    """Read and check a rig file (format: module docstring). Errors name the file and the field."""
    import yaml

    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ValueError(f"rig file {path}: cannot read it ({exc.strerror or exc})") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"rig file {path}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict) or "cameras" not in doc:
        raise ValueError(f"rig file {path}: expected a mapping with a 'cameras' list")
    unknown = sorted(str(k) for k in doc if k != "cameras")
    if unknown:
        raise ValueError(f"rig file {path}: unknown key(s) {', '.join(unknown)} (only 'cameras')")
    entries = doc["cameras"]
    if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_CAMERAS:
        raise ValueError(f"rig file {path}: cameras must be a list of 1 to {MAX_CAMERAS} cameras")
    cameras = tuple(_camera_entry(path, i, e) for i, e in enumerate(entries))
    _check_names([c.name for c in cameras], f"rig file {path}")
    return cameras


def _camera_entry(path: Path, index: int, entry) -> RigCamera:
    where = f"rig file {path}: cameras[{index}]"
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected a mapping of {', '.join(_FIELDS)}")
    name = entry.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValueError(f"{where}: name must match ^[A-Za-z][A-Za-z0-9_]*$, got {name!r}")
    where = f"{where} ({name})"
    unknown = sorted(str(k) for k in entry if k not in _FIELDS)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(unknown)}; fields: {', '.join(_FIELDS)}")

    def number(field: str, lo: float, hi: float, default=None, integer: bool = False) -> float:
        value = entry.get(field, default)
        ok = (isinstance(value, int) if integer else isinstance(value, (int, float))) and not isinstance(value, bool)
        if not ok or not _finite(value) or not lo <= value <= hi:
            kind = "an integer" if integer else "a number"
            raise ValueError(f"{where}: {field} must be {kind} in [{lo:g}, {hi:g}], got {value!r}")
        return value

    def triple(field: str, lo: float, hi: float) -> tuple[float, float, float]:
        value = entry[field]
        if (not isinstance(value, list) or len(value) != 3
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and _finite(v)
                           and lo <= v <= hi for v in value)):
            raise ValueError(f"{where}: {field} must be a list of 3 numbers in [{lo:g}, {hi:g}], got {value!r}")
        return tuple(float(v) for v in value)

    for field in ("width", "height", "xyz"):
        if field not in entry:
            raise ValueError(f"{where}: {field} is missing")
    width = number("width", *SIZE_RANGE, integer=True)
    height = number("height", *SIZE_RANGE, integer=True)
    if ("fx" in entry) == ("hfov_deg" in entry):
        raise ValueError(f"{where}: give either fx (pixels) or hfov_deg (horizontal field of view), not "
                         f"{'both' if 'fx' in entry else 'neither'}")
    if "hfov_deg" in entry:
        if "fy" in entry:
            raise ValueError(f"{where}: fy goes with fx, not with hfov_deg")
        fx = fy = width / 2 / math.tan(math.radians(number("hfov_deg", *HFOV_RANGE_DEG)) / 2)
    else:
        fx = number("fx", 1e-3, 1e6)
        fy = number("fy", 1e-3, 1e6, default=fx)
    cx = number("cx", 0, width - 1, default=(width - 1) / 2)
    cy = number("cy", 0, height - 1, default=(height - 1) / 2)
    xyz = triple("xyz", *XY_RANGE_M)
    if not Z_RANGE_M[0] <= xyz[2] <= Z_RANGE_M[1]:
        raise ValueError(f"{where}: xyz[2] (height above the road, m) must be in [{Z_RANGE_M[0]:g}, "
                         f"{Z_RANGE_M[1]:g}], got {xyz[2]!r}")
    if "rpy" in entry and "rpy_deg" in entry:
        raise ValueError(f"{where}: give either rpy (radians) or rpy_deg (degrees), not both")
    if "rpy" in entry:
        rpy = triple("rpy", -2 * math.pi, 2 * math.pi)
    elif "rpy_deg" in entry:
        rpy = tuple(math.radians(a) for a in triple("rpy_deg", -360.0, 360.0))
    else:
        rpy = (0.0, 0.0, 0.0)
    return RigCamera(name, Camera(int(width), int(height), float(fx), float(fy), float(cx), float(cy)), xyz, rpy)


def _finite(value) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond float range
        return False


def rig_yaml(cameras) -> str:
    """A rig file describing ``cameras`` exactly (floats round-trip; angles in radians)."""
    import yaml

    doc = {"cameras": [{"name": c.name, "width": c.camera.width, "height": c.camera.height, "fx": c.camera.fx,
                        "fy": c.camera.fy, "cx": c.camera.cx, "cy": c.camera.cy, "xyz": [float(v) for v in c.xyz],
                        "rpy": [float(v) for v in c.rpy]} for c in cameras]}
    return ("# camera rig of a `sgdepth-ros synth --rig` output: intrinsics in pixels, mounts in base_link "
            "(metres, radians)\n" + yaml.safe_dump(doc, sort_keys=False, default_flow_style=None))
