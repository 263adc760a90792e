"""The node's per-camera channel without DDS: stamp admission, CameraInfo pairing and one frame's processing with a
stub predictor (what the node publishes is what the channel returns)."""
from __future__ import annotations

import numpy as np
from sensor_msgs.msg import CameraInfo, Image

from sgdepth_ros.predictor import Prediction
from sgdepth_ros.ros.camera_channel import CameraChannel, Frame, process_frames
from sgdepth_ros.ros.params import PARAMS

K = [32.0, 0, 32, 0, 32.0, 16, 0, 0, 1]


class _Predictor:
    def __init__(self):
        self.tasks, self.batches = [], []

    def predict_batch(self, rgbs, output_resolution, tasks, scales):
        self.tasks.append(tasks)
        self.batches.append([rgb.shape for rgb in rgbs])
        return [self._one(rgb, tasks) for rgb in rgbs]

    @staticmethod
    def _one(rgb, tasks):
        h, w = rgb.shape[:2]
        depth = np.full((h, w), 5.0, np.float32) if "depth" in tasks else None
        labels = np.zeros((h, w), np.uint8) if "segmentation" in tasks else None
        return Prediction(depth, None if depth is None else 1 / depth, labels, False, rgb, {"forward": 1.0})


def _channel(info_publishers=1, name="", **overrides):
    """A channel on the default parameters (and ``overrides``) and the warning lines it logs."""
    values = {spec.name: spec.default for spec in PARAMS} | {"camera_info_wait_sec": 0.0} | overrides
    warnings = []
    channel = CameraChannel(name, values.__getitem__, lambda line: None, warnings.append, lambda: info_publishers)
    return channel, warnings


def _errors(channel) -> dict:
    return channel.stats.snapshot()["errors"]


def _process(channel, frame, wanted, predictor):
    return process_frames([(channel, frame, wanted)], predictor, "network")[0]


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
    assert _errors(channel) == {"duplicate_stamp": 1, "bad_stamp": 1, "zero_stamp": 1}
    assert [line.split("]")[0] for line in log] == ["[duplicate_stamp", "[bad_stamp", "[zero_stamp"]


def test_process_pairs_camera_info_and_returns_what_to_publish():
    channel, log = _channel()
    channel.add_camera_info(_info(3, d=[0.1, 0, 0, 0, 0]))
    channel.add_camera_info(_info(4, d=[0.1, 0, 0, 0, 0]))
    assert len(log) == 1 and "distortion" in log[0]  # warned once
    predictor = _Predictor()
    out = _process(channel, Frame(_image(3), 3 * 10 ** 9), {"depth", "depth_info"}, predictor)
    assert predictor.tasks == [("depth",)]
    assert [key for key, _ in out.messages] == ["depth", "depth_info"] and not out.metric
    assert out.timings == {"forward": 1.0} and _errors(channel) == {}


def test_a_frame_without_camera_info_publishes_no_depth_info():
    channel, log = _channel(info_publishers=0)
    out = _process(channel, Frame(_image(5), 5 * 10 ** 9), {"depth", "depth_info", "semantic"}, _Predictor())
    assert [key for key, _ in out.messages] == ["depth", "semantic"]
    assert _errors(channel) == {}  # no camera_info publisher: not an error
    bad = _image(6)
    bad.data = bytes(10)
    assert _process(channel, Frame(bad, 6 * 10 ** 9), {"depth"}, _Predictor()) is None
    assert sum(_errors(channel).values()) == 1


def test_a_batch_runs_every_camera_in_one_prediction_and_isolates_a_broken_frame():
    """Three cameras in one batch: one forward pass for the decodable frames with the union of their tasks, each
    output at its own camera's size; the broken frame is rejected on its own camera only."""
    front, _ = _channel(name="front")
    left, _ = _channel(name="left")
    rear, _ = _channel(name="rear")
    small = Image(height=16, width=24, encoding="rgb8", step=24 * 3, data=bytes(16 * 24 * 3))
    small.header.stamp.sec = 7
    broken = _image(7)
    broken.data = bytes(10)
    predictor = _Predictor()
    outs = process_frames([(front, Frame(_image(7), 7 * 10 ** 9), {"depth"}),
                           (left, Frame(broken, 7 * 10 ** 9), {"semantic"}),
                           (rear, Frame(small, 7 * 10 ** 9), {"semantic"})], predictor, "input")
    assert predictor.batches == [[(32, 64, 3), (16, 24, 3)]]  # one call, the two decodable frames
    assert predictor.tasks == [("depth", "segmentation")]  # the union: front wants depth, rear labels
    assert [key for key, _ in outs[0].messages] == ["depth"] and outs[1] is None
    assert [key for key, _ in outs[2].messages] == ["semantic"]
    assert (outs[2].messages[0][1].width, outs[2].messages[0][1].height) == (24, 16)
    assert _errors(front) == _errors(rear) == {} and _errors(left) == {"short_data": 1}
    assert front.prefix == "front/" and _channel()[0].prefix == ""
