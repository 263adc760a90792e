"""Writing a drive as a rosbag2 bag (MCAP or sqlite3) with the rosbags library (through sgdepth_ros.bag).

Topics (stamps at 10 Hz from the drive's start, header stamp = bag time):
- ``/camera/image_raw`` sensor_msgs/Image rgb8 (or bgr8), or ``/camera/image_raw/compressed`` CompressedImage (jpeg)
- ``/camera/camera_info`` CameraInfo (plumb_bob, zero distortion)
- ``/ground_truth/depth`` Image 32FC1, metres along the optical axis, NaN = sky (REP 118)
- ``/ground_truth/semantic`` Image mono8, Cityscapes trainIds (255 = unlabelled), the node's ``semantic`` convention
- ``/tf_static``: base_link → camera_link (1.65 m up, 1.0 m forward) → camera_optical_frame (REP 103 optical)
- ``/tf``: odom → base_link per frame, from the ground-truth ego pose (odom = base_link at the first frame)
All images carry frame_id ``camera_optical_frame``.

A camera rig (rig.py, ``synth --rig``) writes the same per camera <cam>, all at the same stamps: ``/<cam>/image_raw``
(or ``/<cam>/image_raw/compressed``), ``/<cam>/camera_info``, ``/<cam>/ground_truth/depth``,
``/<cam>/ground_truth/semantic`` with frame_id ``<cam>_optical_frame``; one ``/tf_static`` message with base_link →
<cam>_link (the camera's mount) → <cam>_optical_frame for every camera; ``/tf`` odom → base_link once per frame.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sgdepth_ros.bag import BagWriter, rotation_to_quaternion
from sgdepth_ros.labels import label_id_to_train_id

from .camera import CAMERA_HEIGHT_M, Camera
from .rig import CAMERA_FORWARD_M, R_LINK_OPTICAL, RigCamera, ego_base_to_optical

OPTICAL_FRAME, CAMERA_LINK, BASE_LINK, ODOM = "camera_optical_frame", "camera_link", "base_link", "odom"
IMAGE_TOPIC, INFO_TOPIC = "/camera/image_raw", "/camera/camera_info"
DEPTH_TOPIC, SEMANTIC_TOPIC = "/ground_truth/depth", "/ground_truth/semantic"


def base_to_optical() -> np.ndarray:
    """4×4 pose of the (single, front) camera's optical frame in base_link."""
    return ego_base_to_optical()


@dataclass(frozen=True)
class CameraStream:
    """Where one camera goes in a bag: its topics, frames and mount (base_link → link translation, quaternion)."""

    camera: Camera
    image_topic: str
    info_topic: str
    depth_topic: str
    semantic_topic: str
    optical_frame: str
    link: str
    link_xyz: tuple[float, float, float]
    link_quaternion: tuple[float, float, float, float]
    base_optical: np.ndarray  # [4,4] optical frame in base_link


def single_stream(camera: Camera) -> CameraStream:
    """The one-camera bag of today: /camera/…, /ground_truth/…, camera_optical_frame."""
    return CameraStream(camera, IMAGE_TOPIC, INFO_TOPIC, DEPTH_TOPIC, SEMANTIC_TOPIC, OPTICAL_FRAME, CAMERA_LINK,
                        (CAMERA_FORWARD_M, 0.0, CAMERA_HEIGHT_M), (0.0, 0.0, 0.0, 1.0), base_to_optical())


def rig_stream(cam: RigCamera) -> CameraStream:
    """A rig camera: /<cam>/image_raw, /<cam>/camera_info, /<cam>/ground_truth/{depth,semantic}, <cam>_…frame."""
    n = cam.name
    return CameraStream(cam.camera, f"/{n}/image_raw", f"/{n}/camera_info", f"/{n}/ground_truth/depth",
                        f"/{n}/ground_truth/semantic", cam.optical_frame, cam.link, tuple(float(v) for v in cam.xyz),
                        rotation_to_quaternion(cam.base_to_link()[:3, :3]), cam.base_to_optical())


class BagDriveWriter:
    """Writes one drive's frames into a new bag at ``path``: one camera (``camera``), or a ``rig`` of cameras."""

    def __init__(self, path: Path, camera: Camera, storage: str = "mcap", image: str = "rgb8",
                 rig: tuple[RigCamera, ...] | None = None):
        if image not in ("rgb8", "bgr8", "jpeg"):
            raise ValueError(f"bag image must be rgb8, bgr8 or jpeg, not {image!r}")
        self.image = image
        self.streams = [single_stream(camera)] if rig is None else [rig_stream(c) for c in rig]
        self.writer = BagWriter(path, storage=storage)
        self.to_train = label_id_to_train_id()
        self.static_written = False

    def add(self, frame, stamp_ns: int) -> None:
        """Write one rendered Frame (render.Frame) of the single camera at ``stamp_ns``."""
        self.add_frames([frame], stamp_ns)

    def add_frames(self, frames, stamp_ns: int) -> None:
        """Write one Frame per camera (in rig order), all at ``stamp_ns``, then odom → base_link."""
        if len(frames) != len(self.streams):
            raise ValueError(f"{len(frames)} frames for {len(self.streams)} cameras")
        w = self.writer
        if not self.static_written:
            transforms = []
            for s in self.streams:
                transforms += [(BASE_LINK, s.link, s.link_xyz, s.link_quaternion),
                               (s.link, s.optical_frame, (0.0, 0.0, 0.0), rotation_to_quaternion(R_LINK_OPTICAL))]
            w.write_static_transforms(stamp_ns, transforms)
            self.static_written = True
        for s, frame in zip(self.streams, frames):
            cam = s.camera
            if self.image == "jpeg":
                w.write_compressed(s.image_topic + "/compressed", stamp_ns, s.optical_frame, frame.rgb, fmt="jpeg",
                                   quality=92)
            else:
                w.write_image(s.image_topic, stamp_ns, s.optical_frame, frame.rgb, self.image)
            w.write_camera_info(s.info_topic, stamp_ns, s.optical_frame, cam.K, cam.width, cam.height)
            w.write_image(s.depth_topic, stamp_ns, s.optical_frame, frame.depth, "32FC1")
            w.write_image(s.semantic_topic, stamp_ns, s.optical_frame, self.to_train[frame.label_ids], "mono8")
        # odom → base_link: the first camera's optical-frame motion since the first frame (frame.pose), expressed
        # for base_link (the same rigid motion whichever camera it is read from)
        base_optical = self.streams[0].base_optical
        T_base = base_optical @ frames[0].pose @ np.linalg.inv(base_optical)
        w.write_transform(stamp_ns, ODOM, BASE_LINK, tuple(T_base[:3, 3]), rotation_to_quaternion(T_base[:3, :3]))

    def close(self) -> None:
        self.writer.close()
