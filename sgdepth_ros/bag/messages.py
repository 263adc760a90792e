"""numpy → rosbags message objects (sensor_msgs, tf2_msgs) for writing bags, without rclpy.

Every builder takes the typestore (``rosbags.typesys.get_typestore(Stores.ROS2_JAZZY)``) and
returns an instance of its generated dataclass, ready for ``typestore.serialize_cdr``. All
payloads are little-endian and unpadded (``step = width × bytes per pixel``).
"""
from __future__ import annotations

import cv2
import numpy as np

from .transforms import check_quaternion, check_translation

NS_PER_S = 1_000_000_000
_MAX_STAMP_NS = (2**31) * NS_PER_S  # builtin_interfaces/Time.sec is int32

# encoding → (channels, little-endian dtype) of the Image payload
IMAGE_ENCODINGS: dict[str, tuple[int, str]] = {
    "rgb8": (3, "u1"), "bgr8": (3, "u1"), "mono8": (1, "u1"), "16UC1": (1, "<u2"), "32FC1": (1, "<f4"),
}
COMPRESSED_FORMATS = ("jpeg", "png")
PNG_LEVEL = 3  # compressed_image_transport's default png_level
# distortion model → number of coefficients in D when none are given
DEFAULT_D_LENGTH = {"plumb_bob": 5, "rational_polynomial": 8, "equidistant": 4}


def header(types, stamp_ns: int, frame_id: str):
    """std_msgs/Header for ``stamp_ns`` (int nanoseconds since the epoch, 0 ≤ stamp < 2³¹ s)."""
    stamp_ns = check_stamp(stamp_ns)
    if not isinstance(frame_id, str):
        raise TypeError(f"frame_id must be a str, got {type(frame_id).__name__}")
    sec, nanosec = divmod(stamp_ns, NS_PER_S)
    return types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec), frame_id=frame_id)


def check_stamp(stamp_ns) -> int:
    """An integer nanosecond stamp (numpy integers accepted; floats refused) in [0, 2³¹ s)."""
    if isinstance(stamp_ns, (bool, np.bool_)) or not isinstance(stamp_ns, (int, np.integer)):
        raise TypeError(f"stamp_ns must be an integer number of nanoseconds, got {stamp_ns!r}")
    stamp_ns = int(stamp_ns)
    if not 0 <= stamp_ns < _MAX_STAMP_NS:
        raise ValueError(f"stamp_ns {stamp_ns} outside [0, 2^31 s) (builtin_interfaces/Time range)")
    return stamp_ns


def image(types, stamp_ns: int, frame_id: str, array: np.ndarray, encoding: str):
    """sensor_msgs/Image from an array.

    Args:
        array: rgb8 / bgr8: HxWx3 uint8 **RGB** (for bgr8 the channels are reversed here, so the
            payload holds B, G, R); mono8: HxW uint8; 16UC1: HxW uint16; 32FC1: HxW floating
            (cast to float32, NaN/inf kept, e.g. depth in metres with NaN = invalid).
        encoding: one of :data:`IMAGE_ENCODINGS`.
    """
    if encoding not in IMAGE_ENCODINGS:
        raise ValueError(f"unsupported encoding {encoding!r}; choose one of {', '.join(IMAGE_ENCODINGS)}")
    channels, dtype = IMAGE_ENCODINGS[encoding]
    array = np.asarray(array)
    expected_shape = "HxWx3" if channels == 3 else "HxW"
    if array.ndim != (3 if channels == 3 else 2) or (channels == 3 and array.shape[2] != 3):
        raise ValueError(f"{encoding} needs an {expected_shape} array, got shape {array.shape}")
    if encoding == "32FC1":
        if not np.issubdtype(array.dtype, np.floating):
            raise ValueError(f"32FC1 needs a floating array, got {array.dtype}")
    elif (array.dtype.kind, array.dtype.itemsize) != (np.dtype(dtype).kind, np.dtype(dtype).itemsize):
        raise ValueError(f"{encoding} needs a {np.dtype(dtype).name} array, got {array.dtype}")
    if encoding == "bgr8":
        array = array[:, :, ::-1]
    height, width = array.shape[:2]
    if height == 0 or width == 0:
        raise ValueError(f"image of shape {array.shape} is empty")
    payload = np.ascontiguousarray(array, dtype=dtype)
    return types["sensor_msgs/msg/Image"](
        header=header(types, stamp_ns, frame_id), height=height, width=width, encoding=encoding,
        is_bigendian=0, step=width * payload.itemsize * channels,
        data=np.frombuffer(payload.tobytes(), np.uint8))


def compressed_image(types, stamp_ns: int, frame_id: str, rgb: np.ndarray, fmt: str = "jpeg",
                     quality: int = 90):
    """sensor_msgs/CompressedImage of an HxWx3 uint8 RGB array, as compressed_image_transport writes it.

    The payload is a colour (B,G,R-ordered, as every decoder expects) JPEG or PNG; ``format`` is
    ``"rgb8; jpeg compressed bgr8"`` or ``"rgb8; png compressed bgr8"``. ``quality`` (1..100)
    is the JPEG quality; PNG is lossless and always uses compression level 3.
    """
    if fmt not in COMPRESSED_FORMATS:
        raise ValueError(f"unsupported compressed format {fmt!r}; choose one of {', '.join(COMPRESSED_FORMATS)}")
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.size == 0:
        raise ValueError(f"compressed image needs an HxWx3 uint8 RGB array, got {rgb.shape} {rgb.dtype}")
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
        raise ValueError(f"quality must be an integer in 1..100, got {quality!r}")
    params = ([cv2.IMWRITE_JPEG_QUALITY, int(quality)] if fmt == "jpeg"
              else [cv2.IMWRITE_PNG_COMPRESSION, PNG_LEVEL])
    ok, encoded = cv2.imencode(f".{'jpg' if fmt == 'jpeg' else 'png'}",
                               np.ascontiguousarray(rgb[:, :, ::-1]), params)
    if not ok:
        raise RuntimeError(f"OpenCV failed to encode a {rgb.shape} image as {fmt}")
    return types["sensor_msgs/msg/CompressedImage"](
        header=header(types, stamp_ns, frame_id), format=f"rgb8; {fmt} compressed bgr8",
        data=np.ascontiguousarray(encoded.reshape(-1), dtype=np.uint8))


def camera_info(types, stamp_ns: int, frame_id: str, K, width: int, height: int, P=None,
                distortion_model: str = "plumb_bob", D=None):
    """sensor_msgs/CameraInfo.

    Args:
        K: 3x3 intrinsics in pixels (fx, fy, cx, cy) for a ``width`` x ``height`` image.
        P: 3x4 projection in pixels; default ``[K | 0]`` (monocular, rectified = raw).
        D: distortion coefficients; default zeros of the model's length (plumb_bob: 5,
            rational_polynomial: 8, equidistant: 4).
    R is the identity; binning 0 and an empty ROI (full image).
    """
    K = _finite(K, (3, 3), "K")
    P = np.hstack([K, np.zeros((3, 1))]) if P is None else _finite(P, (3, 4), "P")
    if D is None:
        D = np.zeros(DEFAULT_D_LENGTH.get(distortion_model, 5))
    D = np.asarray(D, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(D)):
        raise ValueError(f"D must be finite, got {D}")
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    roi = types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return types["sensor_msgs/msg/CameraInfo"](
        header=header(types, stamp_ns, frame_id), height=int(height), width=int(width),
        distortion_model=distortion_model, d=D, k=K.reshape(-1), r=np.eye(3).reshape(-1), p=P.reshape(-1),
        binning_x=0, binning_y=0, roi=roi)


def tf_message(types, stamp_ns: int, transforms):
    """tf2_msgs/TFMessage from ``(parent, child, translation xyz m, quaternion xyzw)`` tuples."""
    stamped = []
    for item in transforms:
        try:
            parent, child, translation, quaternion = item
        except (TypeError, ValueError):
            raise ValueError(f"a transform is (parent, child, translation, quaternion), got {item!r}") from None
        if not parent or not child or not isinstance(parent, str) or not isinstance(child, str):
            raise ValueError(f"parent and child frame ids must be non-empty strings, got {parent!r}, {child!r}")
        x, y, z = check_translation(translation)
        qx, qy, qz, qw = check_quaternion(quaternion)
        transform = types["geometry_msgs/msg/Transform"](
            translation=types["geometry_msgs/msg/Vector3"](x=x, y=y, z=z),
            rotation=types["geometry_msgs/msg/Quaternion"](x=qx, y=qy, z=qz, w=qw))
        stamped.append(types["geometry_msgs/msg/TransformStamped"](
            header=header(types, stamp_ns, parent), child_frame_id=child, transform=transform))
    if not stamped:
        raise ValueError("no transforms given")
    return types["tf2_msgs/msg/TFMessage"](transforms=stamped)


def point_cloud(types, stamp_ns: int, frame_id: str, xyz, extra_fields=None):
    """sensor_msgs/PointCloud2, unorganised (height 1, width N), little-endian, unpadded, is_dense False.

    Args:
        xyz: [N, 3] finite-or-NaN coordinates in metres in ``frame_id`` → float32 ``x``, ``y``, ``z`` at
            offsets 0, 4, 8 (point_step 12).
        extra_fields: None, or ``{"intensity": [N] array}`` → float32 ``intensity`` at offset 12
            (point_step 16).
    """
    xyz = np.asarray(xyz)
    if xyz.ndim != 2 or xyz.shape[1] != 3 or not np.issubdtype(xyz.dtype, np.number):
        raise ValueError(f"point cloud needs an [N, 3] numeric array, got shape {xyz.shape} {xyz.dtype}")
    extra_fields = dict(extra_fields or {})
    unknown = sorted(set(extra_fields) - {"intensity"})
    if unknown:
        raise ValueError(f"unsupported extra point fields {unknown}; only 'intensity' is supported")
    names = ["x", "y", "z"]
    columns = [xyz[:, 0], xyz[:, 1], xyz[:, 2]]
    if "intensity" in extra_fields:
        intensity = np.asarray(extra_fields["intensity"])
        if intensity.shape != (xyz.shape[0],) or not np.issubdtype(intensity.dtype, np.number):
            raise ValueError(f"intensity must be a numeric [{xyz.shape[0]}] array, got shape {intensity.shape}")
        names.append("intensity")
        columns.append(intensity)
    payload = np.ascontiguousarray(np.stack(columns, axis=1), dtype="<f4")
    point_step = 4 * len(names)
    fields = [types["sensor_msgs/msg/PointField"](
        name=name, offset=4 * i, datatype=types["sensor_msgs/msg/PointField"].FLOAT32, count=1)
        for i, name in enumerate(names)]
    width = xyz.shape[0]
    return types["sensor_msgs/msg/PointCloud2"](
        header=header(types, stamp_ns, frame_id), height=1, width=width, fields=fields,
        is_bigendian=False, point_step=point_step, row_step=point_step * width,
        data=np.frombuffer(payload.tobytes(), np.uint8), is_dense=False)


def _finite(value, shape: tuple[int, ...], name: str) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if array.size != int(np.prod(shape)) or not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be a finite {'x'.join(map(str, shape))} matrix, got {value!r}")
    return array.reshape(shape)
