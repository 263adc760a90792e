"""Camera frames of a bag with their CameraInfo and ground truth, paired by header stamp, streamed in bag order.

A frame is emitted once every companion topic has a message with the image's stamp (LiDAR: a cloud within
``lidar_tolerance_s``), or once the bag has moved ``window_s`` past the image without one; so memory stays bounded
on long bags. CameraInfo pairs by the node's rule (:class:`sgdepth_ros.ros.sync.CameraInfoPairing`): the one with the
image's stamp, else (``camera_info_fallback_latest``, default on) the latest one of the image's size received
before, as latched or constant-stamp publishers need; a frame waits for a CameraInfo with its stamp only while
stamps do pair. Each CameraInfo is validated once, on arrival (``bad_intrinsics`` counted per message).

Bad messages never end the replay: a frame whose image cannot be decoded is counted in ``unreadable`` (by the
node's error kinds) and skipped; a ground truth that cannot be decoded or does not fit the image is counted and that
frame goes without it. A bag that fails part-way (truncated, corrupt chunk) ends the stream with what was read and
the reason in ``errors``.
"""
from __future__ import annotations

from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..bag.reader import BagMessage, read_messages
from ..ros.camera_model import CameraGeometry, check_geometry
from ..ros.image_codec import (DEFAULT_MAX_PIXELS, InputError, decode_compressed, image_message_to_rgb,
                                scalar_message_to_array)
from ..ros.sync import CameraInfoPairing, stamp_ns
from .lidar import message_xyz, project_to_depth
from .topics import COMPRESSED, ReplayTopics

_COMPANION_CAPACITY = 64  # messages kept per companion topic while their image is awaited


@dataclass
class ReplayFrame:
    """One camera frame of the bag.

    index: 0-based position among the bag's images; stamp_ns: header stamp (int ns); frame_id: the image's.
    image_msg / image_raw: the recorded message (rosbags object) and its CDR bytes; rgb: HxWx3 uint8 RGB.
    info_msg / info_raw: the paired CameraInfo or None; geometry: its validated intrinsics (:attr:`K`: the
    rectified camera matrix P[:3, :3], 3x3).
    depth_gt: HxW float32 metres, 0 = no ground truth (dense image or projected LiDAR), or None.
    labels_gt: HxW uint8 Cityscapes trainIds (255 = ignore), or None. gt_source: "dense", "lidar" or None.
    gt_raw: the ground-truth messages used, as ``(topic, msgtype, header stamp ns, CDR bytes)``, for the output bag.
    """

    index: int
    stamp_ns: int
    frame_id: str
    image_msg: Any
    image_raw: bytes
    image_msgtype: str
    rgb: np.ndarray
    info_msg: Any = None
    info_raw: bytes | None = None
    geometry: CameraGeometry | None = None
    depth_gt: np.ndarray | None = None
    labels_gt: np.ndarray | None = None
    gt_source: str | None = None
    gt_raw: list = field(default_factory=list)

    @property
    def K(self) -> np.ndarray | None:
        """3x3 float64 camera matrix of the (rectified) image in pixels: CameraInfo P[:3, :3] (K when P is unset),
        or None without a CameraInfo."""
        return None if self.geometry is None else self.geometry.matrix


def decode_rgb(msg, msgtype: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An Image or CompressedImage message → HxWx3 uint8 RGB (raises InputError)."""
    if msgtype == COMPRESSED:
        return decode_compressed(msg.data, max_pixels, str(getattr(msg, "format", "")))
    return image_message_to_rgb(msg, max_pixels)


def decode_depth(msg, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A depth Image → HxW float32 metres, 0 where invalid (REP 118: 32FC1 metres with NaN/inf, or 16UC1 mm)."""
    array = scalar_message_to_array(msg, max_pixels)
    if msg.encoding in ("16UC1", "mono16"):
        return array.astype(np.float32) / np.float32(1000.0)
    if msg.encoding != "32FC1":
        raise InputError("unknown_encoding", f"depth must be 32FC1 (metres) or 16UC1 (mm), got {msg.encoding!r}")
    return np.where(np.isfinite(array) & (array > 0), array, np.float32(0)).astype(np.float32, copy=False)


def decode_labels(msg, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A mono8/8UC1 label Image (Cityscapes trainIds, 255 = ignore) → HxW uint8."""
    if msg.encoding not in ("mono8", "8UC1"):
        raise InputError("unknown_encoding", f"labels must be mono8 trainIds, got {msg.encoding!r}")
    return scalar_message_to_array(msg, max_pixels)


class FrameReader:
    """Iterates the :class:`ReplayFrame` s of a bag (see the module docstring).

    Args:
        path: the bag (folder, .mcap or .db3). topics: from :func:`.topics.resolve_topics`.
        camera_from_lidar: 4x4 transform lidar → camera optical frame; needed with ``topics.lidar``.
        window_s: how far (bag time) past an image its companions are awaited.
        lidar_tolerance_s: largest |cloud stamp − image stamp| accepted.
        camera_info_fallback_latest: pair an image no CameraInfo stamp matches with the latest CameraInfo of its
            size (the node's parameter of that name).
    After (or during) iteration: ``errors`` (list of str), ``unreadable`` (Counter of error kinds),
    ``frames`` (frames yielded), ``messages`` (messages read).
    """

    def __init__(self, path: str | Path, topics: ReplayTopics, camera_from_lidar: np.ndarray | None = None,
                 window_s: float = 0.5, lidar_tolerance_s: float = 0.05, max_pixels: int = DEFAULT_MAX_PIXELS,
                 camera_info_fallback_latest: bool = True):
        if topics.lidar and camera_from_lidar is None:
            raise ValueError(f"LiDAR ground truth ({topics.lidar}) needs the camera←lidar transform")
        self.path, self.topics = Path(path), topics
        self.camera_from_lidar = camera_from_lidar
        self.window_ns, self.lidar_tolerance_ns = int(window_s * 1e9), int(lidar_tolerance_s * 1e9)
        self.max_pixels = max_pixels
        self.camera_info_fallback_latest = camera_info_fallback_latest
        self.errors: list[str] = []
        self.unreadable: Counter[str] = Counter()
        self.frames = 0
        self.messages = 0
        self._roles = {name: role for role, name in topics.as_dict().items() if name}
        self._stores: dict[str, OrderedDict[int, BagMessage]] = {
            role: OrderedDict() for role in self._roles.values() if role not in ("image", "camera_info")}
        self._infos = CameraInfoPairing(_COMPANION_CAPACITY) if topics.camera_info else None
        self._index = 0

    def __iter__(self) -> Iterator[ReplayFrame]:
        pending: deque[tuple[int, BagMessage]] = deque()
        stream = read_messages(self.path, list(self._roles))  # opening errors propagate: nothing was read
        try:
            for message in stream:
                self.messages += 1
                role = self._roles[message.topic]
                try:
                    stamp = stamp_ns(message.msg.header)
                except AttributeError:
                    self.unreadable[f"{role}_without_header"] += 1
                    continue
                if role == "image":
                    pending.append((stamp, message))
                elif role == "camera_info":
                    self._add_camera_info(stamp, message)
                else:
                    store = self._stores[role]
                    store[stamp] = message
                    while len(store) > _COMPANION_CAPACITY:
                        store.popitem(last=False)
                yield from self._ready(pending, message.timestamp_ns, flush=False)
        except Exception as error:  # a truncated or corrupt bag: keep what was read
            self.errors.append(f"reading {self.path} failed after {self.messages} messages "
                               f"({self.frames} complete frames): {type(error).__name__}: {error}")
        yield from self._ready(pending, None, flush=True)

    # -- pairing ---------------------------------------------------------------------------------

    def _ready(self, pending: deque, now_ns: int | None, flush: bool) -> Iterator[ReplayFrame]:
        while pending:
            stamp, message = pending[0]
            waited = now_ns is not None and now_ns - message.timestamp_ns > self.window_ns
            if not (flush or waited or self._complete(stamp)):
                return
            pending.popleft()
            frame = self._build(stamp, message)
            if frame is not None:
                self.frames += 1
                yield frame

    def _add_camera_info(self, stamp: int, message: BagMessage) -> None:
        try:
            geometry = check_geometry(message.msg.width, message.msg.height, message.msg.k, message.msg.p)
        except InputError as error:
            self.unreadable[error.kind] += 1
            self._infos.add_rejected(stamp)
            return
        self._infos.add(stamp, geometry.width, geometry.height, (message, geometry))

    def _complete(self, stamp: int) -> bool:
        if self._infos is not None and self._infos.expects() and not self._infos.has_stamp(stamp):
            return False
        for role, store in self._stores.items():
            if role == "lidar":  # every cloud that could be the nearest has arrived
                if not any(s >= stamp + self.lidar_tolerance_ns for s in store):
                    return False
            elif stamp not in store:
                return False
        return True

    def _nearest_cloud(self, stamp: int) -> BagMessage | None:
        store = self._stores.get("lidar", {})
        best = min(store, key=lambda s: abs(s - stamp), default=None)
        return store[best] if best is not None and abs(best - stamp) <= self.lidar_tolerance_ns else None

    def _build(self, stamp: int, message: BagMessage) -> ReplayFrame | None:
        index = self._index
        self._index += 1
        try:
            rgb = decode_rgb(message.msg, message.msgtype, self.max_pixels)
        except InputError as error:
            self.unreadable[error.kind] += 1
            return None
        height, width = rgb.shape[:2]
        frame = ReplayFrame(index, stamp, str(message.msg.header.frame_id), message.msg, message.rawdata,
                            message.msgtype, rgb)
        if self._infos is not None:
            paired = self._infos.pair(stamp, width, height, fallback_latest=self.camera_info_fallback_latest)
            if paired.item is not None:
                info, frame.geometry = paired.item
                frame.info_msg, frame.info_raw = info.msg, info.rawdata
            elif paired.how != "rejected":
                self.unreadable[paired.how] += 1
        if "depth_gt" in self._stores:
            frame.depth_gt = self._ground_truth(frame, "depth_gt", stamp, decode_depth)
            frame.gt_source = "dense" if frame.depth_gt is not None else None
        elif "lidar" in self._stores:
            frame.depth_gt = self._lidar_depth(frame)
            frame.gt_source = "lidar" if frame.depth_gt is not None else None
        if "semantic_gt" in self._stores:
            frame.labels_gt = self._ground_truth(frame, "semantic_gt", stamp, decode_labels)
        return frame

    def _ground_truth(self, frame: ReplayFrame, role: str, stamp: int, decode) -> np.ndarray | None:
        message = self._stores[role].pop(stamp, None)
        if message is None:
            self.unreadable[f"{role}_missing"] += 1
            return None
        try:
            array = decode(message.msg, self.max_pixels)
        except InputError as error:
            self.unreadable[f"{role}_{error.kind}"] += 1
            return None
        if array.shape != frame.rgb.shape[:2]:
            self.unreadable[f"{role}_size_mismatch"] += 1
            return None
        frame.gt_raw.append((message.topic, message.msgtype, stamp, message.rawdata))
        return array

    def _lidar_depth(self, frame: ReplayFrame) -> np.ndarray | None:
        cloud = self._nearest_cloud(frame.stamp_ns)
        if cloud is None:
            self.unreadable["lidar_missing"] += 1
            return None
        if frame.geometry is None:
            self.unreadable["lidar_without_camera_info"] += 1
            return None
        try:
            points = message_xyz(cloud.msg)
        except ValueError:
            self.unreadable["lidar_bad_cloud"] += 1
            return None
        frame.gt_raw.append((cloud.topic, cloud.msgtype, stamp_ns(cloud.msg.header), cloud.rawdata))
        height, width = frame.rgb.shape[:2]
        return project_to_depth(points, self.camera_from_lidar, frame.K, width, height)
