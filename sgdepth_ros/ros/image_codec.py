"""sensor_msgs/Image and CompressedImage payloads ⇄ numpy, without cv_bridge (ROS-free).

Decoding works on the message's fields, so it is testable without rclpy, and honours ``step``
row padding and ``is_bigendian``. Every rejection raises :class:`InputError` whose ``kind`` is
the counter name the node reports in its diagnostics.

CompressedImage payloads: only JPEG and PNG are decoded, recognised by their magic bytes whatever the
``format`` string says (tools write e.g. "rgb8; jpeg compressed bgr8" for either); anything else (TIFF,
WebP, compressedDepth, …) is rejected as ``unsupported_compressed``. The size declared in the header is
checked against ``max_pixels`` before decoding (:func:`sgdepth_ros.imageio.read_header`), so a tiny payload
claiming a huge image costs no memory.
"""
from __future__ import annotations

import array as _array

import cv2
import numpy as np

from ..imageio import HeaderError, read_header
from ..preprocess import as_rgb8

# encoding → (bytes per pixel, pixel layout)
ENCODINGS: dict[str, tuple[int, str]] = {
    "rgb8": (3, "rgb"), "bgr8": (3, "bgr"), "rgba8": (4, "rgba"), "bgra8": (4, "bgra"),
    "mono8": (1, "mono8"), "8UC1": (1, "mono8"), "mono16": (2, "mono16"), "16UC1": (2, "mono16"),
    "yuv422": (2, "uyvy"), "uyvy": (2, "uyvy"), "yuv422_yuy2": (2, "yuy2"), "yuyv": (2, "yuy2"),
    # ROS names the Bayer pattern by its first row, OpenCV by the second row's first two pixels
    "bayer_rggb8": (1, "bayer_rggb"), "bayer_bggr8": (1, "bayer_bggr"),
    "bayer_gbrg8": (1, "bayer_gbrg"), "bayer_grbg8": (1, "bayer_grbg"),
}
_CV_CONVERSIONS = {
    "uyvy": cv2.COLOR_YUV2RGB_UYVY, "yuy2": cv2.COLOR_YUV2RGB_YUY2,
    "bayer_rggb": cv2.COLOR_BayerBG2RGB, "bayer_bggr": cv2.COLOR_BayerRG2RGB,
    "bayer_gbrg": cv2.COLOR_BayerGR2RGB, "bayer_grbg": cv2.COLOR_BayerGB2RGB,
}
# channel reorderings and grey → RGB (exact byte moves)
_CV_REORDER = {"bgr": cv2.COLOR_BGR2RGB, "rgba": cv2.COLOR_RGBA2RGB, "bgra": cv2.COLOR_BGRA2RGB,
               "mono8": cv2.COLOR_GRAY2RGB}
DEFAULT_MAX_PIXELS = 4096 * 4096
# CompressedImage payloads decoded: name → (magic bytes at offset 0, Pillow format name)
COMPRESSED_FORMATS = {"jpeg": (b"\xff\xd8\xff", "JPEG"), "png": (b"\x89PNG\r\n\x1a\n", "PNG")}
# recognised only to name them in the rejection: (magic, offset, name)
_OTHER_MAGIC = ((b"II*\x00", 0, "TIFF"), (b"MM\x00*", 0, "TIFF"), (b"WEBP", 8, "WebP"), (b"BM", 0, "BMP"),
                (b"GIF8", 0, "GIF"), (b"\x00\x00\x00\x0cjP", 0, "JPEG 2000"), (b"\x89PNG", 12, "compressedDepth PNG"))


class InputError(ValueError):
    """A message that cannot be used; ``kind`` names the counter (e.g. ``short_data``)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def check_size(width: int, height: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """Reject zero or absurd image sizes before any buffer is touched."""
    if width <= 0 or height <= 0:
        raise InputError("bad_size", f"image size {width}x{height} is empty")
    if width * height > max_pixels:
        raise InputError("bad_size", f"image size {width}x{height} exceeds max_image_pixels={max_pixels}")


def decode_image(encoding: str, width: int, height: int, step: int, is_bigendian: bool,
                 data: bytes | bytearray | memoryview | np.ndarray,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A raw Image payload → HxWx3 uint8 RGB.

    ``data`` is viewed, not copied, where the layout allows (rgb8 without padding). 16-bit grey
    is scaled 65535 → 255; channel orders, grey, YUV 4:2:2 and Bayer are converted with OpenCV (Bayer: bilinear),
    which reads padded rows in place.
    """
    if encoding not in ENCODINGS:
        raise InputError("unknown_encoding",
                         f"unsupported encoding {encoding!r}; supported: {', '.join(sorted(ENCODINGS))}")
    check_size(width, height, max_pixels)
    bpp, layout = ENCODINGS[encoding]
    buffer = np.frombuffer(data, np.uint8) if not isinstance(data, np.ndarray) else data.view(np.uint8).ravel()
    if buffer.size == 0:
        raise InputError("empty_data", f"{width}x{height} {encoding} image carries no data")
    if step < width * bpp:
        raise InputError("bad_step", f"step {step} < width {width} × {bpp} bytes per pixel ({encoding})")
    if buffer.size < step * height:
        raise InputError("short_data", f"{buffer.size} bytes of data < step {step} × height {height}")
    if layout.startswith(("uyvy", "yuy2")) and width % 2:
        raise InputError("bad_size", f"{encoding} needs an even width, got {width}")
    rows = buffer[: step * height].reshape(height, step)[:, : width * bpp]
    if layout == "mono16":
        dtype = np.dtype(">u2" if is_bigendian else "<u2")
        grey = np.ascontiguousarray(rows).view(dtype).reshape(height, width)
        return as_rgb8(grey.astype(np.uint16, copy=False))
    pixels = rows.reshape(height, width, bpp)
    if layout == "rgb":
        return pixels
    if layout in _CV_REORDER:  # OpenCV reads the padded rows in place: ~25× faster than a numpy reordering copy
        return cv2.cvtColor(pixels if bpp > 1 else pixels[:, :, 0], _CV_REORDER[layout])
    return cv2.cvtColor(np.ascontiguousarray(pixels if bpp > 1 else pixels[:, :, 0]), _CV_CONVERSIONS[layout])


def compressed_kind(buffer: np.ndarray) -> str | None:
    """"jpeg" or "png" from a payload's magic bytes, else None."""
    head = buffer[:16].tobytes()
    return next((name for name, (magic, _) in COMPRESSED_FORMATS.items() if head.startswith(magic)), None)


def _describe_payload(head: bytes) -> str:
    for magic, offset, name in _OTHER_MAGIC:
        if head[offset:offset + len(magic)] == magic:
            return f"a {name} payload"
    return f"a payload starting with bytes {head[:8].hex(' ')}"


def decode_compressed(data: bytes | bytearray | memoryview | np.ndarray,
                      max_pixels: int = DEFAULT_MAX_PIXELS, format: str = "") -> np.ndarray:
    """A CompressedImage payload → HxWx3 uint8 RGB.

    JPEG or PNG by magic bytes (``format``, the message's string, is only quoted in errors); the header's size
    is checked (``bad_size``) before any pixel is decoded. Raises InputError: ``empty_data``,
    ``unsupported_compressed`` (another codec), ``corrupt_compressed`` (unreadable header or data), ``bad_size``.
    """
    buffer = np.frombuffer(data, np.uint8) if not isinstance(data, np.ndarray) else data.view(np.uint8).ravel()
    if buffer.size == 0:
        raise InputError("empty_data", "compressed image carries no data")
    kind = compressed_kind(buffer)
    if kind is None:
        raise InputError("unsupported_compressed", f"{_describe_payload(buffer[:16].tobytes())} (format "
                                                   f"{format!r}): only JPEG and PNG payloads are decoded")
    try:
        header = read_header(buffer, (COMPRESSED_FORMATS[kind][1],))
    except HeaderError as error:
        raise InputError("corrupt_compressed", f"{kind} payload: {error}") from None
    check_size(header.width, header.height, max_pixels)
    image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise InputError("corrupt_compressed", f"{kind} payload of {buffer.size} bytes does not decode")
    if image.shape[:2] != (header.height, header.width):
        raise InputError("corrupt_compressed", f"{kind} payload decoded to {image.shape[1]}x{image.shape[0]}, "
                                               f"its header declares {header.width}x{header.height}")
    if image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    elif image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return as_rgb8(image)


def message_buffer(shape: tuple[int, ...], dtype=np.uint8) -> np.ndarray:
    """A new zeroed C-contiguous array of ``shape`` and ``dtype`` whose memory is an ``array.array('B')``, the type
    an rclpy message keeps in ``data``: render into it (``out=`` / OpenCV ``dst=``) and :func:`encode_image` hands
    that buffer to the message without copying the pixels."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    return np.frombuffer(_array.array("B", b"\0") * size, dtype).reshape(shape)


def _whole_buffer(array: np.ndarray) -> _array.array | None:
    """The ``array.array('B')`` that ``array`` spans exactly (made by :func:`message_buffer`), else None."""
    base = array
    while isinstance(base, np.ndarray):
        base = base.base
    owner = base.obj if isinstance(base, memoryview) else None
    if (isinstance(owner, _array.array) and owner.typecode == "B" and array.flags.c_contiguous
            and array.nbytes == len(owner) and array.ctypes.data == owner.buffer_info()[0]):
        return owner
    return None


def encode_image(array: np.ndarray) -> tuple[str, int, int, int, _array.array]:
    """HxW float32 / uint8 or HxWx3 uint8 → (encoding, height, width, step, data) for an Image.

    float32 → 32FC1, uint8 HxW → mono8, uint8 HxWx3 → rgb8 (little-endian, no padding). ``data`` is an
    ``array.array('B')`` (a bytes-like buffer), the type an rclpy message stores in ``data``: the array's own
    buffer when it was made by :func:`message_buffer` (no copy), else one copy of its pixels.
    """
    if array.dtype == np.float32 and array.ndim == 2:
        encoding = "32FC1"
    elif array.dtype == np.uint8 and array.ndim == 2:
        encoding = "mono8"
    elif array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 3:
        encoding = "rgb8"
    else:
        raise ValueError(f"cannot encode an array of shape {array.shape} and type {array.dtype}")
    array = np.ascontiguousarray(array)
    height, width = array.shape[:2]
    data = _whole_buffer(array)
    if data is None:
        data = _array.array("B")
        data.frombytes(array.reshape(-1).view(np.uint8))
    return encoding, height, width, array.strides[0], data


# single-channel encodings → numpy dtype of one pixel (little-endian; flipped by is_bigendian)
SCALAR_ENCODINGS: dict[str, str] = {"32FC1": "<f4", "16UC1": "<u2", "mono16": "<u2", "mono8": "u1", "8UC1": "u1"}


def decode_scalar_image(encoding: str, width: int, height: int, step: int, is_bigendian: bool,
                        data: bytes | bytearray | memoryview | np.ndarray,
                        max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A single-channel Image payload (depth 32FC1 / 16UC1, labels mono8) → HxW array in its native type.

    Returns float32 (32FC1), uint16 (16UC1, mono16) or uint8 (mono8, 8UC1), native byte order, a copy.
    Honours ``step`` row padding and ``is_bigendian``; raises :class:`InputError` like :func:`decode_image`.
    """
    if encoding not in SCALAR_ENCODINGS:
        raise InputError("unknown_encoding", f"expected a single-channel image ({', '.join(SCALAR_ENCODINGS)}), "
                                             f"got encoding {encoding!r}")
    check_size(width, height, max_pixels)
    dtype = np.dtype(SCALAR_ENCODINGS[encoding])
    if is_bigendian and dtype.itemsize > 1:
        dtype = dtype.newbyteorder(">")
    buffer = np.frombuffer(data, np.uint8) if not isinstance(data, np.ndarray) else data.view(np.uint8).ravel()
    if step < width * dtype.itemsize:
        raise InputError("bad_step", f"step {step} < width {width} × {dtype.itemsize} bytes per pixel ({encoding})")
    if buffer.size < step * height:
        raise InputError("short_data", f"{buffer.size} bytes of data < step {step} × height {height}")
    rows = buffer[: step * height].reshape(height, step)[:, : width * dtype.itemsize]
    return np.ascontiguousarray(rows).view(dtype).reshape(height, width).astype(dtype.newbyteorder("="))


def image_message_to_rgb(msg, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A sensor_msgs/Image (rclpy or rosbags object: only its fields are read) → HxWx3 uint8 RGB."""
    return decode_image(msg.encoding, msg.width, msg.height, msg.step, bool(msg.is_bigendian), msg.data, max_pixels)


def scalar_message_to_array(msg, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A single-channel sensor_msgs/Image (rclpy or rosbags object) → HxW array (see :func:`decode_scalar_image`)."""
    return decode_scalar_image(msg.encoding, msg.width, msg.height, msg.step, bool(msg.is_bigendian), msg.data,
                               max_pixels)
