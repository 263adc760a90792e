"""Test helper: an RGB image written as the payload of a sensor_msgs/Image in any supported encoding."""
from __future__ import annotations

import numpy as np

ALL_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "16UC1", "yuv422", "uyvy", "yuv422_yuy2",
                 "bayer_rggb8", "bayer_bggr8", "bayer_gbrg8", "bayer_grbg8")
_BAYER_CHANNEL = {"r": 0, "g": 1, "b": 2}


def smooth_rgb(width: int, height: int) -> np.ndarray:
    """A smooth colourful HxWx3 uint8 image (demosaicing and chroma subsampling stay accurate on it)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 40 + 180 * x / max(width - 1, 1)
    g = 40 + 180 * y / max(height - 1, 1)
    b = 120 + 80 * np.sin(x / 25.0) * np.cos(y / 19.0)
    return np.stack([r, g, b], axis=2).round().astype(np.uint8)


def grey(rgb: np.ndarray) -> np.ndarray:
    return np.round(rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.uint8)


def _yuv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BT.601 video-range Y, U, V (the inverse of OpenCV's YUV2RGB_UYVY/YUY2 conversion)."""
    r, g, b = (rgb[:, :, i].astype(np.float32) for i in range(3))
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    return tuple(np.clip(np.round(c), 0, 255).astype(np.uint8) for c in (y, u, v))


def encode(rgb: np.ndarray, encoding: str, padding: int = 0, bigendian: bool = False) -> tuple[int, bytes, np.ndarray]:
    """→ (step, data, expected RGB after decoding). ``padding`` extra bytes end every row."""
    h, w = rgb.shape[:2]
    expected = rgb
    if encoding in ("rgb8", "bgr8", "rgba8", "bgra8"):
        pixels = rgb[:, :, ::-1] if encoding.startswith("bgr") else rgb
        if encoding.endswith("a8"):
            pixels = np.concatenate([pixels, np.full((h, w, 1), 77, np.uint8)], axis=2)
        rows = pixels.reshape(h, -1)
    elif encoding == "mono8":
        rows = grey(rgb)
        expected = np.repeat(rows[:, :, None], 3, axis=2)
    elif encoding in ("mono16", "16UC1"):
        values = grey(rgb).astype(np.uint16) * 256 + 100  # asymmetric bytes: endianness matters
        rows = values.astype(">u2" if bigendian else "<u2").view(np.uint8).reshape(h, -1)
        scaled = ((values.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
        expected = np.repeat(scaled[:, :, None], 3, axis=2)
    elif encoding in ("yuv422", "uyvy", "yuv422_yuy2"):
        y, u, v = _yuv(rgb)
        u2 = ((u[:, 0::2].astype(np.uint16) + u[:, 1::2]) // 2).astype(np.uint8)
        v2 = ((v[:, 0::2].astype(np.uint16) + v[:, 1::2]) // 2).astype(np.uint8)
        quads = (np.stack([u2, y[:, 0::2], v2, y[:, 1::2]], axis=2) if encoding != "yuv422_yuy2"
                 else np.stack([y[:, 0::2], u2, y[:, 1::2], v2], axis=2))
        rows = quads.reshape(h, -1)
    elif encoding.startswith("bayer_"):
        pattern = encoding[6:10]
        rows = np.zeros((h, w), np.uint8)
        for dy in range(2):
            for dx in range(2):
                rows[dy::2, dx::2] = rgb[dy::2, dx::2, _BAYER_CHANNEL[pattern[2 * dy + dx]]]
    else:
        raise ValueError(encoding)
    rows = np.ascontiguousarray(rows)
    if padding:
        rows = np.concatenate([rows, np.full((h, padding), 0xAB, np.uint8)], axis=1)
    return rows.shape[1], rows.tobytes(), expected
