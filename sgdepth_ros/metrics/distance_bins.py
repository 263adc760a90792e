"""Depth errors per ground-truth distance bin (pure numpy): how the error grows with range.

Pixel-weighted over a whole run (every valid pixel of every frame counts once), unlike the per-image means of the
Eigen table: a bin far away holds few pixels per frame, and an image mean would let a handful of pixels weigh as
much as a full frame.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["DEFAULT_EDGES_M", "DistanceBins"]

#: Bin edges in metres: [0,5), [5,10), [10,20), [20,30), [30,50), [50,80).
DEFAULT_EDGES_M = (0.0, 5.0, 10.0, 20.0, 30.0, 50.0, 80.0)


@dataclass
class DistanceBins:
    """Running sums per bin of |g−p|/g, (g−p)², δ<1.25 and the pixel count.

    ``edges``: increasing bin edges in metres; bin k holds ground truth in [edges[k], edges[k+1]).
    """

    edges: tuple[float, ...] = DEFAULT_EDGES_M
    _abs_rel: np.ndarray = field(init=False, repr=False)
    _sq_err: np.ndarray = field(init=False, repr=False)
    _a1: np.ndarray = field(init=False, repr=False)
    _count: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        edges = np.asarray(self.edges, dtype=np.float64)
        if edges.ndim != 1 or edges.size < 2 or not np.all(np.diff(edges) > 0) or not np.all(np.isfinite(edges)):
            raise ValueError(f"distance bin edges must be at least two increasing finite numbers, got {self.edges}")
        self.edges = tuple(float(e) for e in edges)
        n = edges.size - 1
        self._abs_rel, self._sq_err, self._a1 = np.zeros(n), np.zeros(n), np.zeros(n)
        self._count = np.zeros(n, np.int64)

    def update(self, gt: np.ndarray, pred: np.ndarray) -> None:
        """Add matching 1-D arrays of valid pixels: ground truth and scaled, clamped prediction (metres, > 0)."""
        gt = np.asarray(gt, dtype=np.float64).ravel()
        pred = np.asarray(pred, dtype=np.float64).ravel()
        if gt.shape != pred.shape:
            raise ValueError(f"gt and prediction must have the same number of pixels, got {gt.size} and {pred.size}")
        index = np.searchsorted(self.edges, gt, side="right") - 1
        inside = (index >= 0) & (index < len(self._count))
        index, g, p = index[inside], gt[inside], pred[inside]
        n = len(self._count)
        self._abs_rel += np.bincount(index, np.abs(g - p) / g, minlength=n)
        self._sq_err += np.bincount(index, (g - p) ** 2, minlength=n)
        self._a1 += np.bincount(index, (np.maximum(g / p, p / g) < 1.25).astype(np.float64), minlength=n)
        self._count += np.bincount(index, minlength=n)

    def rows(self) -> list[dict]:
        """One dict per bin: ``lo``, ``hi`` (metres), ``pixels``, ``abs_rel``, ``rmse`` (m), ``a1``; NaN when empty."""
        out = []
        for k, count in enumerate(self._count):
            if count:
                values = (self._abs_rel[k] / count, float(np.sqrt(self._sq_err[k] / count)), self._a1[k] / count)
            else:
                values = (float("nan"),) * 3
            out.append({"lo": self.edges[k], "hi": self.edges[k + 1], "pixels": int(count),
                        "abs_rel": float(values[0]), "rmse": float(values[1]), "a1": float(values[2])})
        return out
