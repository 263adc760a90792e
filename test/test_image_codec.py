"""Image / CompressedImage payload decoding: every encoding, row padding, endianness, every rejection."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from ros_payloads import ALL_ENCODINGS, encode, smooth_rgb
from sgdepth_ros.ros.image_codec import InputError, decode_compressed, decode_image, encode_image

RGB = smooth_rgb(64, 48)
# demosaicing / 4:2:2 chroma are approximations: mean error bounds per family
TOLERANCE = {"yuv": 3.0, "bayer": 4.0}


@pytest.mark.parametrize("encoding", ALL_ENCODINGS)
@pytest.mark.parametrize("padding", [0, 5])
def test_every_encoding_decodes_to_the_image(encoding, padding):
    step, data, expected = encode(RGB, encoding, padding)
    out = decode_image(encoding, 64, 48, step, False, data)
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8
    error = np.abs(out.astype(np.int16) - expected).mean()
    family = "yuv" if ("yuv" in encoding or encoding == "uyvy") else "bayer" if "bayer" in encoding else None
    if family is None:
        np.testing.assert_array_equal(out, expected)
    else:
        assert error < TOLERANCE[family], f"{encoding}: mean error {error:.2f}"


def test_bayer_patterns_are_not_confused():
    """A flat colour must come back as that colour for each pattern (a swapped pattern turns red into blue)."""
    flat = np.zeros((8, 8, 3), np.uint8) + np.array([200, 100, 30], np.uint8)
    for encoding in [e for e in ALL_ENCODINGS if e.startswith("bayer")]:
        step, data, _ = encode(flat, encoding)
        np.testing.assert_array_equal(decode_image(encoding, 8, 8, step, False, data)[4, 4], [200, 100, 30])


@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
def test_big_endian_16_bit(encoding):
    step, data, expected = encode(RGB, encoding, bigendian=True)
    np.testing.assert_array_equal(decode_image(encoding, 64, 48, step, True, data), expected)
    # read as little-endian the same bytes give a different image: the flag is honoured
    assert not np.array_equal(decode_image(encoding, 64, 48, step, False, data), expected)


@pytest.mark.parametrize("kwargs, kind", [
    (dict(data=b""), "empty_data"),
    (dict(data=bytes(64 * 3 * 47)), "short_data"),
    (dict(step=64 * 3 - 1), "bad_step"),
    (dict(width=0), "bad_size"),
    (dict(height=0), "bad_size"),
    (dict(width=100000, height=100000, step=300000), "bad_size"),
    (dict(encoding="32FC1"), "unknown_encoding"),
    (dict(encoding="nonsense"), "unknown_encoding"),
])
def test_rejections_name_their_kind(kwargs, kind):
    args = dict(encoding="rgb8", width=64, height=48, step=64 * 3, is_bigendian=False, data=RGB.tobytes())
    args.update(kwargs)
    with pytest.raises(InputError) as err:
        decode_image(**args)
    assert err.value.kind == kind
    assert str(err.value)  # a readable reason


def test_odd_width_yuv_is_rejected():
    with pytest.raises(InputError) as err:
        decode_image("yuv422", 5, 2, 10, False, bytes(20))
    assert err.value.kind == "bad_size"


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_compressed_payloads(ext):
    ok, payload = cv2.imencode(ext, cv2.cvtColor(RGB, cv2.COLOR_RGB2BGR))
    out = decode_compressed(payload.tobytes())
    assert out.shape == RGB.shape
    assert np.abs(out.astype(np.int16) - RGB).mean() < (0.01 if ext == ".png" else 4.0)


def test_compressed_16_bit_png_and_grey():
    grey16 = (np.arange(48 * 64, dtype=np.uint16).reshape(48, 64) * 20)
    ok, payload = cv2.imencode(".png", grey16)
    out = decode_compressed(payload.tobytes())
    assert out.shape == (48, 64, 3)
    np.testing.assert_array_equal(out[:, :, 0], ((grey16.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8))


@pytest.mark.parametrize("payload, kind", [(b"", "empty_data"), (b"\xff\xd8\xff\xe0garbage" * 10, "corrupt_compressed"),
                                           (b"\x89PNG\r\n\x1a\n" + bytes(50), "corrupt_compressed")])
def test_corrupt_compressed(payload, kind):
    with pytest.raises(InputError) as err:
        decode_compressed(payload)
    assert err.value.kind == kind


def test_encode_image_round_trip():
    depth = np.linspace(1, 50, 12, dtype=np.float32).reshape(3, 4)
    encoding, h, w, step, data = encode_image(depth)
    assert (encoding, h, w, step) == ("32FC1", 3, 4, 16)
    np.testing.assert_array_equal(np.frombuffer(data, np.float32).reshape(3, 4), depth)
    assert encode_image(RGB)[0] == "rgb8" and encode_image(RGB[:, :, 0])[0] == "mono8"
    np.testing.assert_array_equal(decode_image("rgb8", 64, 48, 192, False, encode_image(RGB)[4]), RGB)
    with pytest.raises(ValueError):
        encode_image(np.zeros((2, 2), np.int64))
