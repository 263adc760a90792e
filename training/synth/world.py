"""A seeded town along one road: static scenery and actors, ready for the renderer.

Layout across the road (|d| in metres from the centreline): lanes 0–3.5 (ego drives at d = +1.75), parking strip
3.5–5.5, kerb at 5.5 (0.15 m high), sidewalk 5.5–8.5, then terrain out to 70 m with buildings, walls, fences, trees,
poles, signs and traffic lights; cross streets break the rows at intersections. Labels are Cityscapes labelIds.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import actors as A
from .camera import CAMERA_HEIGHT_M
from .layout import WORLDS
from .materials import Material as M
from .meshes import Mesh, box, concatenate, quad_strip, sphere, upright_cylinder
from .road import STEP_M, Road, make_road

ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, LIGHT, SIGN, VEGETATION, TERRAIN = 7, 8, 11, 12, 13, 17, 19, 20, 21, 22
LANE_D, PARKING_D, KERB_D, SIDEWALK_OUT_D, TERRAIN_OUT_D = 1.75, 4.5, 5.5, 8.5, 70.0
KERB_H = 0.15
FPS = 10.0
LOOK_AHEAD_M, LOOK_BEHIND_M = 150.0, 30.0
BEHIND_EXTRA_M = 120.0  # scenery_behind: rig cameras looking back see as far as the front camera sees ahead


@dataclass
class StaticPart:
    """A static mesh in world coordinates with its per-object tint [3] (RGB multiplier)."""

    mesh: Mesh
    tint: np.ndarray


@dataclass
class World:
    """Everything needed to render a drive: road, ego motion, static parts, actors, sun direction."""

    seed: int
    road: Road
    ego_speed: float                 # m/s
    frames: int
    static: list[StaticPart]
    actors: list[A.Actor]
    sun: np.ndarray                  # [3] unit vector towards the sun (world frame, y down)
    intersections: list[float] = field(default_factory=list)  # arc lengths of cross streets
    drive: int = 0

    def camera_pose(self, t: float) -> np.ndarray:
        """4×4 camera-to-world pose of the ego camera at time t (s): on the right lane, 1.65 m above the road."""
        x, z, psi = self.road.pose(self.ego_speed * t, LANE_D)
        return A.yaw_pose(float(x), float(z), float(psi), y=-CAMERA_HEIGHT_M)


def _ribbon(road: Road, s0: float, s1: float, d0: float, d1: float, y: float, material: int, label: int,
            step_m: float = 4.0) -> Mesh:
    """Ground ribbon between lateral offsets d0 < d1 over [s0, s1] at height y, uv = (d, s).

    Cut into strips of at most ``step_m`` across and 2 m along, so no triangle is a long sliver (slivers make
    Embree's bounding-volume hierarchy slow).
    """
    s = np.linspace(s0, s1, max(2, int(np.ceil((s1 - s0) / 2.0)) + 1))
    edges = np.linspace(d0, d1, max(2, int(np.ceil((d1 - d0) / step_m)) + 1))
    strips = []
    for a, b in zip(edges[:-1], edges[1:]):
        pts = []
        for d in (a, b):
            x, z, _ = road.pose(s, d)
            pts.append(np.stack([x, np.full_like(x, y), z], 1))
        strips.append(quad_strip(pts[0], pts[1], np.stack([np.full_like(s, a), s], 1),
                                 np.stack([np.full_like(s, b), s], 1), material, label))
    return concatenate(strips)


def _kerb(road: Road, s0: float, s1: float, d: float) -> Mesh:
    """The kerb's vertical face at lateral offset d, from the road (y = 0) up to KERB_H; uv = (s, y)."""
    s = np.linspace(s0, s1, max(2, int(np.ceil((s1 - s0) / 2.0)) + 1))
    x, z, _ = road.pose(s, d)
    low, high = np.stack([x, np.zeros_like(x), z], 1), np.stack([x, np.full_like(x, -KERB_H), z], 1)
    return quad_strip(low, high, np.stack([s, np.zeros_like(s)], 1), np.stack([s, np.full_like(s, -KERB_H)], 1),
                      M.CONCRETE, SIDEWALK)


def _free_ranges(s0: float, s1: float, holes: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """[s0, s1] minus the ``holes`` intervals, as a list of intervals."""
    out, start = [], s0
    for a, b in sorted(holes):
        if a > start:
            out.append((start, min(a, s1)))
        start = max(start, b)
    if start < s1:
        out.append((start, s1))
    return [(a, b) for a, b in out if b - a > 0.5]


def _placed(road: Road, mesh: Mesh, s: float, d: float, y: float = 0.0, turn: float = 0.0) -> Mesh:
    """``mesh`` (object frame) placed at road point (s, d), facing along the road (+ ``turn`` radians)."""
    x, z, psi = road.pose(s, d)
    return mesh.transformed(A.yaw_pose(float(x), float(z), float(psi) + turn, y))


def _tint(rng: np.random.Generator, spread: float = 0.15) -> np.ndarray:
    return rng.uniform(1 - spread, 1 + spread, 3).astype(np.float32)


def _roadside(rng: np.random.Generator, road: Road, side: int, s0: float, s1: float, out: list[StaticPart]) -> None:
    """Lots along one side (side = ±1) over [s0, s1]: buildings, walls, fences, trees, with street furniture."""
    s = s0
    while s < s1:
        length = rng.uniform(8, 24)
        length = min(length, s1 - s)
        if length < 3:
            break
        centre = s + length / 2
        setback = SIDEWALK_OUT_D + rng.uniform(0.3, 4.0)
        kind = rng.choice(["building", "wall", "fence", "trees"], p=[0.6, 0.13, 0.12, 0.15])
        if kind == "building":
            depth, height = rng.uniform(8, 14), rng.uniform(5, 18)
            mat = M.FACADE if rng.random() < 0.6 else M.FACADE_BRICK
            mesh = box((depth, height, length - 0.5), (side * (setback + depth / 2), -height / 2, 0), mat, BUILDING)
            out.append(StaticPart(_placed(road, mesh, centre, 0.0), _tint(rng, 0.2)))
        elif kind in ("wall", "fence"):
            height = rng.uniform(1.0, 2.2)
            mat, label = (M.WALL, WALL) if kind == "wall" else (M.FENCE, FENCE)
            mesh = box((0.25, height, length), (side * (SIDEWALK_OUT_D + 0.3), -KERB_H - height / 2, 0), mat, label)
            out.append(StaticPart(_placed(road, mesh, centre, 0.0), _tint(rng)))
        if kind != "building":  # trees behind walls and fences, or a small park
            for _ in range(int(rng.integers(1, 4))):
                _tree(rng, road, s + rng.uniform(0, length), side * rng.uniform(SIDEWALK_OUT_D + 1.5, 16.0), out)
        s += length
    # street furniture on the sidewalk
    s = s0 + rng.uniform(2, 15)
    while s < s1:
        d = side * 8.0
        if rng.random() < 0.75:  # lamp post
            out.append(StaticPart(_placed(road, upright_cylinder(0.1, 7.0, (0, -KERB_H, 0), M.METAL, POLE), s, d),
                                  _tint(rng, 0.05)))
        else:  # sign on a pole, facing the traffic of that side
            parts = [upright_cylinder(0.05, 2.8, (0, -KERB_H, 0), M.METAL, POLE),
                     box((0.7, 0.7, 0.05), (0, -KERB_H - 2.35, -0.08), M.SIGN, SIGN)]
            colour = [(0.85, 0.15, 0.12), (0.15, 0.3, 0.8), (0.95, 0.8, 0.1)][rng.integers(3)]
            out.append(StaticPart(_placed(road, concatenate(parts), s, d, turn=0.0 if side > 0 else np.pi),
                                  np.asarray(colour, np.float32) / 0.85))
        s += rng.uniform(15, 30)


def _tree(rng: np.random.Generator, road: Road, s: float, d: float, out: list[StaticPart]) -> None:
    trunk_h, crown_r = rng.uniform(1.8, 3.2), rng.uniform(1.3, 2.8)
    parts = [upright_cylinder(rng.uniform(0.12, 0.25), trunk_h + 0.5 * crown_r, (0, -KERB_H, 0), M.BARK, VEGETATION),
             sphere(crown_r, (0, -KERB_H - trunk_h - crown_r * 0.8, 0), M.FOLIAGE, VEGETATION)]
    out.append(StaticPart(_placed(road, concatenate(parts), s, d), _tint(rng, 0.2)))


def _traffic_light(road: Road, s: float, side: int) -> StaticPart:
    parts = [upright_cylinder(0.08, 4.6, (0, -KERB_H, 0), M.METAL, POLE),
             box((0.32, 0.95, 0.3), (0, -KERB_H - 4.3, -0.2), M.HOUSING, LIGHT)]
    return StaticPart(_placed(road, concatenate(parts), s, side * 6.2, turn=0.0 if side > 0 else np.pi),
                      np.ones(3, np.float32))


def make_world(seed: int, frames: int, drive: int = 0, world: str = "default") -> World:
    """The town of ``seed`` around drive number ``drive``: a different road and scenery per (seed, drive).

    ``world`` (one of layout.WORLDS) chooses the traffic (:func:`_make_actors`, :func:`_make_dynamic_actors`,
    :func:`_make_queue_actors`); road and scenery of a (seed, drive) are the same in every world, and the default
    world is exactly what it always was.
    """
    if world not in WORLDS:
        raise ValueError(f"world must be one of {', '.join(WORLDS)}, got {world!r}")
    rng = np.random.default_rng([seed, drive])
    ego_speed = float(rng.uniform(8, 12))
    travel = ego_speed * (frames - 1) / FPS
    s_lo, s_hi = -LOOK_BEHIND_M, travel + LOOK_AHEAD_M
    road = make_road(rng, s_lo - 20, s_hi + 20)
    intersections = []
    s = rng.uniform(25, 70)
    while s < s_hi - 20:
        intersections.append(float(s))
        s += rng.uniform(80, 160)
    holes = [(x - 6, x + 6) for x in intersections]

    static: list[StaticPart] = [StaticPart(_ribbon(road, s_lo, s_hi, -KERB_D, KERB_D, 0.0, M.ASPHALT, ROAD),
                                           np.ones(3, np.float32))]
    for a, b in _free_ranges(s_lo, s_hi, holes):
        for side in (-1, 1):
            lo, hi = sorted((side * KERB_D, side * SIDEWALK_OUT_D))
            static.append(StaticPart(_ribbon(road, a, b, lo, hi, -KERB_H, M.SIDEWALK, SIDEWALK), _tint(rng, 0.05)))
            static.append(StaticPart(_kerb(road, a, b, side * KERB_D), np.ones(3, np.float32)))
            lo, hi = sorted((side * SIDEWALK_OUT_D, side * TERRAIN_OUT_D))
            static.append(StaticPart(_ribbon(road, a, b, lo, hi, -KERB_H, M.GRASS, TERRAIN), _tint(rng, 0.1)))
            _roadside(rng, road, side, a, b, static)
    for x in intersections:  # cross street: a plain road across, 12 m wide, out to the terrain's edge
        for side in (-1, 1):
            street = box((TERRAIN_OUT_D - KERB_D, 0.02, 12.0), (side * (KERB_D + TERRAIN_OUT_D) / 2, 0.01, 0),
                         M.ASPHALT_PLAIN, ROAD)
            static.append(StaticPart(_placed(road, street, x, 0.0), np.ones(3, np.float32)))
            static.append(_traffic_light(road, x - 7.0 if side > 0 else x + 7.0, side))

    make_actors = {"default": _make_actors, "dynamic": _make_dynamic_actors, "queue": _make_queue_actors}[world]
    actors = make_actors(rng, road, ego_speed, frames, s_lo, s_hi, intersections)
    azimuth, elevation = rng.uniform(-np.pi, np.pi), rng.uniform(np.radians(30), np.radians(60))
    sun = np.array([np.cos(elevation) * np.sin(azimuth), -np.sin(elevation), np.cos(elevation) * np.cos(azimuth)])
    return World(seed, road, ego_speed, frames, static, actors, sun, intersections, drive)


def scenery_behind(world: World, length_m: float = BEHIND_EXTRA_M) -> list[StaticPart]:
    """Static scenery for the ``length_m`` metres of road behind the world's start (s < −LOOK_BEHIND_M).

    Rear-facing rig cameras look back past the start of ``make_world``'s scenery. This continues it (straight, along
    the road's first heading) with ground ribbons, kerbs and roadside lots from their own random stream, so the world
    of ``make_world`` itself, and every image of a camera that does not see this part, stays exactly as without it.
    Ribbons overlap the world's by 1 m so no crack opens at the seam. No actors live here.
    """
    rng = np.random.default_rng([world.seed, world.drive, 3, 3])
    s1 = -LOOK_BEHIND_M
    s0 = s1 - length_m
    road = _extended_back(world.road, s0 - 20)
    parts = [StaticPart(_ribbon(road, s0, s1 + 1, -KERB_D, KERB_D, 0.0, M.ASPHALT, ROAD), np.ones(3, np.float32))]
    for side in (-1, 1):
        lo, hi = sorted((side * KERB_D, side * SIDEWALK_OUT_D))
        parts.append(StaticPart(_ribbon(road, s0, s1 + 1, lo, hi, -KERB_H, M.SIDEWALK, SIDEWALK), _tint(rng, 0.05)))
        parts.append(StaticPart(_kerb(road, s0, s1 + 1, side * KERB_D), np.ones(3, np.float32)))
        lo, hi = sorted((side * SIDEWALK_OUT_D, side * TERRAIN_OUT_D))
        parts.append(StaticPart(_ribbon(road, s0, s1 + 1, lo, hi, -KERB_H, M.GRASS, TERRAIN), _tint(rng, 0.1)))
        _roadside(rng, road, side, s0, s1, parts)
    return parts


def _extended_back(road: Road, s_start: float) -> Road:
    """``road`` continued straight back to ``s_start`` (along its first heading); unchanged where it was defined."""
    n = max(0, int(np.ceil((road.s_start - s_start) / STEP_M)))
    back = np.arange(n, 0, -1) * STEP_M
    psi = road.heading[0]
    return Road(road.s_start - n * STEP_M, np.concatenate([road.x[0] - np.sin(psi) * back, road.x]),
                np.concatenate([road.z[0] - np.cos(psi) * back, road.z]),
                np.concatenate([np.full(n, psi), road.heading]))


class _Cast:
    """The actors of a world as they are made: ``add`` draws a car or person mesh and tint from ``rng`` and numbers
    the actor (ids from 1 in the order of creation)."""

    def __init__(self, rng: np.random.Generator, road: Road, intersections: list[float]):
        self.rng, self.road, self.intersections = rng, road, intersections
        self.actors: list[A.Actor] = []

    def add(self, kind: str, motion) -> None:
        mesh, size = A.car_mesh(self.rng) if kind == "car" else A.person_mesh(self.rng)
        self.actors.append(A.Actor(len(self.actors) + 1, kind, mesh, A.random_tint(self.rng, kind), motion, size))

    def away_from_crossings(self, s: float, margin: float = 9.0) -> bool:
        return all(abs(s - x) > margin for x in self.intersections)

    def parked_cars(self, s_lo: float, s_hi: float, probability: float) -> None:
        """Parked cars in both parking strips: a slot every 5.5–9 m, taken with ``probability``."""
        rng, road = self.rng, self.road
        for side in (-1, 1):
            s = s_lo + rng.uniform(0, 10)
            while s < s_hi:
                if rng.random() < probability and self.away_from_crossings(s):
                    self.add("car", A.Still(A.yaw_pose(*np.array(road.pose(s, side * PARKING_D))[[0, 1]],
                                                       float(road.pose(s)[2]) + (0 if side > 0 else np.pi))))
                s += rng.uniform(5.5, 9.0)

    def oncoming_cars(self, s_hi: float, duration: float) -> None:
        """Oncoming traffic in the left lane at 8–14 m/s, a car every 30–70 m: cars pass during the drive."""
        rng = self.rng
        s = rng.uniform(20, 60)
        while s < s_hi + duration * 12:
            self.add("car", A.RoadMotion(self.road, float(s), -float(rng.uniform(8, 14)), -LANE_D))
            s += rng.uniform(30, 70)

    def crossing_cars(self, duration: float) -> None:
        """Crossing traffic at the intersections, timed to cross in front of the ego during the drive."""
        rng, road = self.rng, self.road
        for x in self.intersections:
            if rng.random() < 0.8:
                direction = 1 if rng.random() < 0.5 else -1
                cx, cz, psi = road.pose(x - 3.0 * direction)  # its own right-hand lane
                right = np.array([np.cos(psi), -np.sin(psi)]) * direction
                self.add("car", A.LineMotion((float(cx), float(cz)), (float(right[0]), float(right[1])),
                                             float(rng.uniform(6, 10)), float(rng.uniform(0, duration))))

    def pedestrians(self, s_lo: float, s_hi: float) -> None:
        """Pedestrians on the sidewalks, walking along or standing."""
        rng, road = self.rng, self.road
        s = s_lo + rng.uniform(0, 8)
        while s < s_hi:
            side = 1 if rng.random() < 0.5 else -1
            speed = 0.0 if rng.random() < 0.25 else float(rng.uniform(0.8, 1.6)) * (1 if rng.random() < 0.5 else -1)
            d = side * float(rng.uniform(6.2, 8.0))
            if speed == 0.0:
                x, z, psi = road.pose(s, d)
                self.add("person", A.Still(A.yaw_pose(float(x), float(z), float(psi) + rng.uniform(-np.pi, np.pi),
                                                      -KERB_H)))
            else:
                self.add("person", A.RoadMotion(road, float(s), speed, d, -KERB_H))
            s += rng.uniform(6, 20)


def _make_actors(rng, road, ego_speed, frames, s_lo, s_hi, intersections) -> list[A.Actor]:
    """Parked cars, a lead car at the ego's speed, oncoming and crossing cars, pedestrians."""
    cast = _Cast(rng, road, intersections)
    duration = (frames - 1) / FPS
    cast.parked_cars(s_lo, s_hi, 0.45)
    if rng.random() < 0.85:  # the lead car: same lane, same speed, so it looks static to the ego camera
        cast.add("car", A.RoadMotion(road, float(rng.uniform(10, 22)), ego_speed, LANE_D))
    cast.oncoming_cars(s_hi, duration)
    cast.crossing_cars(duration)
    cast.pedestrians(s_lo, s_hi)
    return cast.actors


# The dynamic world (synth --world dynamic): how near the ego's speed its lead and oncoming cars drive.
LEAD_SPEED_SPREAD = 0.05      # lead cars at ego speed × [1 − 0.05, 1 + 0.05] (half of the first ones exactly at it)
ONCOMING_SPEED_SPREAD = 0.10  # oncoming cars at ego speed × [0.9, 1.1], towards the ego
MIN_LEAD_GAP_M = 6.0          # a slower lead car never comes nearer than this (centre to camera, metres)


def _make_dynamic_actors(rng, road, ego_speed, frames, s_lo, s_hi, intersections) -> list[A.Actor]:
    """The traffic of the masking ablation: the failure case of self-supervised depth made common.

    Every drive has a lead car in the ego lane 12–22 m ahead, at the ego's speed (half of the drives) or within ±5 %
    of it, and with probability 0.7 a second one 18–30 m further ahead, never slower than the first; oncoming cars
    every 20–45 m at 0.9–1.1 × the ego's speed; parked cars in 70 % of the parking slots (static: they must not become
    holes); crossing traffic and pedestrians as in the default world. A slower lead car starts far enough ahead to
    stay ``MIN_LEAD_GAP_M`` away for the whole drive.
    """
    cast = _Cast(rng, road, intersections)
    duration = (frames - 1) / FPS
    cast.parked_cars(s_lo, s_hi, 0.7)
    gap = float(rng.uniform(12, 22))
    slowest = max(1 - LEAD_SPEED_SPREAD, 1 - (gap - MIN_LEAD_GAP_M) / (ego_speed * max(duration, 1e-6)))
    factor = 1.0 if rng.random() < 0.5 else float(rng.uniform(slowest, 1 + LEAD_SPEED_SPREAD))
    cast.add("car", A.RoadMotion(road, gap, ego_speed * factor, LANE_D))
    if rng.random() < 0.7:
        second = float(rng.uniform(max(factor, 1 - LEAD_SPEED_SPREAD), 1 + LEAD_SPEED_SPREAD))
        cast.add("car", A.RoadMotion(road, gap + float(rng.uniform(18, 30)), ego_speed * second, LANE_D))
    s = rng.uniform(10, 30)  # oncoming traffic in the left lane, dense enough that one is nearly always in view
    while s < s_hi + duration * ego_speed * (1 + ONCOMING_SPEED_SPREAD):
        speed = ego_speed * float(rng.uniform(1 - ONCOMING_SPEED_SPREAD, 1 + ONCOMING_SPEED_SPREAD))
        cast.add("car", A.RoadMotion(road, float(s), -speed, -LANE_D))
        s += rng.uniform(20, 45)
    cast.crossing_cars(duration)
    cast.pedestrians(s_lo, s_hi)
    return cast.actors


# The queue world (synth --world queue): still cars in the ego lane ahead, which the ego drives up to.
QUEUE_GAP_M = (7.0, 16.0)     # the first queued car's centre ahead of the camera at the drive's last frame (metres)
QUEUE_SPACING_M = (6.5, 9.0)  # centre to centre between queued cars


def _make_queue_actors(rng, road, ego_speed, frames, s_lo, s_hi, intersections) -> list[A.Actor]:
    """The default town's traffic, but instead of a lead car at the ego's speed a queue of 1–3 still cars in the ego
    lane ahead (waiting at a light beyond the drive's end), which the ego approaches during the drive and is
    ``QUEUE_GAP_M`` short of at its last frame: cars seen from behind that are still, so their photometric loss is
    right (though nearly flat: they sit at the focus of expansion, docs/benchmarks.md). Queued cars keep 9 m away
    from the intersections (crossing traffic drives there); parked, oncoming and crossing cars and pedestrians as in
    the default world.
    """
    cast = _Cast(rng, road, intersections)
    duration = (frames - 1) / FPS
    cast.parked_cars(s_lo, s_hi, 0.45)
    s = ego_speed * duration + float(rng.uniform(*QUEUE_GAP_M))
    for _ in range(int(rng.integers(1, 4))):
        while not cast.away_from_crossings(s):
            s += 2.0
        x, z, psi = road.pose(s, LANE_D)
        cast.add("car", A.Still(A.yaw_pose(float(x), float(z), float(psi))))
        s += float(rng.uniform(*QUEUE_SPACING_M))
    cast.oncoming_cars(s_hi, duration)
    cast.crossing_cars(duration)
    cast.pedestrians(s_lo, s_hi)
    return cast.actors
