"""Compressed payloads and image files: only JPEG/PNG by magic bytes, and sizes checked from the header before any
pixel memory is spent (a 630-byte JPEG claiming 30000×30000, a PNG claiming 20000×20000)."""
from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from sgdepth_ros.imageio import ImageReadError, ImageTooLargeError, read_header, read_rgb
from sgdepth_ros.ros.image_codec import InputError, decode_compressed

RGB = (np.arange(48 * 64 * 3) % 251).astype(np.uint8).reshape(48, 64, 3)


def jpeg_claiming(width: int, height: int) -> bytes:
    """A valid tiny baseline JPEG whose SOF0 header is patched to declare width x height (a decompression bomb)."""
    ok, buf = cv2.imencode(".jpg", np.zeros((16, 16, 3), np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 10])
    data = bytearray(buf.tobytes())
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose IHDR (with a correct CRC) declares width x height."""
    ok, buf = cv2.imencode(".png", np.zeros((4, 4), np.uint8))
    data = bytearray(buf.tobytes())
    struct.pack_into(">II", data, 16, width, height)  # IHDR data starts at byte 16
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def encoded(ext: str, image: np.ndarray = RGB) -> bytes:
    return cv2.imencode(ext, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))[1].tobytes()


# ---- which payloads are decoded --------------------------------------------------------------------------------
@pytest.mark.parametrize("ext, fmt", [(".png", "jpeg"), (".png", "rgb8; jpeg compressed bgr8"), (".jpg", "png"),
                                      (".jpg", "")])
def test_jpeg_and_png_are_recognised_by_magic_whatever_format_says(ext, fmt):
    out = decode_compressed(encoded(ext), format=fmt)
    assert out.shape == RGB.shape
    assert np.abs(out.astype(np.int16) - RGB).mean() < (0.01 if ext == ".png" else 6.0)


@pytest.mark.parametrize("ext, name", [(".tiff", "TIFF"), (".webp", "WebP"), (".bmp", "BMP")])
def test_other_codecs_are_rejected_even_when_format_says_jpeg(ext, name):
    payload = encoded(ext)
    assert cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_UNCHANGED) is not None  # OpenCV would decode it
    with pytest.raises(InputError) as error:
        decode_compressed(payload, format="jpeg")
    assert error.value.kind == "unsupported_compressed"
    assert name in str(error.value) and "'jpeg'" in str(error.value) and "only JPEG and PNG" in str(error.value)


def test_compressed_depth_payload_is_rejected():
    payload = bytes(12) + encoded(".png")  # image_transport's compressedDepth: a 12-byte header, then PNG
    with pytest.raises(InputError) as error:
        decode_compressed(payload, format="16UC1; compressedDepth png")
    assert error.value.kind == "unsupported_compressed"


# ---- sizes from the header ----------------------------------------------------------------------------------------
def test_header_sizes_are_read_without_decoding():
    assert read_header(jpeg_claiming(30000, 30000)) == read_header(jpeg_claiming(30000, 30000), ("JPEG",))
    header = read_header(jpeg_claiming(12345, 678))
    assert (header.format, header.width, header.height) == ("JPEG", 12345, 678)
    header = read_header(png_claiming(20000, 20000))
    assert (header.format, header.width, header.height, header.pixels) == ("PNG", 20000, 20000, 400_000_000)


@pytest.mark.parametrize("payload", [jpeg_claiming(30000, 30000), jpeg_claiming(8000, 8000),
                                     png_claiming(20000, 20000), png_claiming(5000, 4000)])
def test_a_header_declaring_too_many_pixels_is_rejected_as_bad_size(payload):
    with pytest.raises(InputError) as error:
        decode_compressed(payload)  # default max_image_pixels: 4096²
    assert error.value.kind == "bad_size" and "16777216" in str(error.value)


def test_a_header_within_the_limit_still_decodes():
    out = decode_compressed(encoded(".jpg", np.zeros((300, 500, 3), np.uint8)), max_pixels=500 * 300)
    assert out.shape == (300, 500, 3)
    with pytest.raises(InputError) as error:
        decode_compressed(encoded(".jpg", np.zeros((300, 500, 3), np.uint8)), max_pixels=500 * 300 - 1)
    assert error.value.kind == "bad_size"


_CHILD = r"""
import json, sys
from pathlib import Path


def peak_kb():  # VmHWM: this process image's peak RSS (ru_maxrss would include the parent's, inherited at fork)
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM:")).split()[1])


from sgdepth_ros.imageio import ImageReadError, read_rgb
from sgdepth_ros.ros.image_codec import InputError, decode_compressed
payload = Path(sys.argv[1]).read_bytes()
before = peak_kb()
try:
    if sys.argv[2] == "codec":
        decode_compressed(payload)
    else:
        read_rgb(sys.argv[1])
    outcome = "decoded"
except (InputError, ImageReadError) as error:
    outcome = f"{type(error).__name__}: {getattr(error, 'kind', '')} {error}"
after = peak_kb()
print(json.dumps({"outcome": outcome, "before_kb": before, "after_kb": after}))
"""


@pytest.mark.parametrize("name, payload, path", [
    ("jpeg 30000x30000", jpeg_claiming(30000, 30000), "codec"),
    ("jpeg 8000x8000", jpeg_claiming(8000, 8000), "codec"),
    ("png 20000x20000", png_claiming(20000, 20000), "file"),
    ("jpeg 9000x9000", jpeg_claiming(9000, 9000), "file"),
])
def test_a_decompression_bomb_costs_no_memory(tmp_path, name, payload, path):
    """Peak RSS of a fresh process that is handed the bomb grows by < 64 MB (decoding would take ≥ 190 MB; the
    30000×30000 JPEG made the old code allocate ~5 GB)."""
    bomb = tmp_path / ("bomb.png" if name.startswith("png") else "bomb.jpg")
    bomb.write_bytes(payload)
    run = subprocess.run([sys.executable, "-c", _CHILD, str(bomb), path], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["outcome"] != "decoded", result
    assert ("bad_size" in result["outcome"]) if path == "codec" else ("ImageTooLargeError" in result["outcome"])
    grown_mb = (result["after_kb"] - result["before_kb"]) / 1024
    assert grown_mb < 64, f"{name}: peak RSS grew by {grown_mb:.0f} MB"


def test_image_files_are_checked_from_the_header_and_named(tmp_path):
    bomb = tmp_path / "huge.png"
    bomb.write_bytes(png_claiming(20000, 20000))
    with pytest.raises(ImageTooLargeError) as error:
        read_rgb(bomb)
    message = str(error.value)
    assert isinstance(error.value, ValueError) and str(bomb) in message and "20000x20000" in message
    assert "400000000 pixels" in message and "limit" in message
    small = tmp_path / "small.png"
    small.write_bytes(encoded(".png"))
    np.testing.assert_array_equal(read_rgb(small), RGB)
    with pytest.raises(ImageTooLargeError, match="small.png"):
        read_rgb(small, max_pixels=64 * 48 - 1)
    for ext in (".tiff", ".webp", ".bmp"):  # files (not messages) keep every format Pillow and OpenCV read
        path = tmp_path / f"x{ext}"
        Image.fromarray(RGB).save(path)
        assert read_rgb(path).shape == RGB.shape
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    with pytest.raises(ImageReadError, match="junk.png"):
        read_rgb(junk)
