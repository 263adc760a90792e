"""BagWriter: images, camera infos and transforms from numpy into a new rosbag2 bag (no rclpy).

Built on ``rosbags``: the Jazzy typestore serialises CDR, ``rosbags.rosbag2.Writer`` writes a
version-9 bag (MCAP or SQLite3 storage) that ``ros2 bag info/play`` reads.

Conventions (what a caller must know):

* Time: every ``stamp_ns`` is integer nanoseconds; it becomes both the message's
  ``header.stamp`` and the bag's receive timestamp, so playback order = stamp order.
* Topics: fully qualified names (``/camera/image_raw``); a connection is created on the first
  write to a topic, and a topic keeps its first message type (another type is an error).
* QoS offered on playback (:mod:`.qos`): reliable, volatile, keep-last 10 for every topic
  except ``/tf_static``: reliable, transient-local, keep-last 1 (latched).
* ``/tf_static`` behaves like tf2_ros' StaticTransformBroadcaster: each
  :meth:`BagWriter.write_static_transforms` writes one TFMessage holding every static
  transform given so far (keyed by child frame, later ones replace earlier ones), because a
  latched depth-1 topic only delivers its last message to a late subscriber.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from . import messages
from .qos import SENSOR_QOS, STATIC_TF_QOS

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
TF_TOPIC = "/tf"
TF_STATIC_TOPIC = "/tf_static"
BAG_VERSION = 9
_TOPIC_RE = re.compile(r"^(/[A-Za-z_][A-Za-z0-9_]*)+$")


class BagWriter:
    """Writes a new rosbag2 bag; use as a context manager (or call :meth:`close`).

    ``BagWriter(path, storage="mcap")`` creates the bag directory ``path`` (which must not
    exist). ``storage`` is ``"mcap"`` (file ``<name>.mcap``) or ``"sqlite3"`` (``<name>.db3``).
    If the ``with`` body raises, the bag is still closed, with the messages written so far
    and a valid metadata.yaml, and the exception propagates.
    """

    def __init__(self, path: str | Path, storage: str = "mcap"):
        if storage not in STORAGES:
            raise ValueError(f"unknown bag storage {storage!r}; choose one of {', '.join(STORAGES)}")
        self.path = Path(path)
        self.storage = storage
        if self.path.exists() or self.path.is_symlink():
            raise FileExistsError(f"bag path {str(self.path)!r} already exists; BagWriter only creates new bags")
        self._typestore = get_typestore(Stores.ROS2_JAZZY)
        self._types = self._typestore.types
        self._writer = Writer(self.path, version=BAG_VERSION, storage_plugin=STORAGES[storage])
        self._writer.open()
        self._connections: dict = {}          # topic → rosbags Connection
        self._counts: dict[str, int] = {}     # topic → messages written
        self._static: dict = {}               # child frame → TransformStamped (latched set)
        self._closed = False

    # -- context manager ---------------------------------------------------------------

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            self.close()
        except Exception as close_error:
            if exc is None:
                raise
            if hasattr(exc, "add_note"):  # Python ≥ 3.11
                exc.add_note(f"closing bag {str(self.path)!r} afterwards also failed: {close_error!r}")
        return False

    def close(self) -> None:
        """Finish the bag (storage index + metadata.yaml). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._writer.close()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def message_counts(self) -> dict[str, int]:
        """Messages written so far, per topic."""
        return dict(self._counts)

    # -- typed writers -----------------------------------------------------------------

    def write_image(self, topic: str, stamp_ns: int, frame_id: str, array: np.ndarray, encoding: str) -> None:
        """sensor_msgs/Image.

        ``encoding`` and ``array``: ``rgb8`` HxWx3 uint8 RGB; ``bgr8`` HxWx3 uint8 **RGB too**
        (the writer reverses the channels, so the payload is B,G,R); ``mono8`` HxW uint8;
        ``16UC1`` HxW uint16; ``32FC1`` HxW float (stored as float32; NaN allowed, e.g. depth in
        metres with NaN = invalid, REP 118). Little-endian, step = width × bytes per pixel.
        """
        self.write_message(topic, stamp_ns, messages.image(self._types, stamp_ns, frame_id, array, encoding))

    def write_compressed(self, topic: str, stamp_ns: int, frame_id: str, rgb: np.ndarray,
                         fmt: str = "jpeg", quality: int = 90) -> None:
        """sensor_msgs/CompressedImage of HxWx3 uint8 RGB; ``fmt`` "jpeg" (``quality`` 1..100) or
        "png" (lossless). ``format`` field: ``"rgb8; jpeg compressed bgr8"`` / ``"rgb8; png
        compressed bgr8"`` as compressed_image_transport writes; put it on ``<image>/compressed``
        for image_transport subscribers."""
        self.write_message(topic, stamp_ns,
                           messages.compressed_image(self._types, stamp_ns, frame_id, rgb, fmt, quality))

    def write_camera_info(self, topic: str, stamp_ns: int, frame_id: str, K, width: int, height: int,
                          P=None, distortion_model: str = "plumb_bob", D=None) -> None:
        """sensor_msgs/CameraInfo: K 3x3 pixels for a width x height image, P 3x4 (default [K|0]),
        D (default zeros, 5 for plumb_bob), R = identity."""
        self.write_message(topic, stamp_ns, messages.camera_info(
            self._types, stamp_ns, frame_id, K, width, height, P, distortion_model, D))

    def write_point_cloud(self, topic: str, stamp_ns: int, frame_id: str, xyz, intensity=None) -> None:
        """sensor_msgs/PointCloud2 of [N, 3] points (metres, in ``frame_id``): height 1, width N, float32
        x, y, z at offsets 0, 4, 8 and, when ``intensity`` ([N]) is given, float32 intensity at 12;
        little-endian, is_dense False (NaN points allowed)."""
        extra = None if intensity is None else {"intensity": intensity}
        self.write_message(topic, stamp_ns, messages.point_cloud(self._types, stamp_ns, frame_id, xyz, extra))

    def write_static_transforms(self, stamp_ns: int, transforms) -> None:
        """One tf2_msgs/TFMessage on ``/tf_static`` (latched) with every static transform so far.

        ``transforms``: iterable of ``(parent, child, translation (x, y, z) metres, quaternion
        (x, y, z, w))``; the transform maps child coordinates into the parent frame.
        """
        self._check_open()
        for stamped in messages.tf_message(self._types, stamp_ns, transforms).transforms:
            self._static[stamped.child_frame_id] = stamped
        latched = self._types["tf2_msgs/msg/TFMessage"](transforms=list(self._static.values()))
        self.write_message(TF_STATIC_TOPIC, stamp_ns, latched)

    def write_transform(self, stamp_ns: int, parent: str, child: str, translation, quaternion) -> None:
        """One parent → child transform (metres, quaternion x, y, z, w) as a TFMessage on ``/tf``."""
        self.write_message(TF_TOPIC, stamp_ns,
                           messages.tf_message(self._types, stamp_ns, [(parent, child, translation, quaternion)]))

    # -- generic -----------------------------------------------------------------------

    def write_message(self, topic: str, stamp_ns: int, msg) -> None:
        """Serialise a rosbags message object (any Jazzy typestore type) and write it at ``stamp_ns``."""
        self._check_open()
        stamp_ns = messages.check_stamp(stamp_ns)
        msgtype = msg.__msgtype__
        connection = self._connection(topic, msgtype)
        self._writer.write(connection, stamp_ns, self._typestore.serialize_cdr(msg, msgtype))
        self._counts[topic] += 1

    def write_raw(self, topic: str, stamp_ns: int, msgtype: str, rawdata: bytes) -> None:
        """Write an already serialised CDR message (e.g. recorded, or from ``rclpy.serialization``) of a type the
        Jazzy typestore knows (``sensor_msgs/msg/Image`` …) at ``stamp_ns``, unchanged."""
        self._check_open()
        stamp_ns = messages.check_stamp(stamp_ns)
        if msgtype not in self._types:
            raise ValueError(f"message type {msgtype!r} is not in the ROS 2 Jazzy typestore")
        self._writer.write(self._connection(topic, msgtype), stamp_ns, bytes(rawdata))
        self._counts[topic] += 1

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"bag {str(self.path)!r} is closed")

    def _connection(self, topic: str, msgtype: str):
        connection = self._connections.get(topic)
        if connection is not None:
            if connection.msgtype != msgtype:
                raise ValueError(f"topic {topic!r} already carries {connection.msgtype}; cannot write {msgtype}")
            return connection
        if not isinstance(topic, str) or not _TOPIC_RE.match(topic):
            raise ValueError(f"topic {topic!r} is not a fully qualified ROS topic name like '/camera/image_raw'")
        qos = STATIC_TF_QOS if topic == TF_STATIC_TOPIC else SENSOR_QOS
        connection = self._writer.add_connection(topic, msgtype, typestore=self._typestore,
                                                 offered_qos_profiles=[qos])
        self._connections[topic] = connection
        self._counts[topic] = 0
        return connection
