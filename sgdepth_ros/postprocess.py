"""Network outputs → user-facing arrays: depth from disparity, resizing to the input size."""
from __future__ import annotations

import cv2
import numpy as np


def disparity_to_depth(disp, min_depth: float = 0.1, max_depth: float = 100.0):
    """Normalised disparity in (0,1) → depth in model units within (min_depth, max_depth).

    depth = 1 / (1/max_depth + (1/min_depth − 1/max_depth)·disp); with the defaults
    depth = 1/(0.01 + 9.99·disp). Elementwise on numpy arrays or torch tensors of any shape, keeping their
    dtype (float32 in → float32 out); the predictor, the trainer's view synthesis and the evaluators share it.
    """
    if not 0 < min_depth < max_depth:
        raise ValueError(f"need 0 < min_depth < max_depth, got {min_depth}, {max_depth}")
    min_disp, max_disp = 1.0 / max_depth, 1.0 / min_depth
    if isinstance(disp, np.ndarray) and disp.dtype.kind == "f":  # same operations in place: one array, not three
        depth = np.multiply(disp, max_disp - min_disp)
        depth += min_disp
        return np.divide(1.0, depth, out=depth)
    return 1.0 / (min_disp + (max_disp - min_disp) * disp)


def resize_bilinear(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """HxW float32 → h×w (``size`` = (width, height)), bilinear with half-pixel centres
    (the same sampling as torch ``interpolate(..., align_corners=False)``)."""
    if image.shape[1] == size[0] and image.shape[0] == size[1]:
        return image
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


NEAREST_MODES = ("nearest", "centre")


def nearest_indices(n_in: int, n_out: int, mode: str = "nearest") -> np.ndarray:
    """Source index [n_out] int64 of each output index for nearest-neighbour resizing; two named conventions.

    ``"nearest"`` — torch ``interpolate(mode="nearest")``: ⌊i·s⌋ with s = n_in/n_out,
    computed in float32 exactly as torch does, so it equals torch even where float32 rounds an exact product
    down (e.g. 6 → 74). ``"centre"`` — sampling at pixel centres, PIL ``NEAREST`` / torch ``"nearest-exact"``:
    ⌊(i + ½)·n_in/n_out⌋ in exact integer arithmetic (PIL's and torch's floating point may break an exact tie,
    possible only for an even n_in, the other way). The two differ (by one source pixel at many outputs), so each
    caller names the one its reference uses: the predictor and the segmentation evaluation "nearest" (the
    reference upsamples logits with torch), the training label resizes "centre" (the reference's PIL transforms).
    """
    if n_in <= 0 or n_out <= 0:
        raise ValueError(f"sizes must be positive, got {n_in} → {n_out}")
    i = np.arange(n_out, dtype=np.int64)
    if mode == "nearest":
        if n_out == n_in:
            return i
        scale = np.float32(n_in) / np.float32(n_out)
        src = np.floor(i.astype(np.float32) * scale).astype(np.int64)
        return np.minimum(src, n_in - 1)
    if mode == "centre":
        return np.minimum((2 * i + 1) * n_in // (2 * n_out), n_in - 1)
    raise ValueError(f"unknown nearest mode {mode!r}; one of {', '.join(NEAREST_MODES)}")


def resize_labels(labels: np.ndarray, size: tuple[int, int], mode: str = "nearest") -> np.ndarray:
    """HxW (or HxWxC) label image → h×w by nearest neighbour (``size`` = (width, height)); only input values appear.

    ``mode``: see :func:`nearest_indices`. The default "nearest" equals upsampling the logits with torch
    'nearest' and taking the argmax afterwards, which is how the segmentation evaluation resizes predictions.
    """
    if labels.shape[1] == size[0] and labels.shape[0] == size[1]:
        return labels
    rows = nearest_indices(labels.shape[0], size[1], mode)
    cols = nearest_indices(labels.shape[1], size[0], mode)
    # rows, then columns: two 1-D gathers, ~5× faster than one 2-D fancy index, the same pixels
    return np.take(np.take(labels, rows, axis=0), cols, axis=1)
