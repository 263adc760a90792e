"""Surface materials: seeded, tileable, band-limited textures with mipmaps, sampled by surface coordinates.

Each material is a square RGB tile covering ``tile_m`` metres of surface, generated per town from the seed: periodic
multi-scale noise (1/f amplitude spectrum: detail at every scale down to a few millimetres) plus the material's
pattern (paving joints, windows, planks, …). Sampling is trilinear over a mip pyramid, the level chosen from the
pixel's footprint on the surface, so distant surfaces do not alias and a surface point looks the same from every
viewpoint: what view-synthesis self-supervision needs.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import cv2
import numpy as np

TILE_PX = 256


class Material(IntEnum):
    ASPHALT = 0          # road surface with lane markings (uv = lateral offset d, arc length s)
    ASPHALT_PLAIN = 1    # road surface without markings (side streets)
    SIDEWALK = 2
    CONCRETE = 3         # kerbs
    FACADE = 4
    FACADE_BRICK = 5
    WALL = 6
    FENCE = 7
    METAL = 8
    SIGN = 9
    HOUSING = 10         # traffic-light housing
    FOLIAGE = 11
    BARK = 12
    GRASS = 13
    CAR_PAINT = 14
    CAR_GLASS = 15
    RUBBER = 16
    CLOTH = 17
    SKIN = 18


# tile size on the surface (metres) per material
TILE_M = {
    Material.ASPHALT: 4.0, Material.ASPHALT_PLAIN: 4.0, Material.SIDEWALK: 1.2, Material.CONCRETE: 2.0,
    Material.FACADE: 3.2, Material.FACADE_BRICK: 3.2, Material.WALL: 2.0, Material.FENCE: 1.0, Material.METAL: 1.0,
    Material.SIGN: 0.8, Material.HOUSING: 0.6, Material.FOLIAGE: 1.5, Material.BARK: 1.0, Material.GRASS: 3.0,
    Material.CAR_PAINT: 2.0, Material.CAR_GLASS: 1.0, Material.RUBBER: 0.5, Material.CLOTH: 1.0, Material.SKIN: 0.5,
}

# road markings (metres): solid edge lines and a dashed centre line
EDGE_LINE = (3.35, 3.5)
CENTRE_HALF_WIDTH = 0.075
DASH_M, DASH_PERIOD_M = 3.0, 9.0
MARKING_RGB = np.array([0.86, 0.86, 0.82], np.float32)


def periodic_noise(rng: np.random.Generator, n: int = TILE_PX, beta: float = 1.0, low_cut: int = 1) -> np.ndarray:
    """[n,n] float32 tileable noise with zero mean and unit std; amplitude ∝ f^−beta for f ≥ ``low_cut`` cycles."""
    f = np.hypot(np.fft.fftfreq(n)[:, None] * n, np.fft.rfftfreq(n)[None, :] * n)
    amp = np.where(f >= low_cut, np.maximum(f, 1) ** -beta, 0.0)
    spectrum = (rng.standard_normal(f.shape) + 1j * rng.standard_normal(f.shape)) * amp
    field = np.fft.irfft2(spectrum, s=(n, n))
    return ((field - field.mean()) / (field.std() + 1e-12)).astype(np.float32)


def _grid_lines(n: int, cells: int, width_px: float) -> np.ndarray:
    """[n] float32 in [0,1]: 1 on joint lines between ``cells`` equal cells, smoothly 0 elsewhere."""
    x = (np.arange(n) + 0.5) * cells / n
    dist = np.abs(x - np.round(x)) * n / cells  # px to the nearest joint
    return np.clip(1.0 - dist / width_px, 0, 1).astype(np.float32)


def _tile(material: Material, rng: np.random.Generator, n: int = TILE_PX) -> np.ndarray:
    """[n,n,3] float32 RGB albedo in [0,1] of one material (row = v, column = u)."""
    def noise(beta=1.0, low=1):
        return periodic_noise(rng, n, beta, low)[..., None]

    def colour(rgb, amount, beta=1.0):
        return np.asarray(rgb, np.float32) * (1 + amount * noise(beta))

    M = Material
    if material in (M.ASPHALT, M.ASPHALT_PLAIN):
        t = colour((0.34, 0.34, 0.35), 0.22, 0.8)
    elif material == M.SIDEWALK:
        joints = np.maximum(_grid_lines(n, 2, 3)[:, None], _grid_lines(n, 2, 3)[None, :])[..., None]
        t = colour((0.62, 0.58, 0.54), 0.15) * (1 - 0.45 * joints)
    elif material == M.CONCRETE:
        t = colour((0.66, 0.66, 0.64), 0.14)
    elif material in (M.FACADE, M.FACADE_BRICK):
        base = (0.78, 0.74, 0.66) if material == M.FACADE else (0.62, 0.36, 0.28)
        t = colour(base, 0.12)
        if material == M.FACADE_BRICK:  # brick courses: 12 rows, joints light
            rows = _grid_lines(n, 48, 1.2)[:, None, None]
            t = t * (1 - rows) + 0.75 * rows
        u = (np.arange(n) + 0.5) / n
        win_u = (u > 0.28) & (u < 0.72)
        win_v = (u > 0.25) & (u < 0.70)
        window = (win_v[:, None] & win_u[None, :])[..., None]
        glass = colour((0.18, 0.22, 0.28), 0.35, 1.3)
        frame = np.zeros((n, n, 1), np.float32)
        frame[int(0.23 * n):int(0.72 * n), int(0.26 * n):int(0.74 * n)] = 1
        t = np.where(window, glass, np.where(frame > 0, 0.92 * np.ones(3, np.float32), t))
    elif material == M.WALL:
        rows = _grid_lines(n, 4, 2)[:, None, None]
        t = colour((0.58, 0.57, 0.55), 0.18) * (1 - 0.3 * rows)
    elif material == M.FENCE:
        planks = _grid_lines(n, 8, 4)[None, :, None]
        t = colour((0.50, 0.38, 0.24), 0.25, 1.2) * (1 - 0.6 * planks)
    elif material == M.METAL:
        t = colour((0.55, 0.56, 0.58), 0.1)
    elif material == M.SIGN:
        u = (np.arange(n) + 0.5) / n - 0.5
        ring = (np.hypot(u[:, None], u[None, :]) > 0.36)[..., None]
        t = np.where(ring, np.float32(0.9), colour((0.85, 0.85, 0.85), 0.05))
    elif material == M.HOUSING:
        t = colour((0.12, 0.12, 0.12), 0.2)
        v = (np.arange(n) + 0.5) / n
        for k, rgb in enumerate(((0.9, 0.15, 0.1), (0.95, 0.7, 0.1), (0.1, 0.8, 0.3))):
            lamp = (np.hypot(v[:, None] - 0.5, v[None, :] - (k + 0.5) / 3) < 0.12)[..., None]
            t = np.where(lamp, np.asarray(rgb, np.float32), t)
    elif material == M.FOLIAGE:
        t = colour((0.22, 0.42, 0.16), 0.45, 0.6)
    elif material == M.BARK:
        t = colour((0.36, 0.27, 0.2), 0.3, 0.7)
    elif material == M.GRASS:
        t = colour((0.38, 0.52, 0.22), 0.3, 0.8) * (1 + 0.15 * noise(1.5))
    elif material == M.CAR_PAINT:
        t = colour((0.82, 0.82, 0.82), 0.08, 1.2)
    elif material == M.CAR_GLASS:
        t = colour((0.12, 0.14, 0.18), 0.4, 1.2)
    elif material == M.RUBBER:
        t = colour((0.08, 0.08, 0.08), 0.3)
    elif material == M.CLOTH:
        t = colour((0.75, 0.75, 0.75), 0.2, 0.9)
    else:  # SKIN
        t = colour((0.80, 0.62, 0.50), 0.05)
    return np.clip(t, 0, 1).astype(np.float32)


@dataclass
class TextureAtlas:
    """Mip levels of every material tile, each level one padded atlas image for cv2.remap.

    levels[l]: [M·(n_l+2), n_l+2, 3] float32 with n_l = TILE_PX / 2^l; tile m occupies rows m·(n_l+2) … and a
    one-texel wrapped border, so bilinear lookups never read a neighbouring material.
    """

    levels: list[np.ndarray]
    tile_m: np.ndarray  # [M] float32 metres per tile

    @property
    def texel_m(self) -> np.ndarray:
        """[M] float32 metres per level-0 texel."""
        return self.tile_m / TILE_PX


def build_atlas(rng: np.random.Generator) -> TextureAtlas:
    """Generate every material's tile from ``rng`` and its mip pyramid (2×2 box filter, wrapping)."""
    tiles = [_tile(m, rng) for m in Material]
    levels = []
    while True:
        n = tiles[0].shape[0]
        levels.append(np.concatenate([np.pad(t, ((1, 1), (1, 1), (0, 0)), mode="wrap") for t in tiles]))
        if n == 1:
            break
        tiles = [t.reshape(n // 2, 2, n // 2, 2, 3).mean(axis=(1, 3)) for t in tiles]
    tile_m = np.array([TILE_M[m] for m in Material], np.float32)
    return TextureAtlas(levels, tile_m)


def _remap(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``image`` at float positions (x, y) [N] → [N,3] (cv2.remap in ≤ 1024-wide rows)."""
    n = len(x)
    cols = 1024
    rows = -(-n // cols)
    mx = np.zeros(rows * cols, np.float32)
    my = np.zeros(rows * cols, np.float32)
    mx[:n], my[:n] = x, y
    out = cv2.remap(image, mx.reshape(rows, cols), my.reshape(rows, cols), cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(-1, 3)[:n]


def sample(atlas: TextureAtlas, material: np.ndarray, u: np.ndarray, v: np.ndarray,
           footprint_m: np.ndarray) -> np.ndarray:
    """Trilinear albedo lookups: material [N] int, surface coords u, v [N] (m), pixel footprint [N] (m) → [N,3]."""
    texel = atlas.texel_m[material]
    top = len(atlas.levels) - 1
    lod = np.clip(np.log2(np.maximum(footprint_m / texel, 1e-6)), 0, top - 1e-3).astype(np.float32)
    base = lod.astype(np.int8)  # floor, lod ≥ 0
    frac = (lod - base)[:, None]
    tx = np.mod(u / texel, TILE_PX)  # level-0 texel units, wrapped once: at level l the tile is TILE_PX/2^l wide
    ty = np.mod(v / texel, TILE_PX)
    row0 = material.astype(np.float32)
    out = np.empty((len(u), 3), np.float32)
    for level in range(top):
        sel = np.flatnonzero(base == level)
        if len(sel) == 0:
            continue
        tx_sel, ty_sel, row_sel = tx[sel], ty[sel], row0[sel]
        acc = None
        for lv, weight in ((level, 1 - frac[sel]), (level + 1, frac[sel])):
            n = TILE_PX >> lv
            scale = np.float32(1.0 / (1 << lv))
            x = tx_sel * scale + 0.5   # texel-centre index + 1 for the atlas border; [0.5, n + 0.5)
            x[x < 1.0] += n            # the half texel left of texel 0 wraps to the border copy
            y = ty_sel * scale + 0.5
            y[y < 1.0] += n
            y += row_sel * (n + 2)
            s = _remap(atlas.levels[lv], x, y)
            s *= weight
            acc = s if acc is None else acc + s
        out[sel] = acc
    return out


def band_coverage(x: np.ndarray, width: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Fraction of a pixel footprint [x − w/2, x + w/2] that lies inside [lo, hi] (box-filtered edges)."""
    w = np.maximum(width, 1e-6)
    return np.clip((np.minimum(x + w / 2, hi) - np.maximum(x - w / 2, lo)) / w, 0, 1)


def road_markings(d: np.ndarray, s: np.ndarray, foot_d: np.ndarray, foot_s: np.ndarray) -> np.ndarray:
    """[N] float32 marking coverage at road coordinates d (lateral), s (along), footprints in metres."""
    edge = band_coverage(np.abs(d), foot_d, *EDGE_LINE)
    centre = band_coverage(d, foot_d, -CENTRE_HALF_WIDTH, CENTRE_HALF_WIDTH)
    phase = np.mod(s, DASH_PERIOD_M)
    dash = np.maximum(band_coverage(phase, foot_s, 0, DASH_M), band_coverage(phase - DASH_PERIOD_M, foot_s, 0, DASH_M))
    return np.maximum(edge, centre * dash).astype(np.float32)
