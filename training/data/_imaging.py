"""Image helpers shared by the dataset readers: reading (sgdepth_ros.imageio + preprocess.as_rgb8), pixel-centre
nearest resizing of labels (the runtime's ``resize_labels(..., mode="centre")``, PIL NEAREST's convention), numpy →
tensor (images resize with ``sgdepth_ros.preprocess.resize_rgb``, PIL bilinear).

Conventions: images are HxWx3 uint8 **RGB** numpy arrays until they become tensors; tensors are float32 3xHxW in [0,1].
"""
from __future__ import annotations

import os

import numpy as np
import torch
from sgdepth_ros import imageio
from sgdepth_ros.postprocess import resize_labels as _resize_labels
from sgdepth_ros.preprocess import ImageFormatError, as_rgb8

from .errors import DatasetError


def _decode(path: str | os.PathLike[str]) -> np.ndarray:
    """The file decoded as stored (sgdepth_ros.imageio.read_rgb), its errors re-raised as DatasetError."""
    try:
        return imageio.read_rgb(path)
    except imageio.ImageReadError as exc:
        raise DatasetError(str(exc)) from None


def read_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a colour image → HxWx3 uint8 RGB with the runtime's conversion (``sgdepth_ros.preprocess.as_rgb8``:
    grey expanded to three channels, alpha dropped, 16 bit scaled by 1/257), so training sees what the node sees.

    Raises: DatasetError naming the file when it is missing, corrupt, not decodable or of an unsupported format.
    """
    try:
        return as_rgb8(_decode(path))
    except ImageFormatError as exc:
        raise DatasetError(f"{path}: {exc}") from None


def read_single_channel(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a one-channel PNG as stored (no conversion): HxW uint8 or uint16.

    Raises: DatasetError naming the file when it is missing, undecodable or has more than one channel.
    """
    image = _decode(path)
    if image.ndim != 2:
        raise DatasetError(f"{path}: expected a single-channel image, got shape {image.shape}")
    return image


def resize_labels(labels: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize an HxW label map by nearest neighbour sampled at pixel centres (PIL NEAREST's convention, in exact
    arithmetic: :func:`sgdepth_ros.postprocess.nearest_indices` mode "centre"), so only input values appear."""
    return _resize_labels(labels, (width, height), mode="centre")


def rgb_to_tensor(image: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 RGB → float32 tensor 3xHxW in [0,1]."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255.0)
