"""Image helpers shared by the dataset readers: cv2 reading, PIL resizing, numpy → tensor.

Conventions: images are HxWx3 uint8 **RGB** numpy arrays until they become tensors; tensors are float32 3xHxW in [0,1].
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from .errors import DatasetError



def read_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a colour image with cv2 and convert BGR→RGB.

    Returns: HxWx3 uint8 RGB (a grey file is expanded to three equal channels).
    Raises: DatasetError naming the file when it is missing, corrupt or not decodable.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: image file does not exist")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DatasetError(f"{path}: cannot decode image (corrupt or unsupported format)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_single_channel(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a one-channel PNG as stored (no conversion): HxW uint8 or uint16.

    Raises: DatasetError naming the file when it is missing, undecodable or has more than one channel.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: file does not exist")
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DatasetError(f"{path}: cannot decode image (corrupt or unsupported format)")
    if img.ndim != 2:
        raise DatasetError(f"{path}: expected a single-channel image, got shape {img.shape}")
    return img


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
