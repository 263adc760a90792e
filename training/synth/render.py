"""Ray-cast rendering of a World with Embree (embreex): colour, z-depth, labelIds and instance ids per pixel.

Static scenery lives in one Embree scene built once per drive. Each actor has its own scene in its object frame,
also built once: every frame, the rays inside the actor's image rectangle are moved into its frame and cast there
(no per-frame BVH builds). Each pixel casts one ray from the camera centre with direction
R·((u − cx)/fx, (v − cy)/fy, 1), so Embree's hit distance is the z-depth exactly. Colour is albedo (trilinear texture
lookup by surface coordinates × per-object tint, road markings box-filtered) × Lambert shading with a fixed sun; the
sky is a gradient by elevation and has no depth (NaN). The cameras of a rig share one SceneGeometry (atlas, meshes,
Embree scenes) and differ by their mount on the ego car (rig.py).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from embreex import rtcore_scene
from embreex.mesh_construction import TriangleMesh

from . import materials
from .camera import Camera
from .meshes import Mesh, concatenate
from .world import FPS, StaticPart, World

SKY_LABEL = 23
AMBIENT, DIFFUSE = 0.5, 0.6
SKY_HORIZON, SKY_ZENITH = np.array([0.80, 0.86, 0.92], np.float32), np.array([0.33, 0.53, 0.84], np.float32)
MISS = np.float32(1e30)


@dataclass
class Frame:
    """One rendered frame; H×W images, camera pose in the drive's world frame.

    rgb [H,W,3] uint8; depth [H,W] float32 metres along the optical axis, NaN = sky; label_ids [H,W] uint8 Cityscapes
    labelIds (every pixel labelled); instance_ids [H,W] uint16 actor id (0 = no actor); pose [4,4] camera-to-world
    and object_poses {instance id: [4,4] object-to-world}, both with world = the camera of the drive's first frame
    (the KITTI odometry convention); time in seconds from the first frame.
    """

    index: int
    time: float
    rgb: np.ndarray
    depth: np.ndarray
    label_ids: np.ndarray
    instance_ids: np.ndarray
    pose: np.ndarray
    object_poses: dict[int, np.ndarray]


@dataclass
class _Geometry:
    """Triangle soup with per-triangle attributes: corners [F,3,3] (object frame for actors), uv [F,3,2], …"""

    mesh: Mesh
    tint: np.ndarray      # [F,3] float32
    instance: np.ndarray  # [F] uint16
    owner: np.ndarray     # [F] int32: actor index (−1 for static)

    def __post_init__(self):
        # uv = uv_origin + uv_du·u + uv_dv·v for Embree's barycentrics (u, v): [F,2] float32 each, contiguous
        c = self.mesh.uv
        self.uv_origin = np.ascontiguousarray(c[:, 0])
        self.uv_du = np.ascontiguousarray(c[:, 1] - c[:, 0])
        self.uv_dv = np.ascontiguousarray(c[:, 2] - c[:, 0])

    @staticmethod
    def unit_normals(triangles: np.ndarray) -> np.ndarray:
        """[F,3,3] corners → [F,3] float32 unit face normals."""
        n = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
        return (n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def _static_geometry(parts: list[StaticPart]) -> _Geometry:
    mesh = concatenate([p.mesh for p in parts])
    tint = np.concatenate([np.repeat(p.tint[None], len(p.mesh.faces), 0) for p in parts]).astype(np.float32)
    n = len(mesh.faces)
    return _Geometry(mesh, tint, np.zeros(n, np.uint16), np.full(n, -1, np.int32))


def _actor_geometry(world: World) -> _Geometry | None:
    if not world.actors:
        return None
    mesh = concatenate([a.mesh for a in world.actors])
    counts = [len(a.mesh.faces) for a in world.actors]
    tint = np.concatenate([np.repeat(a.tint[None], c, 0) for a, c in zip(world.actors, counts)]).astype(np.float32)
    instance = np.repeat(np.array([a.instance_id for a in world.actors], np.uint16), counts)
    owner = np.repeat(np.arange(len(world.actors), dtype=np.int32), counts)
    return _Geometry(mesh, tint, instance, owner)


def _embree_scene(triangles: np.ndarray):
    """An Embree scene of [F,3,3] float32 triangles (primID = row)."""
    scene = rtcore_scene.EmbreeScene()
    TriangleMesh(scene=scene, vertices=np.ascontiguousarray(triangles, np.float32))
    return scene


class SceneGeometry:
    """The camera-independent half of rendering a World: texture atlas, geometry and Embree scenes (built once,
    shared by the Renderers of several cameras).

    ``extra``: static parts kept in a scene of their own (the rig's ``world.scenery_behind``): rays are cast into it
    only where its triangles project into the image, and its hits replace the world's only where strictly closer,
    so a camera that does not see it renders exactly as without it.
    """

    def __init__(self, world: World, atlas: materials.TextureAtlas | None = None,
                 extra: list[StaticPart] | None = None):
        self.atlas = atlas if atlas is not None else materials.build_atlas(np.random.default_rng([world.seed, 7]))
        self.static = _static_geometry(world.static)
        self.actors = _actor_geometry(world)
        self.static_scene = _embree_scene(self.static.mesh.triangles)
        self.static_normals = _Geometry.unit_normals(self.static.mesh.triangles)
        if self.actors is not None:  # one Embree scene per actor in its own frame: rays are moved, not meshes
            self.actor_faces = [np.flatnonzero(self.actors.owner == i) for i in range(len(world.actors))]
            self.actor_radius = [float(np.linalg.norm(a.mesh.vertices, axis=1).max()) for a in world.actors]
            self.actor_scenes = [_embree_scene(a.mesh.triangles) for a in world.actors]
            self.actor_local_normals = _Geometry.unit_normals(self.actors.mesh.triangles)
        self.extra = _static_geometry(extra) if extra else None
        if self.extra is not None:
            self.extra_scene = _embree_scene(self.extra.mesh.triangles)
            self.extra_normals = _Geometry.unit_normals(self.extra.mesh.triangles)


class Renderer:
    """Renders frames of ``world`` as seen by ``camera``; ``threads`` Embree calls run in parallel (GIL released).

    ``mount``: 4×4 pose of this camera's optical frame in the world's ego camera's optical frame (a rig camera,
    rig.RigCamera.mount); None = the ego camera itself. ``geometry``: a SceneGeometry of ``world`` to share (built
    here when None, with ``atlas``).
    """

    def __init__(self, world: World, camera: Camera, atlas: materials.TextureAtlas | None = None, threads: int = 2,
                 mount: np.ndarray | None = None, geometry: SceneGeometry | None = None):
        self.world, self.camera, self.mount = world, camera, mount
        g = geometry if geometry is not None else SceneGeometry(world, atlas)
        self.atlas, self.static, self.actors = g.atlas, g.static, g.actors
        self.static_scene, self.static_normals = g.static_scene, g.static_normals
        if self.actors is not None:
            self.actor_faces, self.actor_radius = g.actor_faces, g.actor_radius
            self.actor_scenes, self.actor_local_normals = g.actor_scenes, g.actor_local_normals
        self.extra = g.extra
        if self.extra is not None:
            self.extra_scene, self.extra_normals = g.extra_scene, g.extra_normals
        self.dirs_cam = camera.ray_directions()
        self.origins = np.empty_like(self.dirs_cam)
        self.drive_origin = np.linalg.inv(self.camera_pose(0.0))  # town frame → first camera's frame
        self.dir_length = np.linalg.norm(self.dirs_cam, axis=1).astype(np.float32)  # [H·W]
        self.pool = ThreadPoolExecutor(threads) if threads > 1 else None
        self.threads = threads

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()

    def _cast(self, scene, origins: np.ndarray, dirs: np.ndarray) -> dict:
        if self.pool is None:
            return scene.run(origins, dirs, output=1)
        chunks = [c for c in np.array_split(np.arange(len(dirs)), self.threads) if len(c)]
        parts = list(self.pool.map(lambda c: scene.run(origins[c[0]:c[-1] + 1], dirs[c[0]:c[-1] + 1], output=1),
                                   chunks))
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def camera_pose(self, t: float) -> np.ndarray:
        """4×4 camera-to-town pose of this camera at time t (s)."""
        pose = self.world.camera_pose(t)
        return pose if self.mount is None else pose @ self.mount

    def actor_poses(self, t: float) -> dict[int, np.ndarray]:
        """Every actor's 4×4 object-to-world pose at time t (s), by instance id."""
        return {a.instance_id: a.pose(t) for a in self.world.actors}

    def _in_view(self, obj_pose: np.ndarray, radius: float, cam_pose: np.ndarray) -> bool:
        """Whether a sphere of ``radius`` around the object's origin can be seen (frustum and 250 m range)."""
        p = cam_pose[:3, :3].T @ (obj_pose[:3, 3] - cam_pose[:3, 3])
        if p[2] < -radius or p[2] > 250 + radius:
            return False
        cam = self.camera
        slack = radius * np.hypot(1, max(cam.width, cam.height) / cam.fx)
        return (p[0] - slack) * cam.fx <= max(p[2], 0) * (cam.width - cam.cx) and \
            (p[0] + slack) * cam.fx >= -max(p[2], 0) * cam.cx and \
            (p[1] - slack) * cam.fy <= max(p[2], 0) * (cam.height - cam.cy) and \
            (p[1] + slack) * cam.fy >= -max(p[2], 0) * cam.cy

    def render(self, index: int, exposure: float = 1.0, noise_sigma: float = 0.0,
               rng: np.random.Generator | None = None) -> Frame:
        """Frame ``index`` (time index/10 s). ``exposure`` scales the colour; ``noise_sigma`` adds Gaussian noise
        (in [0,1] units) from ``rng``."""
        cam = self.camera
        t = index / FPS
        pose = self.camera_pose(t)
        dirs = np.ascontiguousarray(self.dirs_cam @ pose[:3, :3].T.astype(np.float32))
        origins = self.origins
        origins[:] = pose[:3, 3]
        hit = self._cast(self.static_scene, origins, dirs)
        geometry = [self.static]
        which = np.zeros(len(dirs), np.int8)
        object_poses: dict[int, np.ndarray] = {}
        normals = [self.static_normals]
        if self.extra is not None:
            rays = self._screen_box_rays(self.extra.mesh.triangles, pose)
            if len(rays):
                more = self._cast(self.extra_scene, origins[rays], dirs[rays])
                best = np.where(hit["primID"][rays] >= 0, hit["tfar"][rays], MISS)
                closer = (more["primID"] >= 0) & (more["tfar"] < best)
                rays = rays[closer]
                for key in ("tfar", "primID", "u", "v"):
                    hit[key][rays] = more[key][closer]
                which[rays] = len(geometry)
            geometry.append(self.extra)
            normals.append(self.extra_normals)
        if self.actors is not None:
            object_poses = self.actor_poses(t)
            actor_normals = np.zeros_like(self.actor_local_normals)
            for i, actor in enumerate(self.world.actors):
                T = object_poses[actor.instance_id]
                if not self._in_view(T, self.actor_radius[i], pose):
                    continue
                rays = self._screen_box_rays(actor.mesh.triangles @ T[:3, :3].T + T[:3, 3], pose)
                if len(rays) == 0:
                    continue
                R = T[:3, :3].astype(np.float32)  # local = Rᵀ(world − T): rows of (world − T) times R
                local_o = (origins[rays[:1]] - T[:3, 3].astype(np.float32)) @ R
                dyn = self.actor_scenes[i].run(np.repeat(local_o, len(rays), 0), dirs[rays] @ R, output=1)
                best = np.where(hit["primID"][rays] >= 0, hit["tfar"][rays], MISS)
                closer = (dyn["primID"] >= 0) & (dyn["tfar"] < best)
                rays = rays[closer]
                hit["tfar"][rays] = dyn["tfar"][closer]
                hit["primID"][rays] = self.actor_faces[i][dyn["primID"][closer]]
                hit["u"][rays], hit["v"][rays] = dyn["u"][closer], dyn["v"][closer]
                which[rays] = len(geometry)
                faces = self.actor_faces[i]
                actor_normals[faces] = self.actor_local_normals[faces] @ R.T
            geometry.append(self.actors)
            normals.append(actor_normals)

        n = len(dirs)
        rgb = np.empty((n, 3), np.float32)
        depth = np.full(n, np.nan, np.float32)
        labels = np.full(n, SKY_LABEL, np.uint8)
        instances = np.zeros(n, np.uint16)
        sky = hit["primID"] < 0
        elevation = np.clip(-dirs[sky, 1] / self.dir_length[sky] * 4.0, 0, 1)[:, None]
        rgb[sky] = SKY_HORIZON * (1 - elevation) + SKY_ZENITH * elevation
        for g_index, (g, g_normals) in enumerate(zip(geometry, normals)):
            sel = np.nonzero(~sky & (which == g_index))[0]
            if len(sel) == 0:
                continue
            face = hit["primID"][sel]
            depth[sel] = hit["tfar"][sel]
            labels[sel] = g.mesh.label[face]
            instances[sel] = g.instance[face]
            rgb[sel] = self._shade(g, g_normals[face], face, sel, hit, dirs)
        if exposure != 1.0:
            rgb *= exposure
        if noise_sigma > 0:
            rgb += (rng or np.random.default_rng()).normal(0, noise_sigma, rgb.shape).astype(np.float32)
        h, w = cam.height, cam.width
        image = np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8).reshape(h, w, 3)
        return Frame(index, t, image, depth.reshape(h, w), labels.reshape(h, w), instances.reshape(h, w),
                     self.drive_origin @ pose, {k: self.drive_origin @ T for k, T in object_poses.items()})

    def _screen_box_rays(self, triangles: np.ndarray, pose: np.ndarray) -> np.ndarray:
        """Indices of the rays in the image rectangle bounding world ``triangles`` [F,3,3] (near-plane clipped)."""
        cam = self.camera
        R, c = pose[:3, :3], pose[:3, 3]
        p = (triangles.reshape(-1, 3) - c) @ R  # camera frame
        near = 0.05
        if p[:, 2].max() <= near:
            return np.zeros(0, np.int64)  # behind the camera
        tri = p.reshape(-1, 3, 3)
        keep = [p[p[:, 2] > near]]
        for i, j in ((0, 1), (1, 2), (2, 0)):  # where an edge crosses the near plane, its crossing point
            a, b = tri[:, i], tri[:, j]
            cross = (a[:, 2] - near) * (b[:, 2] - near) < 0
            if cross.any():
                a, b = a[cross], b[cross]
                keep.append(a + (b - a) * ((near - a[:, 2]) / (b[:, 2] - a[:, 2]))[:, None])
        p = np.concatenate(keep)
        u = p[:, 0] / p[:, 2] * cam.fx + cam.cx
        v = p[:, 1] / p[:, 2] * cam.fy + cam.cy
        u0, u1 = int(np.clip(np.floor(u.min()), 0, cam.width)), int(np.clip(np.ceil(u.max()) + 1, 0, cam.width))
        v0, v1 = int(np.clip(np.floor(v.min()), 0, cam.height)), int(np.clip(np.ceil(v.max()) + 1, 0, cam.height))
        if u0 >= u1 or v0 >= v1:
            return np.zeros(0, np.int64)
        return (np.arange(v0, v1)[:, None] * cam.width + np.arange(u0, u1)[None, :]).ravel()

    def _shade(self, g: _Geometry, normal: np.ndarray, face: np.ndarray, sel: np.ndarray, hit: dict,
               dirs: np.ndarray) -> np.ndarray:
        """[N,3] shaded colour of the hits ``sel`` on triangles ``face`` (unit normals [N,3]) of geometry ``g``."""
        uv = g.uv_du[face]
        uv *= hit["u"][sel, None]
        uv += g.uv_origin[face]
        uv += g.uv_dv[face] * hit["v"][sel, None]
        cos_view = np.einsum("ij,ij->i", normal, dirs[sel]) / self.dir_length[sel]
        normal = normal * np.where(cos_view > 0, -1.0, 1.0).astype(np.float32)[:, None]  # two-sided
        cos_view = np.abs(cos_view)
        across = hit["tfar"][sel] / np.float32(self.camera.fx)  # metres per pixel, perpendicular to the ray
        material = g.mesh.material[face]
        albedo = materials.sample(self.atlas, material, uv[:, 0], uv[:, 1], across / np.sqrt(np.maximum(cos_view, 0.05)))
        albedo *= g.tint[face]
        road = np.flatnonzero(material == materials.Material.ASPHALT)
        if len(road):
            cover = materials.road_markings(uv[road, 0], uv[road, 1], across[road],
                                            across[road] / np.maximum(cos_view[road], 0.02))
            albedo[road] += (materials.MARKING_RGB - albedo[road]) * cover[:, None]
        light = AMBIENT + DIFFUSE * np.maximum(normal @ self.world.sun.astype(np.float32), 0)
        return albedo * light[:, None]
