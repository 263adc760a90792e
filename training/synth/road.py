"""The road's centreline: a curve in the ground plane made of constant-curvature pieces.

World frame: x right, y down, z forward at the road's start; the ground is the plane y = 0. A road point is given by
its arc length ``s`` (metres along the centreline) and signed lateral offset ``d`` (metres, positive to the right of
the direction of travel). Heading ψ is the angle of the direction of travel from +z towards +x, so the forward vector
is (sin ψ, 0, cos ψ) and the right vector (cos ψ, 0, −sin ψ); positive curvature turns right.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STEP_M = 0.25  # centreline sampling


@dataclass(frozen=True)
class Road:
    """Centreline samples from ``s_start`` every STEP_M metres: positions x, z (metres) and heading (radians)."""

    s_start: float
    x: np.ndarray
    z: np.ndarray
    heading: np.ndarray

    @property
    def s_end(self) -> float:
        return self.s_start + STEP_M * (len(self.x) - 1)

    def _interp(self, s: np.ndarray, values: np.ndarray) -> np.ndarray:
        i = (np.asarray(s, np.float64) - self.s_start) / STEP_M
        return np.interp(i, np.arange(len(values)), values)

    def pose(self, s, d=0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World x, z (metres) and heading ψ (radians) of the road point (s, d); broadcasts over arrays."""
        psi = self._interp(s, self.heading)
        x = self._interp(s, self.x) + np.cos(psi) * d
        z = self._interp(s, self.z) - np.sin(psi) * d
        return x, z, psi


def make_road(rng: np.random.Generator, s_start: float, s_end: float,
              max_curvature: float = 1 / 150) -> Road:
    """A gently curving road from ``s_start`` to ``s_end`` through the origin with heading 0 at s = 0.

    Curvature is piecewise constant over 30–80 m pieces, each straight with probability 0.4, else |κ| ≤
    ``max_curvature`` (1/m, radius ≥ 150 m by default).
    """
    n = int(np.ceil((s_end - s_start) / STEP_M)) + 1
    s = s_start + STEP_M * np.arange(n)
    kappa = np.zeros(n)
    edge = s_start
    while edge < s_end:
        length = rng.uniform(30, 80)
        value = 0.0 if rng.random() < 0.4 else rng.uniform(-1, 1) * max_curvature
        kappa[(s >= edge) & (s < edge + length)] = value
        edge += length
    heading = np.concatenate([[0.0], np.cumsum(0.5 * (kappa[1:] + kappa[:-1]) * STEP_M)])
    i0 = int(round(-s_start / STEP_M))  # the sample at s = 0: heading 0, position the origin
    heading -= heading[i0]
    x = np.concatenate([[0.0], np.cumsum(0.5 * (np.sin(heading[1:]) + np.sin(heading[:-1])) * STEP_M)])
    z = np.concatenate([[0.0], np.cumsum(0.5 * (np.cos(heading[1:]) + np.cos(heading[:-1])) * STEP_M)])
    return Road(float(s_start), x - x[i0], z - z[i0], heading)
