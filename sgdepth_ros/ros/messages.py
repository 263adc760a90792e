"""numpy ⇄ sensor_msgs / diagnostic_msgs conversion at the node's edge (the only rclpy-message module)."""
from __future__ import annotations

import array
import json

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_msgs.msg import Float32, Header, String

from ..labels import CLASSES, DYNAMIC_TRAIN_IDS, IGNORE_ID
from .camera_model import CameraGeometry, check_geometry
from .image_codec import encode_image
from .pointcloud import FIELDS, POINT_DTYPE

LABELS_FORMAT = "sgdepth_ros/labels/v1"
SCALE_TOPIC = "depth/scale"  # std_msgs/Float32: metres per model unit (scale_mode camera_height)
MEASURED_OUTPUTS = ("depth", "points")  # outputs whose topic follows the frame's units (metres or relative)


def set_data(msg, data) -> None:
    """``msg.data = data`` for a message whose ``data`` is a uint8[] field, without copying an ``array.array('B')``.

    rclpy stores such a field as an ``array.array('B')``; its setter keeps one as it is only when
    ``ROS_PYTHON_CHECK_FIELDS`` is on and copies it otherwise (``array.array('B', value)``). The payloads here are
    built as ``array.array('B')`` already (:func:`.image_codec.encode_image`, :func:`.pointcloud.pack_grid`), so
    they are stored as the checking setter stores them. Anything else goes through the setter.
    """
    if isinstance(data, array.array) and data.typecode == "B" and hasattr(type(msg), "_data"):
        msg._data = data
    else:
        msg.data = data


def array_to_image(array: np.ndarray, header: Header) -> Image:
    """HxW float32 (32FC1), HxW uint8 (mono8) or HxWx3 uint8 (rgb8) → Image with ``header``.

    The pixels are copied at most once (none for an array made by :func:`.image_codec.message_buffer`)."""
    encoding, height, width, step, data = encode_image(array)
    msg = Image(header=header, height=height, width=width, encoding=encoding, is_bigendian=0, step=step)
    set_data(msg, data)
    return msg


def camera_info_geometry(msg: CameraInfo) -> CameraGeometry:
    """Validated intrinsics of a CameraInfo (raises InputError('bad_intrinsics'))."""
    return check_geometry(msg.width, msg.height, msg.k, msg.p)


def camera_info_for(source: CameraInfo, geometry: CameraGeometry, header: Header) -> CameraInfo:
    """``source`` re-described for an image of ``geometry``'s size (K and P rescaled), with ``header``."""
    return CameraInfo(header=header, height=geometry.height, width=geometry.width,
                      distortion_model=source.distortion_model, d=list(source.d), k=list(geometry.k),
                      r=list(source.r), p=list(geometry.p))


def points_to_cloud(data, count: int, header: Header) -> PointCloud2:
    """A packed x,y,z,rgb,label payload (see :mod:`.pointcloud`; bytes, or the ``array.array('B')`` of
    :func:`.pointcloud.pack_grid`, which the message keeps without a copy) → an unorganised, dense PointCloud2."""
    fields = [PointField(name=name, offset=offset, datatype=datatype, count=1) for name, offset, datatype in FIELDS]
    msg = PointCloud2(header=header, height=1, width=count, fields=fields, is_bigendian=False,
                      point_step=POINT_DTYPE.itemsize, row_step=POINT_DTYPE.itemsize * count, is_dense=True)
    set_data(msg, data)
    return msg


def output_topics(metric: bool) -> dict[str, tuple[str, type]]:
    """The node's outputs: key (as in :data:`.outputs.OUTPUT_KEYS`) → (relative topic name, message class).

    Depth and points carry metres on ``depth`` / ``points`` only when ``metric``; otherwise they go to
    ``depth/relative`` / ``points/relative`` (model units, never labelled metres).
    """
    return {"depth": ("depth" if metric else "depth/relative", Image),
            "depth_info": ("depth/camera_info", CameraInfo), "depth_color": ("depth/color", Image),
            "semantic": ("semantic", Image), "semantic_color": ("semantic/color", Image),
            "overlay": ("semantic/overlay", Image),
            "points": ("points" if metric else "points/relative", PointCloud2)}


def relative_topics() -> dict[str, tuple[str, type]]:
    """The relative-unit topics of :data:`MEASURED_OUTPUTS` (``depth/relative``, ``points/relative``): a node whose
    scale is measured per frame publishes each frame on the metric or the relative one."""
    topics = output_topics(False)
    return {key: topics[key] for key in MEASURED_OUTPUTS}


def scale_message(factor: float) -> Float32:
    """The current metres per model unit on :data:`SCALE_TOPIC`."""
    return Float32(data=float(factor))


def output_messages(outputs: dict, header: Header, camera_info: CameraInfo | None,
                    geometry: CameraGeometry | None, wanted: set[str]) -> dict:
    """Messages of one frame's rendered outputs (:func:`.outputs.render`), each with the input's ``header``.

    ``camera_info``/``geometry``: the input's CameraInfo and the geometry at the output size (None without one);
    ``depth_info`` is made only when wanted and both are given. Returns key → message, in publishing order.
    """
    out = {}
    for key in ("depth", "depth_color", "semantic", "semantic_color", "overlay"):
        if key in outputs:
            out[key] = array_to_image(outputs[key], header)
    if "depth_info" in wanted and camera_info is not None and geometry is not None:
        out["depth_info"] = camera_info_for(camera_info, geometry, header)
    if "points" in outputs:
        out["points"] = points_to_cloud(*outputs["points"], header)
    return out


def labels_message() -> String:
    """The label metadata as JSON in a std_msgs/String (vision_msgs has no wheel), published latched.

    {"format": "sgdepth_ros/labels/v1", "encoding": "mono8", "ignore_id": 255,
     "classes": [{"id": 0, "name": "road", "color": [128, 64, 128], "cityscapes_label_id": 7,
                  "dynamic": false}, …]}
    """
    classes = [{"id": tid, "name": name, "color": list(rgb), "cityscapes_label_id": label_id,
                "dynamic": tid in DYNAMIC_TRAIN_IDS} for tid, name, label_id, rgb in CLASSES]
    return String(data=json.dumps({"format": LABELS_FORMAT, "encoding": "mono8", "ignore_id": IGNORE_ID,
                                   "classes": classes}))


def diagnostics_status(snapshot: dict, name: str, hardware_id: str, level: int, summary: str,
                       extra: dict[str, str] | None = None) -> DiagnosticStatus:
    """A NodeStats snapshot → one DiagnosticStatus; numbers as strings (3 decimals); ``extra``: more key → value
    strings, appended as they are (the scale's ``scale/…``)."""
    values = []
    for key, value in snapshot.items():
        if key == "errors":
            continue
        values.append(KeyValue(key=key, value=f"{value:.3f}" if isinstance(value, float) else str(value)))
    for kind, count in sorted(snapshot["errors"].items()):
        values.append(KeyValue(key=f"errors/{kind}", value=str(count)))
    values.extend(KeyValue(key=key, value=value) for key, value in (extra or {}).items())
    return DiagnosticStatus(level=bytes([level]), name=name, message=summary, hardware_id=hardware_id, values=values)


def diagnostics_array(statuses: list[DiagnosticStatus], stamp) -> DiagnosticArray:
    """The /diagnostics message of one report: a status per camera."""
    msg = DiagnosticArray(status=list(statuses))
    msg.header.stamp = stamp
    return msg
