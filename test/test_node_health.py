"""The node's health logic without ROS: diagnostics level, stamp validation, warm-up, import weight."""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from sgdepth_ros.ros import outputs
from sgdepth_ros.ros.launcher import ros_environment
from sgdepth_ros.ros.outputs import OUTPUT_KEYS, RenderSettings, warm_up
from sgdepth_ros.ros.params import validate
from sgdepth_ros.ros.stats import OK, WARN, NodeStats, diagnostic_level, stamp_problem

TIMINGS = {"preprocess": 2.0, "forward": 50.0, "postprocess": 3.0}


def _feed(stats: NodeStats, received: int, processed: int, idle: int = 0) -> None:
    for _ in range(received):
        stats.received()
    for _ in range(idle):
        stats.idle()
    for _ in range(processed):
        stats.processed(40.0, TIMINGS, 60.0)
    stats.dropped(max(0, received - idle - processed))


# ---- diagnostics level -------------------------------------------------------------------------------
def test_frames_dropped_by_the_newest_frame_policy_alone_keep_ok():
    """A 30 Hz camera ahead of a 15 Hz node: half the frames are dropped, by design, period after period."""
    stats = NodeStats()
    previous = None
    for _ in range(3):
        _feed(stats, received=30, processed=15)
        snap = stats.snapshot()
        level, message = diagnostic_level(snap, previous, max_ratio=5.0)
        assert level == OK and message.startswith("ok"), message
        previous = snap
    assert snap["frames_dropped"] == 45 and snap["input_output_ratio"] == pytest.approx(2.0)


def test_a_rejected_message_warns_for_the_period_it_happened_in_only():
    stats = NodeStats()
    _feed(stats, received=10, processed=10)
    first = stats.snapshot()
    stats.error("short_data")
    second = stats.snapshot()
    level, message = diagnostic_level(second, first, max_ratio=5.0)
    assert level == WARN and "short_data 1" in message
    assert diagnostic_level(stats.snapshot(), second, max_ratio=5.0)[0] == OK  # nothing new since
    assert diagnostic_level(second, None, max_ratio=5.0)[0] == WARN  # the first report counts from zero


def test_an_input_much_faster_than_the_node_warns_above_the_threshold():
    stats = NodeStats()
    _feed(stats, received=30, processed=5)  # 6 frames in per frame out
    snap = stats.snapshot()
    assert snap["input_output_ratio"] == pytest.approx(6.0)
    level, message = diagnostic_level(snap, snap, max_ratio=5.0)
    assert level == WARN and "warn_input_output_ratio 5" in message
    assert diagnostic_level(snap, snap, max_ratio=7.0)[0] == OK
    assert diagnostic_level(snap, snap, max_ratio=0.0)[0] == OK  # 0: the rate check is off


def test_idle_frames_and_a_start_up_handful_are_not_judged():
    stats = NodeStats()
    _feed(stats, received=40, processed=0, idle=40)  # nobody subscribes: nothing to serve
    snap = stats.snapshot()
    assert snap["window_frames_to_serve"] == 0 and diagnostic_level(snap, snap, 5.0)[0] == OK
    stats = NodeStats()
    _feed(stats, received=3, processed=0)  # the first frames of a start-up, none served yet
    snap = stats.snapshot()
    assert snap["input_output_ratio"] == math.inf and diagnostic_level(snap, snap, 5.0)[0] == OK
    _feed(stats, received=5, processed=0)  # 8 frames and still none served: stuck
    assert diagnostic_level(stats.snapshot(), snap, 5.0)[0] == WARN


def test_threshold_parameter_range():
    assert validate("warn_input_output_ratio", 0.0) is None and validate("warn_input_output_ratio", 1.0) is None
    assert "0 (off)" in validate("warn_input_output_ratio", 0.5)
    assert "out of range" in validate("warn_input_output_ratio", -1.0)


# ---- timings ---------------------------------------------------------------------------------------------
def test_timings_are_named_for_what_they_measure():
    stats = NodeStats()
    assert math.isnan(stats.snapshot()["warmup_ms"])
    stats.warmed_up(412.0)
    stats.processed(80.0, {"preprocess": 5.0, "forward": 300.0, "postprocess": 20.0}, 340.0)
    for _ in range(4):
        stats.processed(None, TIMINGS, 60.0)  # zero-stamped frames: no latency sample
    snap = stats.snapshot()
    assert snap["warmup_ms"] == 412.0 and snap["first_predict_ms"] == 325.0
    assert snap["predict_p50_ms"] == 55.0 and snap["forward_p50_ms"] == 50.0 and snap["processing_p50_ms"] == 60.0
    assert snap["latency_p50_ms"] == 80.0 and snap["frames_processed"] == 5
    assert "inference_p50_ms" not in snap


# ---- stamps -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sec, nanosec, kind", [
    (1_700_000_000, 999_999_999, None), (1, 0, None), (0, 1, None),
    (0, 0, "zero_stamp"),
    (1_700_000_000, 1_000_000_000, "bad_stamp"), (5, 4_000_000_000, "bad_stamp"), (-1, 0, "bad_stamp"),
    (-2_147_483_648, 500, "bad_stamp"),
])
def test_stamp_validation(sec, nanosec, kind):
    assert stamp_problem(sec, nanosec) == kind


# ---- warm-up -----------------------------------------------------------------------------------------------
class _CountingPredictor:
    input_size = (64, 32)  # (width, height)

    def __init__(self):
        self.calls, self.batches = [], []

    def predict_batch(self, rgbs, output_resolution=None, tasks=None):
        from sgdepth_ros.predictor import Prediction

        self.calls.append((rgbs[0].shape, rgbs[0].dtype, output_resolution, tasks))
        self.batches.append(len(rgbs))
        return [self._one(rgb, tasks, Prediction) for rgb in rgbs]

    @staticmethod
    def _one(rgb, tasks, Prediction):
        h, w = rgb.shape[:2]
        run = tasks or ("depth", "segmentation")
        return Prediction(depth=np.full((h, w), 5.0, np.float32) if "depth" in run else None, disparity=None,
                          labels=np.zeros((h, w), np.uint8) if "segmentation" in run else None, is_metric=False,
                          image=rgb)


@pytest.mark.parametrize("resolution", ["network", "input"])
def test_warm_up_runs_one_prediction_at_the_network_size_and_renders_every_output(monkeypatch, resolution):
    rendered = []

    def recording_render(prediction, wanted, settings, geometry):
        result = real_render(prediction, wanted, settings, geometry)
        rendered.append((set(wanted), geometry, set(result)))
        return result

    real_render = outputs.render
    monkeypatch.setattr(outputs, "render", recording_render)
    predictor = _CountingPredictor()
    elapsed = warm_up(predictor, resolution, RenderSettings())
    assert predictor.calls == [((32, 64, 3), np.uint8, resolution, None)]  # the predictor's default tasks
    (wanted, geometry, produced), = rendered
    assert wanted == set(OUTPUT_KEYS) and (geometry.width, geometry.height) == (64, 32)
    assert {"depth", "depth_color", "semantic", "semantic_color", "overlay", "points"} <= produced
    assert elapsed >= 0.0


def test_warm_up_runs_every_task_set_the_node_can_ask_for():
    """Per-task graphs (OpenVINO compiles one per task set on first use) are all warm before the first frame."""
    from sgdepth_ros.ros.output_tasks import reachable_task_sets

    everything = reachable_task_sets(set(OUTPUT_KEYS))
    assert everything == [("depth",), ("depth", "segmentation"), ("segmentation",)]
    assert reachable_task_sets({"depth", "depth_color"}) == [("depth",)]
    assert reachable_task_sets({"semantic", "depth_info"}) == [("depth",), ("depth", "segmentation"),
                                                               ("segmentation",)]
    assert reachable_task_sets(set()) == []
    predictor = _CountingPredictor()
    warm_up(predictor, "network", RenderSettings(), everything)
    assert [call[3] for call in predictor.calls] == everything


def test_warm_up_runs_the_batch_the_node_will_run():
    """A node batching four cameras (on CUDA) warms the batch-of-four graph up, once per task set."""
    predictor = _CountingPredictor()
    warm_up(predictor, "network", RenderSettings(), [("depth",), ("depth", "segmentation")], batch=4)
    assert predictor.batches == [4, 4]


# ---- import weight ------------------------------------------------------------------------------------------
def test_the_node_starts_without_importing_torch():
    """The node module, its ROS-free parts and the node object itself load neither torch nor the
    training/offline-only packages: configure imports torch when it builds the predictor."""
    code = """
import sys
import rclpy
import sgdepth_ros.ros.node as node
from sgdepth_ros.ros import camera_model, frame_scheduler, image_codec, messages, outputs, params, pointcloud, stats, sync
rclpy.init()
n = node.SGDepthNode()
n.destroy_node()
rclpy.try_shutdown()
print(sorted(m for m in ("torch", "torchvision", "openvino", "matplotlib", "rosbags", "training") if m in sys.modules))
"""
    result = subprocess.run([sys.executable, "-c", code], env=ros_environment(large_images=False),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout
