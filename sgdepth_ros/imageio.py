"""Reading and writing image files for the command-line tools (OpenCV underneath)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
VIDEO_EXTENSIONS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


class ImageReadError(ValueError):
    """A file that cannot be decoded as an image (the message names it and says why)."""


def read_rgb(path: str | Path) -> np.ndarray:
    """Decode an image file → HxW, HxWx3 (RGB) or HxWx4 (RGBA), uint8 or uint16, as stored."""
    path = Path(path)
    data = np.fromfile(path, np.uint8) if path.is_file() else None
    if data is None:
        raise ImageReadError(f"{path}: no such file")
    if data.size == 0:
        raise ImageReadError(f"{path}: empty file")
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageReadError(f"{path}: not a decodable image")
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    return image


def write_rgb(path: str | Path, rgb: np.ndarray, jpeg_quality: int = 95, png_compression: int = 3) -> None:
    """Write an HxWx3 RGB (or HxW single-channel, uint8/uint16) image; the format follows the suffix.

    ``png_compression``: zlib level 0–9 for PNG (lower is faster, larger).
    """
    path = Path(path)
    image = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else rgb
    suffix = path.suffix.lower()
    params = ([cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if suffix in (".jpg", ".jpeg")
              else [cv2.IMWRITE_PNG_COMPRESSION, png_compression] if suffix == ".png" else [])
    ok, buf = cv2.imencode(path.suffix, image, params)
    if not ok:
        raise OSError(f"{path}: could not encode image")
    buf.tofile(path)


def iter_video(path: str | Path):
    """Yield (index, HxWx3 RGB uint8) for every frame of a video file."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ImageReadError(f"{path}: cannot open as a video")
    index = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            yield index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            index += 1
    finally:
        cap.release()
    if index == 0:
        raise ImageReadError(f"{path}: video holds no decodable frame")
