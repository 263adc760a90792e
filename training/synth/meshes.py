"""Triangle meshes with per-triangle surface attributes, built from trimesh primitives.

A ``Mesh`` carries, per triangle: texture coordinates of its three corners in metres on the surface (so textures
are anchored to the surface and move with it), a material index and a Cityscapes labelId. Units are metres; the
frame is the object's own (x right, y down, z forward, origin on the ground under the object's centre).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh


@dataclass
class Mesh:
    """vertices [V,3] float64 m; faces [F,3] int32; uv [F,3,2] float32 m; material [F] int16; label [F] uint8."""

    vertices: np.ndarray
    faces: np.ndarray
    uv: np.ndarray
    material: np.ndarray
    label: np.ndarray

    @property
    def triangles(self) -> np.ndarray:
        """[F,3,3] float64 corner positions."""
        return self.vertices[self.faces]

    def transformed(self, T: np.ndarray) -> "Mesh":
        """The mesh with vertices mapped by the 4×4 rigid transform ``T`` (attributes unchanged)."""
        v = self.vertices @ T[:3, :3].T + T[:3, 3]
        return Mesh(v, self.faces, self.uv, self.material, self.label)


def planar_uv(triangles: np.ndarray) -> np.ndarray:
    """[F,3,3] corners → [F,3,2] uv: each triangle projected along the axis its normal is closest to.

    Faces whose normal is mostly ±x use (z, y), mostly ±y use (x, z), mostly ±z use (x, y): on boxes this is exact
    face-planar mapping; on curved surfaces the seams are fixed on the surface, so the texture stays anchored.
    """
    n = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    axis = np.argmax(np.abs(n), axis=1)
    pick = np.array([[2, 1], [0, 2], [0, 1]])[axis]  # [F,2] coordinate indices
    return np.take_along_axis(triangles, pick[:, None, :], axis=2).astype(np.float32)


def from_trimesh(tm: trimesh.Trimesh, material: int, label: int) -> Mesh:
    """Wrap a trimesh with planar uv and one material/label for every face."""
    faces = np.asarray(tm.faces, np.int32)
    vertices = np.asarray(tm.vertices, np.float64)
    n = len(faces)
    return Mesh(vertices, faces, planar_uv(vertices[faces]),
                np.full(n, material, np.int16), np.full(n, label, np.uint8))


def box(size: tuple[float, float, float], centre: tuple[float, float, float], material: int, label: int) -> Mesh:
    """Axis-aligned box of ``size`` (x, y, z extents, m) centred at ``centre``."""
    tm = trimesh.creation.box(extents=size)
    tm.apply_translation(centre)
    return from_trimesh(tm, material, label)


def upright_cylinder(radius: float, height: float, base: tuple[float, float, float], material: int, label: int,
                     sections: int = 12) -> Mesh:
    """Vertical cylinder (along −y, i.e. up) standing on ``base`` (x, y, z of the bottom centre)."""
    tm = trimesh.creation.cylinder(radius=radius, height=height, sections=sections)
    tm.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))  # z axis → y axis
    tm.apply_translation((base[0], base[1] - height / 2, base[2]))
    return from_trimesh(tm, material, label)


def axle_cylinder(radius: float, width: float, centre: tuple[float, float, float], material: int, label: int,
                  sections: int = 12) -> Mesh:
    """Cylinder along x (a wheel) centred at ``centre``."""
    tm = trimesh.creation.cylinder(radius=radius, height=width, sections=sections)
    tm.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [0, 1, 0]))  # z axis → x axis
    tm.apply_translation(centre)
    return from_trimesh(tm, material, label)


def sphere(radius: float, centre: tuple[float, float, float], material: int, label: int,
           subdivisions: int = 1) -> Mesh:
    """Icosphere (80 faces at ``subdivisions`` 1) of ``radius`` at ``centre``."""
    tm = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    tm.apply_translation(centre)
    return from_trimesh(tm, material, label)


def quad_strip(left: np.ndarray, right: np.ndarray, uv_left: np.ndarray, uv_right: np.ndarray,
               material: int, label: int) -> Mesh:
    """A ribbon between two polylines [N,3] with explicit uv [N,2] at each point: 2(N−1) triangles."""
    n = len(left)
    vertices = np.concatenate([left, right]).astype(np.float64)
    uvs = np.concatenate([uv_left, uv_right]).astype(np.float32)
    i = np.arange(n - 1)
    faces = np.concatenate([np.stack([i, i + 1, n + i], 1), np.stack([i + 1, n + i + 1, n + i], 1)]).astype(np.int32)
    return Mesh(vertices, faces, uvs[faces], np.full(len(faces), material, np.int16),
                np.full(len(faces), label, np.uint8))


def concatenate(meshes: list[Mesh]) -> Mesh:
    """One mesh holding all triangles of ``meshes`` in order."""
    offsets = np.cumsum([0] + [len(m.vertices) for m in meshes[:-1]])
    return Mesh(np.concatenate([m.vertices for m in meshes]),
                np.concatenate([m.faces + o for m, o in zip(meshes, offsets)]).astype(np.int32),
                np.concatenate([m.uv for m in meshes]),
                np.concatenate([m.material for m in meshes]),
                np.concatenate([m.label for m in meshes]))
