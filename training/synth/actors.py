"""Things that move (or could): cars and pedestrians, their meshes and their motion over time.

Poses are 4×4 object-to-world transforms; the object frame has x right, y down, z forward (the direction it faces),
origin on the ground under its centre. Time ``t`` is in seconds from the drive's first frame.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .materials import Material as M
from .meshes import Mesh, axle_cylinder, box, concatenate, sphere
from .road import Road

CAR_LABEL, PERSON_LABEL = 26, 24  # Cityscapes labelIds


def yaw_pose(x: float, z: float, yaw: float, y: float = 0.0) -> np.ndarray:
    """4×4 pose at (x, y, z) rotated by ``yaw`` about the y axis (heading convention of road.py)."""
    c, s = np.cos(yaw), np.sin(yaw)
    T = np.eye(4)
    T[:3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    T[:3, 3] = (x, y, z)
    return T


@dataclass(frozen=True)
class RoadMotion:
    """Follows the road at lateral offset ``d``: arc length s(t) = s0 + speed·t (negative speed: facing back)."""

    road: Road
    s0: float
    speed: float
    d: float
    y: float = 0.0  # height of the surface it moves on (−0.15 on a sidewalk)

    def pose(self, t: float) -> np.ndarray:
        x, z, psi = self.road.pose(self.s0 + self.speed * t, self.d)
        return yaw_pose(float(x), float(z), float(psi) + (np.pi if self.speed < 0 else 0.0), self.y)


@dataclass(frozen=True)
class LineMotion:
    """Straight line: position origin + direction·speed·(t − t_cross), facing ``direction`` (unit, in xz)."""

    origin: tuple[float, float]
    direction: tuple[float, float]
    speed: float
    t_cross: float

    def pose(self, t: float) -> np.ndarray:
        k = self.speed * (t - self.t_cross)
        yaw = np.arctan2(self.direction[0], self.direction[1])
        return yaw_pose(self.origin[0] + self.direction[0] * k, self.origin[1] + self.direction[1] * k, yaw)


@dataclass(frozen=True)
class Still:
    """Never moves."""

    T: np.ndarray

    def pose(self, t: float) -> np.ndarray:
        return self.T


@dataclass
class Actor:
    """A car or person: local mesh, per-object tint (RGB multiplier), motion, instance id (≥ 1)."""

    instance_id: int
    kind: str            # "car" | "person"
    mesh: Mesh
    tint: np.ndarray     # [3] float32
    motion: object       # RoadMotion | LineMotion | Still
    size: tuple[float, float, float]  # width, height, length (m)

    @property
    def moving(self) -> bool:
        return not isinstance(self.motion, Still) and getattr(self.motion, "speed", 0.0) != 0.0

    def pose(self, t: float) -> np.ndarray:
        return self.motion.pose(t)


def car_mesh(rng: np.random.Generator) -> tuple[Mesh, tuple[float, float, float]]:
    """A hatchback/saloon of boxes and wheels (≈ 350 triangles); returns mesh and (width, height, length)."""
    length, width = rng.uniform(3.8, 4.8), rng.uniform(1.7, 1.9)
    body_h, cabin_h = rng.uniform(0.55, 0.7), rng.uniform(0.45, 0.6)
    clearance, wheel_r = 0.3, 0.32
    cabin_len = length * rng.uniform(0.45, 0.6)
    parts = [
        box((width, body_h, length), (0, -clearance - body_h / 2, 0), M.CAR_PAINT, CAR_LABEL),
        box((width * 0.9, cabin_h, cabin_len), (0, -clearance - body_h - cabin_h / 2, -length * 0.05),
            M.CAR_GLASS, CAR_LABEL),
    ]
    for sx in (-1, 1):
        for sz in (-1, 1):
            parts.append(axle_cylinder(wheel_r, 0.22, (sx * (width / 2 - 0.1), -wheel_r, sz * length * 0.32),
                                       M.RUBBER, CAR_LABEL))
    return concatenate(parts), (width, clearance + body_h + cabin_h, length)


def person_mesh(rng: np.random.Generator) -> tuple[Mesh, tuple[float, float, float]]:
    """A standing person of boxes and a sphere head (≈ 120 triangles); returns mesh and (width, height, depth)."""
    h = rng.uniform(1.55, 1.9)
    leg_h, torso_h, head_r = 0.47 * h, 0.36 * h, 0.085 * h
    parts = [
        box((0.15, leg_h, 0.18), (-0.1, -leg_h / 2, 0), M.CLOTH, PERSON_LABEL),
        box((0.15, leg_h, 0.18), (0.1, -leg_h / 2, 0), M.CLOTH, PERSON_LABEL),
        box((0.42, torso_h, 0.24), (0, -leg_h - torso_h / 2, 0), M.CLOTH, PERSON_LABEL),
        sphere(head_r, (0, -leg_h - torso_h - head_r, 0), M.SKIN, PERSON_LABEL),
    ]
    return concatenate(parts), (0.45, leg_h + torso_h + 2 * head_r, 0.25)


def random_tint(rng: np.random.Generator, kind: str) -> np.ndarray:
    """Per-object colour multiplier: saturated paints for cars, muted clothes for people."""
    if kind == "car":
        palette = [(0.9, 0.9, 0.9), (0.15, 0.15, 0.17), (0.75, 0.1, 0.1), (0.1, 0.25, 0.65), (0.55, 0.57, 0.6),
                   (0.85, 0.75, 0.2), (0.2, 0.45, 0.25)]
        return np.asarray(palette[rng.integers(len(palette))], np.float32) * rng.uniform(0.9, 1.1)
    return rng.uniform(0.2, 1.0, 3).astype(np.float32)
