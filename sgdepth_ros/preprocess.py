"""Image preparation for the network, matching the reference preprocessing.

SGDepth resizes the whole image (no crop, aspect not kept) with PIL's bilinear filter, which
low-pass filters when downscaling, then applies ToTensor and ImageNet mean/std.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

IMAGENET_MEAN = np.array((0.485, 0.456, 0.406), np.float32)
IMAGENET_STD = np.array((0.229, 0.224, 0.225), np.float32)
# normalised = pixel·_SCALE + _OFFSET with pixel in 0..255 (one multiply-add per value)
_SCALE = (1.0 / (255.0 * IMAGENET_STD)).astype(np.float32)
_OFFSET = (-IMAGENET_MEAN / IMAGENET_STD).astype(np.float32)


class ImageFormatError(ValueError):
    """An image array that cannot be turned into RGB8 (the message says why)."""


def as_rgb8(image: np.ndarray) -> np.ndarray:
    """Any common decoded image → HxWx3 uint8 RGB.

    Accepts HxW or HxWx1 grey (replicated), HxWx3 RGB, HxWx4 RGBA (alpha dropped), uint8 or
    uint16 (scaled by 1/257, i.e. 65535 → 255). Channel order is taken as RGB: convert BGR
    (OpenCV) images before calling.
    """
    if not isinstance(image, np.ndarray):
        raise ImageFormatError(f"expected a numpy array, got {type(image).__name__}")
    if image.dtype == np.uint16:
        image = (image.astype(np.uint32) * 255 + 32767) // 65535
        image = image.astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ImageFormatError(f"unsupported pixel type {image.dtype} (expected uint8 or uint16)")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ImageFormatError(f"unsupported image shape {image.shape} (expected HxW, HxWx3 or HxWx4)")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ImageFormatError(f"empty image of shape {image.shape}")
    if image.shape[2] == 4:
        image = image[:, :, :3]
    return np.ascontiguousarray(image)


def resize_rgb(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """HxWx3 uint8 → h×w×3 uint8 with PIL bilinear (antialiased); ``size`` is (width, height)."""
    if rgb.shape[1] == size[0] and rgb.shape[0] == size[1]:
        return rgb
    return np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))


def normalize(rgbs: list[np.ndarray]) -> np.ndarray:
    """List of equal-size HxWx3 uint8 RGB → [N,3,H,W] float32, ImageNet-normalised."""
    batch = np.stack(rgbs).astype(np.float32)
    batch *= _SCALE
    batch += _OFFSET
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
