"""The node's per-camera channel without DDS: stamp admission, CameraInfo pairing and one frame's processing with a
stub predictor (what the node publishes is what the channel returns)."""
from __future__ import annotations

import numpy as np
from sensor_msgs.msg import CameraInfo, Image

from sgdepth_ros.predictor import Prediction
from sgdepth_ros.ros.camera_channel import CameraChannel, Frame
from sgdepth_ros.ros.params import PARAMS

K = [32.0, 0, 32, 0, 32.0, 16, 0, 0, 1]


class _Predictor:
    def __init__(self):
        self.tasks = []

    def predict(self, rgb, output_resolution, tasks):
        self.tasks.append(tasks)
        h, w = rgb.shape[:2]
        depth = np.full((h, w), 5.0, np.float32) if "depth" in tasks else None
        labels = np.zeros((h, w), np.uint8) if "segmentation" in tasks else None
        return Prediction(depth, None if depth is None else 1 / depth, labels, False, rgb, {"forward": 1.0})


def _channel(info_publishers=1, **overrides):
    values = {spec.name: spec.default for spec in PARAMS} | {"camera_info_wait_sec": 0.0} | overrides
    log = {"rejected": [], "warnings": []}
    channel = CameraChannel(values.__getitem__, lambda kind, line: log["rejected"].append(kind),
                            lambda line: None, log["warnings"].append, lambda: info_publishers)
    return channel, log


def _image(sec: int, nanosec: int = 0) -> Image:
    msg = Image(height=32, width=64, encoding="rgb8", step=64 * 3, data=bytes(32 * 64 * 3))
    msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id = sec, nanosec, "cam"
    return msg


def _info(sec: int, d=()) -> CameraInfo:
    msg = CameraInfo(width=64, height=32, k=K, p=[32.0, 0, 32, 0, 0, 32.0, 16, 0, 0, 0, 1, 0], d=list(d))
    msg.header.stamp.sec = sec
    return msg


def test_admit_checks_the_stamp_order():
    channel, log = _channel()
    assert channel.admit(_image(2)).stamp_ns == 2 * 10 ** 9
    assert channel.admit(_image(2)) is None  # duplicate
    assert channel.admit(_image(-1)) is None  # malformed
    zero = channel.admit(_image(0))
    assert zero is not None and not zero.stamped  # served, no latency sample
    assert log["rejected"] == ["duplicate_stamp", "bad_stamp", "zero_stamp"]


def test_process_pairs_camera_info_and_returns_what_to_publish():
    channel, log = _channel()
    channel.add_camera_info(_info(3, d=[0.1, 0, 0, 0, 0]))
    channel.add_camera_info(_info(4, d=[0.1, 0, 0, 0, 0]))
    assert len(log["warnings"]) == 1  # distortion warned once
    predictor = _Predictor()
    out = channel.process(Frame(_image(3), 3 * 10 ** 9), {"depth", "depth_info"}, predictor)
    assert predictor.tasks == [("depth",)]
    assert [key for key, _ in out.messages] == ["depth", "depth_info"] and not out.metric
    assert out.timings == {"forward": 1.0} and log["rejected"] == []


def test_a_frame_without_camera_info_publishes_no_depth_info():
    channel, log = _channel(info_publishers=0)
    out = channel.process(Frame(_image(5), 5 * 10 ** 9), {"depth", "depth_info", "semantic"}, _Predictor())
    assert [key for key, _ in out.messages] == ["depth", "semantic"]
    assert log["rejected"] == []  # no camera_info publisher: not an error
    bad = _image(6)
    bad.data = bytes(10)
    assert channel.process(Frame(bad, 6 * 10 ** 9), {"depth"}, _Predictor()) is None
    assert len(log["rejected"]) == 1
