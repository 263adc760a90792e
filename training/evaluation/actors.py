"""Depth errors per actor of the synthetic world, grouped by what the actor does — issue 17's "where".

The moving/static split of ``eval-depth --regions`` pools a lead car with oncoming cars and walking people, and parked
cars with the road. Here every actor of the test frames (``synthetic/instance_ids``, ``synthetic/objects.json``) gets
its own errors, and its motion relative to the camera (``poses.txt``, ``image_02/timestamps.txt``), and the actors
are pooled into groups ``"<class>, <motion>"``:

- ``still``: the actor's ``moving`` flag is off (parked cars, standing people) — these must not become holes;
- ``with the camera``: moving, and its speed relative to the camera is below :data:`WITH_CAMERA_SPEED` (a lead car at
  the ego's speed: it does not move in the image, the case self-supervision learns as infinitely far);
- ``moving``: every other moving actor (oncoming, crossing, walking).

Errors use the evaluation's own per-image scale: AbsRel of the scaled, clamped prediction, pooled over the group's
valid pixels, and holes (scaled, unclamped prediction more than ``hole_factor`` × the ground truth, as
``metrics.depth.hole_mask``). Each group's pixels are also split by where they are (:data:`ZONES`, exclusive, in
this order): ``near`` (ground truth nearer than :data:`NEAR_DEPTH`), ``side`` (in the image's outer fifths, left or
right: where a passed object leaves the image and its image motion is largest), ``elsewhere``.
"""
from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sgdepth_ros.metrics.depth import HOLE_FACTOR, hole_mask

from ..data.errors import DatasetError
from ..data.kitti import read_poses
from .depth_gt import read_instance_ids, read_objects

__all__ = ["WITH_CAMERA_SPEED", "MOTIONS", "NEAR_DEPTH", "ZONES", "ActorErrors", "read_timestamps",
           "format_actor_table", "zone_masks"]

WITH_CAMERA_SPEED = 3.0  # m/s: a moving actor slower than this relative to the camera moves "with the camera"
MOTIONS = ("still", "with the camera", "moving")
NEAR_DEPTH = 5.0  # m: pixels nearer than this are the "near" zone
ZONES = ("near", "side", "elsewhere")


def zone_masks(gt: np.ndarray) -> dict[str, np.ndarray]:
    """HxW ground truth (m) → zone name → HxW bool, exclusive and covering the image: ``near`` (gt <
    :data:`NEAR_DEPTH`, positive), ``side`` (columns in the outer fifths, not near), ``elsewhere``."""
    width = gt.shape[1]
    column = np.arange(width)[None, :]
    near = (gt > 0) & (gt < NEAR_DEPTH)
    side = np.broadcast_to((5 * column < width) | (5 * column >= 4 * width), gt.shape) & ~near
    return {"near": near, "side": side, "elsewhere": ~near & ~side}


def read_timestamps(path: str | os.PathLike[str]) -> np.ndarray:
    """KITTI ``timestamps.txt`` (``YYYY-MM-DD HH:MM:SS.fraction`` per line, UTC) → [N] float64 seconds since the
    epoch. Raises DatasetError naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: timestamps file does not exist")
    out = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        whole, _, fraction = line.strip().partition(".")
        try:
            t = dt.datetime.strptime(whole, "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.timezone.utc)
            out.append(t.timestamp() + (float("0." + fraction) if fraction else 0.0))
        except ValueError:
            raise DatasetError(f"{path}:{lineno}: not a KITTI timestamp: {line.strip()!r}") from None
    return np.array(out, dtype=np.float64)


@dataclass
class _Drive:
    """One drive's actors: class and moving flag per id, per-frame actor poses, camera poses and times."""
    classes: dict[int, str]
    moving: dict[int, bool]
    actor_poses: list[dict[str, list[float]]]  # per frame: id → object-to-world 3x4 row-major
    camera: np.ndarray                          # [N,4,4] camera-to-world
    times: np.ndarray                           # [N] seconds

    @classmethod
    def load(cls, folder: Path) -> "_Drive":
        doc = read_objects(folder)
        try:  # what read_objects leaves to its users: the fields this one needs
            classes = {o["id"]: str(o["class"]) for o in doc["objects"]}
            moving = {o["id"]: bool(o.get("moving")) for o in doc["objects"]}
            frames = [f["poses"] for f in doc["frames"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise DatasetError(f"{folder / 'synthetic' / 'objects.json'}: malformed objects.json "
                               f"({type(exc).__name__}: {exc})") from None
        camera = read_poses(folder / "poses.txt")
        times = read_timestamps(folder / "image_02" / "timestamps.txt")
        if not len(frames) == len(camera) == len(times):
            raise DatasetError(f"{folder}: objects.json has {len(frames)} frames, poses.txt {len(camera)}, "
                               f"image_02/timestamps.txt {len(times)}")
        return cls(classes, moving, frames, camera, times)

    def _in_camera(self, frame: int, actor: int) -> np.ndarray | None:
        pose = self.actor_poses[frame].get(str(actor))
        if pose is None:
            return None
        c = self.camera[frame]
        return c[:3, :3].T @ (np.reshape(pose, (3, 4))[:, 3] - c[:3, 3])

    def relative_speed(self, frame: int, actor: int) -> float:
        """m/s of the actor's ground point in the camera frame, central difference over frames frame ± 1 (one-sided at
        the ends); NaN when the actor is absent from one of them."""
        a, b = max(frame - 1, 0), min(frame + 1, len(self.times) - 1)
        pa, pb = self._in_camera(a, actor), self._in_camera(b, actor)
        if pa is None or pb is None or b == a:
            return float("nan")
        return float(np.linalg.norm(pb - pa) / (self.times[b] - self.times[a]))


@dataclass
class _Sums:
    """Pixels, their AbsRel sum and holes, accumulated over images."""
    pixels: int = 0
    abs_rel_sum: float = 0.0
    holes: int = 0


@dataclass
class _Actor:
    cls: str
    moving: bool
    speeds: list[float] = field(default_factory=list)     # relative speed per frame it was seen in (m/s)
    distances: list[float] = field(default_factory=list)  # median ground-truth depth per frame (m)
    zones: dict[str, _Sums] = field(default_factory=lambda: {z: _Sums() for z in ZONES})  # exclusive: they add up

    @property
    def pixels(self) -> int:
        return sum(z.pixels for z in self.zones.values())

    @property
    def abs_rel_sum(self) -> float:
        return sum(z.abs_rel_sum for z in self.zones.values())

    @property
    def holes(self) -> int:
        return sum(z.holes for z in self.zones.values())

    @property
    def speed(self) -> float | None:
        """Median relative speed (m/s) over the frames where it is known; None when it never is."""
        known = [s for s in self.speeds if np.isfinite(s)]
        return float(np.median(known)) if known else None

    @property
    def motion(self) -> str:
        if not self.moving:
            return "still"
        speed = self.speed
        return "with the camera" if speed is not None and speed < WITH_CAMERA_SPEED else "moving"


class ActorErrors:
    """Accumulates per-actor errors over evaluated images (:meth:`add`, called by ``evaluate_depth_regions``) of the
    synthetic world under ``root`` (a KITTI-format export); :meth:`actors` and :meth:`groups` report them."""

    def __init__(self, root: str | os.PathLike[str], hole_factor: float = HOLE_FACTOR) -> None:
        self.root = Path(root)
        self.hole_factor = hole_factor
        self._drives: dict[str, _Drive] = {}
        self._actors: dict[tuple[str, int], _Actor] = {}

    def add(self, name: str, valid: np.ndarray, scaled: np.ndarray, clamped: np.ndarray, gt: np.ndarray) -> None:
        """One image. name: ``"folder frame side"`` (KittiEvalDataset); valid HxW bool (the protocol's pixels);
        scaled/clamped HxW metres (the prediction times the image's scale, and clamped to the evaluation range);
        gt HxW metres."""
        folder, frame_text, side = name.split()
        frame = int(frame_text)
        drive = self._drives.get(folder)
        if drive is None:
            drive = self._drives[folder] = _Drive.load(self.root / folder)
        ids = read_instance_ids(self.root, folder, frame, side, gt.shape)
        seen = valid & (ids > 0)
        zones = zone_masks(gt)
        for actor in np.unique(ids[seen]).tolist():
            sel = seen & (ids == actor)
            entry = self._actors.get((folder, actor))
            if entry is None:
                entry = self._actors[(folder, actor)] = _Actor(drive.classes.get(actor, "unknown"),
                                                               drive.moving.get(actor, False))
            g = gt[sel].astype(np.float64)
            abs_rel = np.abs(clamped[sel] - g) / g
            holes = hole_mask(g, scaled[sel], self.hole_factor)
            for zone, mask in zones.items():
                inside = mask[sel]
                sums = entry.zones[zone]
                sums.pixels += int(inside.sum())
                sums.abs_rel_sum += float(abs_rel[inside].sum())
                sums.holes += int(holes[inside].sum())
            entry.speeds.append(drive.relative_speed(frame, actor))
            entry.distances.append(float(np.median(g)))

    def actors(self) -> list[dict]:
        """Per actor (drive, id), most pixels first: class, moving flag, motion group, pixels, frames, AbsRel (pooled
        over its pixels), holes (fraction), relative speed (m/s, median over its frames), distance (m, median)."""
        rows = []
        for (folder, actor), a in sorted(self._actors.items(), key=lambda kv: -kv[1].pixels):
            rows.append({"drive": folder, "id": actor, "class": a.cls, "moving": a.moving, "motion": a.motion,
                         "pixels": a.pixels, "frames": len(a.distances), "abs_rel": a.abs_rel_sum / a.pixels,
                         "holes": a.holes / a.pixels, "relative_speed": a.speed,
                         "distance": float(np.median(a.distances))})
        return rows

    def groups(self) -> dict[str, dict]:
        """``"<class>, <motion>"`` → pixels, actors, AbsRel and holes pooled over the group's pixels, median distance
        (m) of its actors, and ``zones``: zone (:data:`ZONES`) → share of the group's pixels, AbsRel and holes pooled
        over the zone's pixels (None without pixels); classes in alphabetical order, motions in :data:`MOTIONS`
        order."""
        members: dict[tuple[str, str], list[_Actor]] = {}
        for a in self._actors.values():
            members.setdefault((a.cls, a.motion), []).append(a)
        out = {}
        for cls, motion in sorted(members, key=lambda k: (k[0], MOTIONS.index(k[1]))):
            group = members[(cls, motion)]
            pixels = sum(a.pixels for a in group)
            zones = {}
            for zone in ZONES:
                n, abs_rel, holes = (sum(getattr(a.zones[zone], what) for a in group)
                                     for what in ("pixels", "abs_rel_sum", "holes"))
                zones[zone] = {"share": n / pixels, "abs_rel": abs_rel / n if n else None,
                               "holes": holes / n if n else None}
            out[f"{cls}, {motion}"] = {"pixels": pixels, "actors": len(group),
                                       "abs_rel": sum(a.abs_rel_sum for a in group) / pixels,
                                       "holes": sum(a.holes for a in group) / pixels,
                                       "distance": float(np.median([np.median(a.distances) for a in group])),
                                       "zones": zones}
        return out


def format_actor_table(groups: dict[str, dict]) -> str:
    """The groups as a text table (eval-depth's output): per zone the share of the group's pixels and their
    AbsRel."""
    zone_titles = {"near": f"< {NEAR_DEPTH:g} m", "side": "outer fifths", "elsewhere": "elsewhere"}
    lines = [f" {'actors':<24} {'count':>5} {'pixels':>9} {'AbsRel':>7} {'holes':>7} {'distance':>9}"
             + "".join(f" {zone_titles[z] + ': share, AbsRel':>26}" for z in ZONES)]
    for name, g in groups.items():
        zones = "".join(f" {100 * g['zones'][z]['share']:>17.1f}% " + (f"{g['zones'][z]['abs_rel']:>7.3f}"
                        if g["zones"][z]["abs_rel"] is not None else f"{'-':>7}") for z in ZONES)
        lines.append(f" {name:<24} {g['actors']:>5} {g['pixels']:>9} {g['abs_rel']:>7.3f} {100 * g['holes']:>6.1f}% "
                     f"{g['distance']:>7.1f} m" + zones)
    return "\n".join(lines)
