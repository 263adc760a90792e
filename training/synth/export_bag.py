"""Writing a drive as a rosbag2 bag (MCAP or sqlite3) with the rosbags library (through sgdepth_ros.bag).

Topics (stamps at 10 Hz from the drive's start, header stamp = bag time):
- ``/camera/image_raw`` sensor_msgs/Image rgb8 (or bgr8), or ``/camera/image_raw/compressed`` CompressedImage (jpeg)
- ``/camera/camera_info`` CameraInfo (plumb_bob, zero distortion)
- ``/ground_truth/depth`` Image 32FC1, metres along the optical axis, NaN = sky (REP 118)
- ``/ground_truth/semantic`` Image mono8, Cityscapes trainIds (255 = unlabelled), the node's ``semantic`` convention
- ``/tf_static``: base_link → camera_link (1.65 m up, 1.0 m forward) → camera_optical_frame (REP 103 optical)
- ``/tf``: odom → base_link per frame, from the ground-truth ego pose (odom = base_link at the first frame)
All images carry frame_id ``camera_optical_frame``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from sgdepth_ros.bag import BagWriter, rotation_to_quaternion
from sgdepth_ros.labels import label_id_to_train_id

from .camera import CAMERA_HEIGHT_M, Camera

OPTICAL_FRAME, CAMERA_LINK, BASE_LINK, ODOM = "camera_optical_frame", "camera_link", "base_link", "odom"
CAMERA_FORWARD_M = 1.0
# camera_link (x forward, y left, z up) → optical (x right, y down, z forward): columns are the optical axes
R_LINK_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
IMAGE_TOPIC, INFO_TOPIC = "/camera/image_raw", "/camera/camera_info"
DEPTH_TOPIC, SEMANTIC_TOPIC = "/ground_truth/depth", "/ground_truth/semantic"


def base_to_optical() -> np.ndarray:
    """4×4 pose of the optical frame in base_link."""
    T = np.eye(4)
    T[:3, :3] = R_LINK_OPTICAL
    T[:3, 3] = (CAMERA_FORWARD_M, 0.0, CAMERA_HEIGHT_M)
    return T


class BagDriveWriter:
    """Writes one drive's frames into a new bag at ``path``."""

    def __init__(self, path: Path, camera: Camera, storage: str = "mcap", image: str = "rgb8"):
        if image not in ("rgb8", "bgr8", "jpeg"):
            raise ValueError(f"bag image must be rgb8, bgr8 or jpeg, not {image!r}")
        self.camera, self.image = camera, image
        self.writer = BagWriter(path, storage=storage)
        self.to_train = label_id_to_train_id()
        self.base_optical = base_to_optical()
        self.static_written = False

    def add(self, frame, stamp_ns: int) -> None:
        """Write one rendered Frame (render.Frame) at ``stamp_ns``."""
        w = self.writer
        if not self.static_written:
            w.write_static_transforms(stamp_ns, [
                (BASE_LINK, CAMERA_LINK, (CAMERA_FORWARD_M, 0.0, CAMERA_HEIGHT_M), (0.0, 0.0, 0.0, 1.0)),
                (CAMERA_LINK, OPTICAL_FRAME, (0.0, 0.0, 0.0), rotation_to_quaternion(R_LINK_OPTICAL))])
            self.static_written = True
        cam = self.camera
        if self.image == "jpeg":
            w.write_compressed(IMAGE_TOPIC + "/compressed", stamp_ns, OPTICAL_FRAME, frame.rgb, fmt="jpeg", quality=92)
        else:
            w.write_image(IMAGE_TOPIC, stamp_ns, OPTICAL_FRAME, frame.rgb, self.image)
        w.write_camera_info(INFO_TOPIC, stamp_ns, OPTICAL_FRAME, cam.K, cam.width, cam.height)
        w.write_image(DEPTH_TOPIC, stamp_ns, OPTICAL_FRAME, frame.depth, "32FC1")
        w.write_image(SEMANTIC_TOPIC, stamp_ns, OPTICAL_FRAME, self.to_train[frame.label_ids], "mono8")
        # odom → base_link: the optical-frame motion since the first frame (frame.pose), expressed for base_link
        T_base = self.base_optical @ frame.pose @ np.linalg.inv(self.base_optical)
        w.write_transform(stamp_ns, ODOM, BASE_LINK, tuple(T_base[:3, 3]), rotation_to_quaternion(T_base[:3, :3]))

    def close(self) -> None:
        self.writer.close()
