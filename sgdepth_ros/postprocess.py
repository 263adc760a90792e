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
    return 1.0 / (min_disp + (max_disp - min_disp) * disp)


def resize_bilinear(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """HxW float32 → h×w (``size`` = (width, height)), bilinear with half-pixel centres
    (the same sampling as torch ``interpolate(..., align_corners=False)``)."""
    if image.shape[1] == size[0] and image.shape[0] == size[1]:
        return image
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


def nearest_indices(n_in: int, n_out: int) -> np.ndarray:
    """Source index of each output index for nearest resizing, as torch 'nearest': ⌊i·n_in/n_out⌋."""
    return np.minimum((np.arange(n_out) * (n_in / n_out)).astype(np.int64), n_in - 1)


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """HxW label image → h×w by nearest neighbour (``size`` = (width, height)).

    Equal to upsampling the logits with torch 'nearest' and taking the argmax afterwards,
    which is how the segmentation evaluation resizes predictions.
    """
    if labels.shape[1] == size[0] and labels.shape[0] == size[1]:
        return labels
    rows = nearest_indices(labels.shape[0], size[1])
    cols = nearest_indices(labels.shape[1], size[0])
    return labels[rows[:, None], cols[None, :]]
