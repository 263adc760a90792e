"""Colour views: Cityscapes palette, segmentation overlay, colourised depth (all vectorised).

Colour lookups run through OpenCV's 256-entry table lookup (``cv2.applyColorMap`` with a user table), which
gives the same bytes as indexing the table with numpy, several times faster.
"""
from __future__ import annotations

import cv2
import numpy as np

from .labels import palette

_PALETTE = palette()
_PALETTE_TABLE = np.ascontiguousarray(_PALETTE.reshape(256, 1, 3))  # trainId → RGB, as cv2 wants a table
COLORMAPS = {
    "turbo": cv2.COLORMAP_TURBO, "plasma": cv2.COLORMAP_PLASMA, "magma": cv2.COLORMAP_MAGMA,
    "inferno": cv2.COLORMAP_INFERNO, "viridis": cv2.COLORMAP_VIRIDIS, "jet": cv2.COLORMAP_JET,
}


def _rgb_table(colormap: int) -> np.ndarray:
    """OpenCV's colour map as a 256×1×3 uint8 RGB table (its BGR entries, channels swapped)."""
    bgr = cv2.applyColorMap(np.arange(256, dtype=np.uint8).reshape(256, 1), colormap)
    return np.ascontiguousarray(bgr[:, :, ::-1])


_COLORMAP_TABLES = {name: _rgb_table(code) for name, code in COLORMAPS.items()}


def colorize_labels(labels: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """HxW uint8 trainIds → HxWx3 uint8 RGB with the Cityscapes colours (unknown = black).

    ``out``: a C-contiguous HxWx3 uint8 array to write into (returned)."""
    if labels.dtype == np.uint8 and labels.ndim == 2:
        return _into(out, cv2.applyColorMap(labels, _PALETTE_TABLE, dst=out))
    return np.take(_PALETTE, labels, axis=0, out=out)


def _into(out: np.ndarray | None, result: np.ndarray) -> np.ndarray:
    """``result`` of an OpenCV call given ``dst=out``: ``out`` itself (copied into if OpenCV had to allocate)."""
    if out is None or result is out:
        return result
    np.copyto(out, result)
    return out


def overlay_labels(rgb: np.ndarray, labels: np.ndarray, alpha: float = 0.5,
                   colours: np.ndarray | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """Blend the label colours over an RGB image of the same size: (1−alpha)·rgb + alpha·colour.

    Pixels labelled unknown (255) keep the image unchanged. ``colours`` may pass an already
    computed ``colorize_labels(labels)``; ``out``: a C-contiguous HxWx3 uint8 array to write into (returned).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be within [0, 1], got {alpha}")
    if rgb.shape[:2] != labels.shape:
        raise ValueError(f"image {rgb.shape[:2]} and labels {labels.shape} differ in size")
    if colours is None:
        colours = colorize_labels(labels)
    blended = _into(out, cv2.addWeighted(rgb, 1.0 - alpha, colours, alpha, 0.0, dst=out))
    unknown = labels == 255
    if unknown.any():
        blended[unknown] = rgb[unknown]
    return blended


def colorize_depth(depth: np.ndarray, min_depth: float | None = None, max_depth: float | None = None,
                   colormap: str = "turbo", inverse: bool = True, valid: np.ndarray | None = None,
                   out: np.ndarray | None = None) -> np.ndarray:
    """HxW depth → HxWx3 uint8 RGB.

    By default the colour follows inverse depth (near = warm/bright, far = dark), which spreads
    the colours over the near range where driving scenes have their detail. ``min_depth`` /
    ``max_depth`` fix the range (default: 2nd and 98th percentile of the finite values, estimated
    on every 4th row and column).
    NaN/inf/non-positive pixels are black. ``valid``: the caller's already computed
    ``isfinite(depth) & (depth > 0)`` (HxW bool), to spare computing it again. ``out``: a C-contiguous HxWx3
    uint8 array to write into (returned).
    """
    if colormap not in COLORMAPS:
        raise ValueError(f"unknown colormap {colormap!r}; valid: {sorted(COLORMAPS)}")
    if valid is None:
        valid = np.isfinite(depth) & (depth > 0)
    all_valid = bool(valid.all())
    if not all_valid and not valid.any():
        if out is None:
            return np.zeros(depth.shape + (3,), np.uint8)
        out[...] = 0
        return out
    if min_depth is None or max_depth is None:
        sample = depth[::4, ::4] if all_valid else depth[::4, ::4][valid[::4, ::4]]
        sample = sample if sample.size else depth[valid]
        p_lo, p_hi = np.percentile(sample, (2, 98))
    lo = float(p_lo) if min_depth is None else float(min_depth)
    hi = float(p_hi) if max_depth is None else float(max_depth)
    lo = max(lo, 1e-6)
    hi = max(hi, lo * (1 + 1e-6))
    # the colour index, computed in place in the depth's own precision (one array, not five)
    t = np.clip(depth, lo, hi)
    if not all_valid:
        np.copyto(t, hi, where=~valid, casting="unsafe")
    if inverse:  # (1/d − 1/hi) / (1/lo − 1/hi)
        np.divide(1.0, t, out=t)
        t -= 1.0 / hi
        t /= 1.0 / lo - 1.0 / hi
    else:  # (hi − d) / (hi − lo): near = high value either way
        np.subtract(hi, t, out=t)
        t /= hi - lo
    t *= 255.0
    u8 = np.rint(t, out=t).astype(np.uint8)
    out = _into(out, cv2.applyColorMap(u8, _COLORMAP_TABLES[colormap], dst=out))
    if not all_valid:
        out[~valid] = 0
    return out
