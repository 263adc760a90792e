"""Image helpers shared by the dataset readers: reading (sgdepth_ros.imageio), PIL resizing, numpy → tensor.

Conventions: images are HxWx3 uint8 **RGB** numpy arrays until they become tensors; tensors are float32 3xHxW in [0,1].
"""
from __future__ import annotations

import os
import numpy as np
import torch
from PIL import Image

from sgdepth_ros import imageio

from .errors import DatasetError



def _decode(path: str | os.PathLike[str]) -> np.ndarray:
    """The file decoded as stored (sgdepth_ros.imageio.read_rgb), its errors re-raised as DatasetError."""
    try:
        return imageio.read_rgb(path)
    except imageio.ImageReadError as exc:
        raise DatasetError(str(exc)) from None


def read_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a colour image → HxWx3 uint8 RGB (grey expanded to three channels, alpha dropped, 16 bit → 8 bit).

    Raises: DatasetError naming the file when it is missing, corrupt or not decodable.
    """
    image = _decode(path)
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3])


def read_single_channel(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a one-channel PNG as stored (no conversion): HxW uint8 or uint16.

    Raises: DatasetError naming the file when it is missing, undecodable or has more than one channel.
    """
    image = _decode(path)
    if image.ndim != 2:
        raise DatasetError(f"{path}: expected a single-channel image, got shape {image.shape}")
    return image


def resize_rgb(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize HxWx3 uint8 RGB to height x width x 3 with **PIL bilinear** (as SGDepth's training transform).

    Pillow's bilinear filter widens its support when shrinking, i.e. it antialiases. No-op when the size already fits.
    """
    if image.shape[0] == height and image.shape[1] == width:
        return image
    return np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))


def resize_labels(labels: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize an HxW uint8 label map with **PIL nearest**, so only values present in the input appear."""
    if labels.shape[0] == height and labels.shape[1] == width:
        return labels
    return np.asarray(Image.fromarray(labels).resize((width, height), Image.NEAREST))


def rgb_to_tensor(image: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 RGB → float32 tensor 3xHxW in [0,1]."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255.0)
