"""LiDAR ground truth for bag replay: decode a PointCloud2, parse camera←lidar, project to sparse depth.

Pure numpy (no rclpy): works on rosbags' and rclpy's message objects alike.

Frames: the cloud is in its own frame (metres; for a typical LiDAR x forward, y left, z up). The camera
frame is the REP 103 optical frame (x right, y down, z forward); ``camera_from_lidar`` is the 4x4 rigid
transform with ``p_cam = T @ p_lidar`` (homogeneous), i.e. the pose of the LiDAR in the camera frame.

Pixel convention (ROS / OpenCV, as CameraInfo is defined): pixel centres lie at integer coordinates, so
pixel (row i, column j) has its centre at (u, v) = (j, i) and covers u ∈ [j − 0.5, j + 0.5),
v ∈ [i − 0.5, i + 0.5); a projected point lands in column ``floor(u + 0.5)``, row ``floor(v + 0.5)``
(:mod:`sgdepth_ros.sparse_depth`, rounding "ros"). ``eval-depth --gt velodyne`` uses the KITTI devkit's rounding
instead, one pixel up and left of this one (named and tested there).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from ..bag.transforms import check_quaternion, quaternion_to_rotation
from ..sparse_depth import splat_depth

__all__ = ["POINT_FIELD_DTYPES", "cloud_to_xyz", "message_xyz", "parse_transform", "project_to_depth"]

# sensor_msgs/PointField datatype code → (name, numpy kind+size without byte order)
POINT_FIELD_DTYPES: dict[int, tuple[str, str]] = {
    1: ("INT8", "i1"), 2: ("UINT8", "u1"), 3: ("INT16", "i2"), 4: ("UINT16", "u2"),
    5: ("INT32", "i4"), 6: ("UINT32", "u4"), 7: ("FLOAT32", "f4"), 8: ("FLOAT64", "f8"),
}
_RIGID_TOL = 1e-6  # max |R·Rᵀ − I|, |det R − 1| and |last row − (0 0 0 1)| accepted
_FORMS = ('accepted forms: 7 numbers "x y z qx qy qz qw" (quaternion in x, y, z, w order), '
          '6 numbers "x y z roll pitch yaw" (radians, R = Rz(yaw)·Ry(pitch)·Rx(roll)), 16 numbers (row-major 4x4), '
          'or a .yaml/.yml/.json file with {translation: [x, y, z], rotation: [qx, qy, qz, qw]} or {matrix: 4x4}, '
          'optionally under a top-level key camera_from_lidar; numbers separated by spaces or commas')
_FILE_SUFFIXES = (".yaml", ".yml", ".json")


# -- PointCloud2 decoding -------------------------------------------------------------------------------------

def cloud_to_xyz(fields, point_step: int, width: int, height: int, is_bigendian: bool, data, *,
                 row_step: int | None = None) -> np.ndarray:
    """Decode a sensor_msgs/PointCloud2 payload into its x, y, z coordinates.

    Args:
        fields: PointField-like objects with ``name``, ``offset`` (bytes into a point), ``datatype``
            (1 INT8, 2 UINT8, 3 INT16, 4 UINT16, 5 INT32, 6 UINT32, 7 FLOAT32, 8 FLOAT64) and ``count``.
            Fields named ``x``, ``y``, ``z`` are required; any others (intensity, ring, time, …) are ignored.
        point_step: bytes per point (≥ the end of the x, y, z fields; padding allowed).
        width, height: points per row and rows (an unorganised cloud has height 1); N = width·height.
        is_bigendian: byte order of the payload.
        data: the payload: bytes, bytearray, memoryview, array.array, a uint8 numpy array or a list of ints;
            at least ``width·height·point_step`` bytes (extra trailing bytes are ignored).
        row_step: bytes per row when rows are padded (default ``width·point_step``).

    Returns:
        [M, 3] float64 (x, y, z) in metres in the cloud's frame, M ≤ N: points with any non-finite
        coordinate (NaN marks "no return" in dense-organised clouds) are dropped; order is kept.

    Raises:
        ValueError: a missing x/y/z field (naming the fields present), an unknown datatype, a field outside
        ``point_step``, a bad size, or a payload shorter than the cloud needs (bytes expected vs got).
    """
    point_step, width, height = (_non_negative_int(v, name) for v, name in
                                 ((point_step, "point_step"), (width, "width"), (height, "height")))
    row_step = width * point_step if row_step is None else _non_negative_int(row_step, "row_step")
    by_name = {}
    for field in fields:
        by_name.setdefault(getattr(field, "name", None), field)
    missing = [axis for axis in "xyz" if axis not in by_name]
    if missing:
        present = ", ".join(str(getattr(f, "name", "?")) for f in fields) or "none"
        raise ValueError(f"PointCloud2 has no {'/'.join(missing)} field; fields present: {present}")
    order = ">" if is_bigendian else "<"
    formats, offsets = [], []
    for axis in "xyz":
        field = by_name[axis]
        datatype, offset = int(field.datatype), int(field.offset)
        if datatype not in POINT_FIELD_DTYPES:
            raise ValueError(f"PointCloud2 field {axis!r} has unknown datatype {datatype} "
                             f"(expected 1..8: {', '.join(n for n, _ in POINT_FIELD_DTYPES.values())})")
        if int(getattr(field, "count", 1)) < 1:
            raise ValueError(f"PointCloud2 field {axis!r} has count {field.count}, expected ≥ 1")
        dtype = np.dtype(order + POINT_FIELD_DTYPES[datatype][1])
        if offset < 0 or offset + dtype.itemsize > point_step:
            raise ValueError(f"PointCloud2 field {axis!r} ({POINT_FIELD_DTYPES[datatype][0]} at offset {offset}) "
                             f"does not fit in point_step {point_step}")
        formats.append(dtype)
        offsets.append(offset)
    if row_step < width * point_step:
        raise ValueError(f"PointCloud2 row_step {row_step} < width {width} × point_step {point_step}")

    buffer = _as_bytes(data)
    count = width * height
    if count == 0:
        return np.zeros((0, 3), np.float64)
    expected = (height - 1) * row_step + width * point_step
    if buffer.size < expected:
        raise ValueError(f"PointCloud2 data too short: expected {expected} bytes "
                         f"({width}x{height} points of {point_step} bytes), got {buffer.size}")
    if row_step != width * point_step:  # drop the padding at the end of each row
        rows = np.lib.stride_tricks.as_strided(buffer, (height, width * point_step), (row_step, 1))
        buffer = np.ascontiguousarray(rows).reshape(-1)
    point_dtype = np.dtype({"names": ["x", "y", "z"], "formats": formats, "offsets": offsets,
                            "itemsize": point_step})
    points = np.frombuffer(buffer, dtype=point_dtype, count=count)
    xyz = np.stack([points["x"], points["y"], points["z"]], axis=1).astype(np.float64)
    return xyz[np.isfinite(xyz).all(axis=1)]


def message_xyz(msg) -> np.ndarray:
    """[M, 3] float64 x, y, z (metres, the cloud's frame; non-finite points dropped) of a PointCloud2 message.

    ``msg`` is any object with PointCloud2's attributes ``fields``, ``point_step``, ``width``, ``height``,
    ``is_bigendian``, ``data`` (and optionally ``row_step``): a rosbags or rclpy message. Raises ValueError
    for anything it cannot decode (see :func:`cloud_to_xyz`).
    """
    try:
        attributes = [getattr(msg, name) for name in
                      ("fields", "point_step", "width", "height", "is_bigendian", "data")]
    except AttributeError as error:
        raise ValueError(f"not a PointCloud2 message ({type(msg).__name__}): {error}") from None
    row_step = getattr(msg, "row_step", None)
    fields, point_step, width, height = attributes[:4]
    if row_step is not None and (int(height) <= 1 or int(row_step) < int(width) * int(point_step)):
        row_step = None  # a single row needs no row_step; a too-small one is a driver bug, assume packed rows
    try:
        return cloud_to_xyz(*attributes, row_step=row_step)
    except (TypeError, AttributeError) as error:
        raise ValueError(f"malformed PointCloud2 message: {error}") from error


def _non_negative_int(value, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"PointCloud2 {name} must be a non-negative integer, got {value!r}")
    return int(value)


def _as_bytes(data) -> np.ndarray:
    """The payload as a flat uint8 array (no copy for buffer-protocol objects)."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError:
        pass
    try:
        return np.asarray(data, dtype=np.uint8).reshape(-1)
    except (TypeError, ValueError) as error:
        raise ValueError(f"PointCloud2 data must be bytes or a sequence of uint8, got {type(data).__name__}") \
            from error


# -- camera ← lidar transform ---------------------------------------------------------------------------------

def parse_transform(spec: str) -> np.ndarray:
    """The 4x4 float64 rigid transform camera ← lidar from a string or a file.

    ``p_cam = T @ p_lidar`` maps homogeneous LiDAR-frame points into the camera optical frame (metres).

    Args:
        spec: one of
            * ``"x y z qx qy qz qw"``: translation (metres) and quaternion in ROS (x, y, z, w) order;
            * ``"x y z roll pitch yaw"``: radians, ROS fixed-axis RPY, ``R = Rz(yaw) @ Ry(pitch) @ Rx(roll)``;
            * 16 numbers: the matrix, row-major;
            * a path to a ``.yaml``/``.yml``/``.json`` file holding ``{"translation": [x, y, z], "rotation":
              [qx, qy, qz, qw]}`` or ``{"matrix": [[...], [...], [...], [...]]}``, optionally wrapped in a
              top-level ``camera_from_lidar`` key (YAML needs PyYAML; JSON always works).
            Numbers may be separated by spaces and/or commas (brackets are ignored).

    Raises:
        ValueError: unparsable input, a wrong count of numbers, a missing/invalid file, a quaternion that is
        not unit length, a rotation that is not proper (orthonormal, det +1, within 1e-6), a last row other
        than (0, 0, 0, 1), or non-finite values; the message names the spec and the accepted forms.
    """
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"camera←lidar transform must be a non-empty string, got {spec!r}; {_FORMS}")
    text = spec.strip()
    if text.lower().endswith(_FILE_SUFFIXES) or (not _looks_numeric(text) and _is_file(text)):
        return _transform_from_file(Path(text))
    numbers = _numbers(text, spec)
    if len(numbers) == 7:
        T = _from_translation_quaternion(numbers[:3], numbers[3:], repr(spec))
    elif len(numbers) == 6:
        T = np.eye(4)
        T[:3, :3] = _rpy_to_rotation(*numbers[3:])
        T[:3, 3] = numbers[:3]
    elif len(numbers) == 16:
        T = np.asarray(numbers, dtype=np.float64).reshape(4, 4)
    else:
        raise ValueError(f"camera←lidar transform {spec!r} has {len(numbers)} numbers; {_FORMS}")
    return _check_rigid(T, repr(spec))


def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except (OSError, ValueError):  # e.g. a name too long for the file system
        return False


def _looks_numeric(text: str) -> bool:
    return re.fullmatch(r"[\s,\[\]()0-9eE+\-.]*", text) is not None


def _numbers(text: str, spec) -> list[float]:
    tokens = [t for t in re.split(r"[\s,\[\]()]+", text) if t]
    try:
        return [float(t) for t in tokens]
    except ValueError:
        raise ValueError(f"camera←lidar transform {spec!r} is neither numbers nor a .yaml/.yml/.json file "
                         f"path; {_FORMS}") from None


def _transform_from_file(path: Path) -> np.ndarray:
    where = f"camera←lidar transform file {str(path)!r}"
    if not path.is_file():
        raise ValueError(f"{where} not found (does not exist or is not a file); {_FORMS}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{where} cannot be read: {error}") from error
    if path.suffix.lower() == ".json":
        try:
            content = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{where} is not valid JSON: {error}") from error
    else:
        try:
            import yaml
        except ImportError:
            raise ValueError(f"{where} is YAML but PyYAML is not installed; install it (pip install pyyaml) "
                             f"or give the transform as a .json file or as numbers") from None
        try:
            content = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ValueError(f"{where} is not valid YAML: {error}") from error
    if isinstance(content, dict) and "camera_from_lidar" in content:
        content = content["camera_from_lidar"]
    if not isinstance(content, dict):
        raise ValueError(f"{where} must hold a mapping; {_FORMS}")
    if "matrix" in content:
        try:
            T = np.asarray(content["matrix"], dtype=np.float64)
        except (TypeError, ValueError):
            T = None
        if T is None or T.size != 16:
            raise ValueError(f"{where}: 'matrix' must be 4x4 numbers, got {content['matrix']!r}")
        return _check_rigid(T.reshape(4, 4), where)
    if "translation" in content and "rotation" in content:
        translation = _vector(content["translation"], "xyz", where, "translation")
        rotation = _vector(content["rotation"], "xyzw", where, "rotation")
        return _check_rigid(_from_translation_quaternion(translation, rotation, where), where)
    raise ValueError(f"{where} has keys {sorted(map(str, content))}, "
                     f"expected 'translation' + 'rotation' or 'matrix'; {_FORMS}")


def _vector(value, axes: str, where: str, name: str) -> list[float]:
    """A list of len(axes) numbers, or a mapping {x: .., y: .., ...} (tf-echo style)."""
    if isinstance(value, dict):
        value = [value.get(axis) for axis in axes]
    try:
        numbers = [float(v) for v in value]
    except (TypeError, ValueError):
        numbers = []
    if len(numbers) != len(axes):
        raise ValueError(f"{where}: '{name}' must be {len(axes)} numbers ({', '.join(axes)}), got {value!r}")
    return numbers


def _from_translation_quaternion(translation, quaternion, where) -> np.ndarray:
    try:
        q = check_quaternion(quaternion)
    except ValueError as error:
        raise ValueError(f"camera←lidar transform {where}: {error}") from None
    T = np.eye(4)
    T[:3, :3] = quaternion_to_rotation(q)
    T[:3, 3] = translation
    return T


def _rpy_to_rotation(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """ROS fixed-axis roll, pitch, yaw (radians) → R = Rz(yaw) @ Ry(pitch) @ Rx(roll)."""
    cr, sr, cp, sp, cy, sy = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    Rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    Ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    Rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return Rz @ Ry @ Rx


def _check_rigid(T: np.ndarray, where: str) -> np.ndarray:
    if not np.all(np.isfinite(T)):
        raise ValueError(f"camera←lidar transform {where} has non-finite values:\n{T}")
    if np.abs(T[3] - [0, 0, 0, 1]).max() > _RIGID_TOL:
        raise ValueError(f"camera←lidar transform {where}: last row must be 0 0 0 1, got {T[3]}")
    R = T[:3, :3]
    ortho = float(np.abs(R @ R.T - np.eye(3)).max())
    det = float(np.linalg.det(R))
    if ortho > _RIGID_TOL or abs(det - 1.0) > _RIGID_TOL:
        raise ValueError(f"camera←lidar transform {where}: rotation is not a proper rotation (orthonormal, "
                         f"det +1 within {_RIGID_TOL:g}; max |R·Rᵀ − I| = {ortho:.3g}, det = {det:.9g}):\n{R}")
    T = T.astype(np.float64, copy=True)
    T[3] = [0, 0, 0, 1]
    return T


# -- projection -----------------------------------------------------------------------------------------------

def project_to_depth(points_lidar: np.ndarray, camera_from_lidar: np.ndarray, K: np.ndarray, width: int,
                     height: int, min_depth: float = 0.1) -> np.ndarray:
    """Project a LiDAR cloud into the camera as a sparse depth map.

    Args:
        points_lidar: [N, 3] x, y, z in metres in the LiDAR frame (N may be 0).
        camera_from_lidar: 4x4 rigid transform, ``p_cam = T @ p_lidar`` into the REP 103 optical frame
            (x right, y down, z forward); see :func:`parse_transform`.
        K: 3x3 camera matrix in pixels (fx, fy, cx, cy, optional skew), last row (0, 0, 1), for the
            ``width`` x ``height`` image: the rectified image's, i.e. CameraInfo ``P[:3, :3]`` (what
            :attr:`.frames.ReplayFrame.K` gives); no distortion is applied.
        width, height: image size in pixels.
        min_depth: points with camera z ≤ this (metres) are dropped (behind / at the camera).

    Returns:
        [height, width] float32 depth in metres, z along the optical axis (not the ray length); 0 where
        no point fell. Pixel convention (ROS / OpenCV): pixel centres are at integer (u, v), so with
        ``u = fx·x/z + s·y/z + cx``, ``v = fy·y/z + cy`` a point lands in column ``floor(u + 0.5)`` and row
        ``floor(v + 0.5)`` (round half up): pixel (i, j) covers u ∈ [j − 0.5, j + 0.5), v ∈ [i − 0.5, i + 0.5).
        Points outside the image are dropped; when several points hit one pixel the nearest (smallest z)
        wins (z-buffer). Both via :func:`sgdepth_ros.sparse_depth.splat_depth` (rounding "ros").
    """
    points = np.asarray(points_lidar, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points_lidar must be [N, 3], got shape {points.shape}")
    T = np.asarray(camera_from_lidar, dtype=np.float64)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        raise ValueError(f"camera_from_lidar must be a finite 4x4 matrix, got shape {T.shape}")
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0 \
            or np.abs(K[2] - [0, 0, 1]).max() > 1e-9 or K[1, 0] != 0:
        raise ValueError(f"K must be a finite 3x3 intrinsics matrix [[fx, s, cx], [0, fy, cy], [0, 0, 1]] "
                         f"with fx, fy > 0, got {K.tolist()}")
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not np.isfinite(min_depth) or min_depth < 0:
        raise ValueError(f"min_depth must be a finite number ≥ 0 metres, got {min_depth!r}")
    cam = points @ T[:3, :3].T + T[:3, 3]
    cam = cam[cam[:, 2] > min_depth]
    x, y, z = cam[:, 0] / cam[:, 2], cam[:, 1] / cam[:, 2], cam[:, 2]
    u = K[0, 0] * x + K[0, 1] * y + K[0, 2]
    v = K[1, 1] * y + K[1, 2]
    return splat_depth(u, v, z, int(width), int(height), rounding="ros")
