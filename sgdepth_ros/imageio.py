"""Reading and writing image files for the command-line tools (OpenCV underneath), and the one image-header
reader that every decoder (files here, CompressedImage payloads in :mod:`sgdepth_ros.ros.image_codec`) consults
before it spends memory: a few hundred bytes can declare a 30000×30000 image, and decoding allocates for the size
the header claims.
"""
from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
VIDEO_EXTENSIONS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}
# Largest image file decoded by default: 8192×8192 (≈ 67 Mpx: any camera; 200 MB as RGB8).
MAX_FILE_PIXELS = 8192 * 8192


class ImageReadError(ValueError):
    """A file that cannot be decoded as an image (the message names it and says why)."""


class ImageTooLargeError(ImageReadError):
    """A file whose header declares more pixels than allowed (the message names it, its size and the limit)."""


class HeaderError(ValueError):
    """Encoded image bytes whose header cannot be read (no known format, or a truncated/corrupt header)."""


@dataclass(frozen=True)
class ImageHeader:
    """What an encoded image declares about itself: ``format`` as Pillow names it ("JPEG", "PNG", …), size in
    pixels."""

    format: str
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def read_header(data: bytes | bytearray | memoryview | np.ndarray, formats: tuple[str, ...] | None = None
                ) -> ImageHeader:
    """The format and size of an encoded image, read from its header without decoding any pixel.

    ``formats``: the Pillow format names to try (e.g. ("JPEG",)); None = every format Pillow knows. Each format's
    Pillow plugin parses only the header (PNG's IHDR, JPEG's markers up to the first scan, …), as ``Image.open``
    does, but without its decompression-bomb limit (≈ 179 Mpx, a warning from 89 Mpx): the caller compares the
    exact size with its own limit. Raises :class:`HeaderError`.
    """
    raw = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
    Image.preinit()  # JPEG, PNG, BMP, GIF, PPM plugins; every other one only when asked for
    if formats is None or any(name.upper() not in Image.OPEN for name in formats):
        Image.init()
    prefix = raw[:16]
    for name in formats or tuple(Image.ID):
        factory, accept = Image.OPEN[name.upper()]
        verdict = accept(prefix) if accept else True
        if not verdict or isinstance(verdict, str):  # a str is Pillow's "not this format, because …"
            continue
        try:
            image = factory(io.BytesIO(raw), "")
        except (SyntaxError, IndexError, TypeError, struct.error, OSError, ValueError, EOFError):
            continue  # not this format after all, or a corrupt header: as Image.open, try the next
        try:
            return ImageHeader(str(image.format), int(image.size[0]), int(image.size[1]))
        finally:
            image.close()
    raise HeaderError(f"no readable {'/'.join(formats) if formats else 'image'} header in {len(raw)} bytes")


def read_rgb(path: str | Path, max_pixels: int = MAX_FILE_PIXELS) -> np.ndarray:
    """Decode an image file → HxW, HxWx3 (RGB) or HxWx4 (RGBA), uint8 or uint16, as stored.

    The header is read first: a file declaring more than ``max_pixels`` pixels raises
    :class:`ImageTooLargeError` (naming the file, its size and the limit) before any pixel memory is allocated.
    Other failures raise :class:`ImageReadError` naming the file.
    """
    path = Path(path)
    data = np.fromfile(path, np.uint8) if path.is_file() else None
    if data is None:
        raise ImageReadError(f"{path}: no such file")
    if data.size == 0:
        raise ImageReadError(f"{path}: empty file")
    try:
        header = read_header(data)
    except HeaderError as error:
        raise ImageReadError(f"{path}: not a decodable image: {error}") from None
    if header.pixels > max_pixels:
        raise ImageTooLargeError(f"{path}: {header.format} header declares {header.width}x{header.height} "
                                 f"({header.pixels} pixels), more than the limit of {max_pixels}; not decoded")
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageReadError(f"{path}: not a decodable image")
    if image.shape[:2] != (header.height, header.width):
        raise ImageReadError(f"{path}: decoded {image.shape[1]}x{image.shape[0]} but the header declares "
                             f"{header.width}x{header.height}")
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
