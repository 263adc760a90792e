"""The node's camera-height scale without a ROS graph: the height from a TF transform (a stand-in tf2 buffer: no tf2
wheel exists), which height source wins, the per-camera scale state (filter, timeline, missing frames), the scale
parameters, the task sets a measured scale needs and the messages it adds."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from sgdepth_ros.predictor import Prediction
from sgdepth_ros.ros.params import PARAMS, validate, validate_together
from sgdepth_ros.ros.scale_state import (CameraHeight, CameraScaleState, height_from_transform, height_source_problem,
                                         with_scale)

W, H = 320, 96
K = np.array([[0.58 * W, 0, 0.5 * W], [0, 1.92 * H, 0.5 * H], [0, 0, 1]])
ROAD, BUILDING = 0, 2
TRUE_SCALE = 4.0  # metres per model unit of the analytic "prediction"


def flat_road(camera_height: float = 1.65) -> tuple[np.ndarray, np.ndarray]:
    """Depth (model units) and labels of a flat road under a level camera ``camera_height`` m up (building above)."""
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    down = (v - K[1, 2]) / K[1, 1]
    z = np.where(down > 1e-3, camera_height / np.maximum(down, 1e-3), np.inf)
    road = z < 80.0
    depth = np.where(road, z, 40.0) / TRUE_SCALE
    return depth.astype(np.float32), np.where(road, ROAD, BUILDING).astype(np.uint8)


def transform(z: float, x: float = 1.0, y: float = 0.0):
    """A geometry_msgs/TransformStamped look-alike (what tf2_ros.Buffer.lookup_transform returns)."""
    return SimpleNamespace(header=SimpleNamespace(frame_id="base_footprint"), child_frame_id="camera_optical_frame",
                           transform=SimpleNamespace(translation=SimpleNamespace(x=x, y=y, z=z),
                                                     rotation=SimpleNamespace(x=-0.5, y=0.5, z=-0.5, w=0.5)))


class StandInBuffer:
    """tf2_ros.Buffer's lookup_transform(target_frame, source_frame, time): answers the frames it knows, records
    every lookup, raises like tf2 (a LookupException) for the others."""

    def __init__(self, known: dict[tuple[str, str], float]):
        self.known = known
        self.lookups: list[tuple] = []

    def lookup_transform(self, target, source, time):
        self.lookups.append((target, source, time))
        if (target, source) not in self.known:
            raise LookupError(f'"{source}" passed to lookupTransform argument source_frame does not exist')
        return transform(self.known[(target, source)])


# ---- the height from TF, and which source wins ------------------------------------------------------------------
def test_height_is_the_camera_origin_z_in_the_ground_frame():
    assert height_from_transform(transform(1.65)) == 1.65
    assert height_from_transform(transform(1.2).transform) == 1.2  # a bare Transform works too
    for bad in (0.0, -0.3, math.nan, math.inf, 150.0):
        with pytest.raises(ValueError, match="ground frame"):
            height_from_transform(transform(bad))


def test_tf_wins_when_it_answers_and_the_parameter_stands_in_otherwise():
    latest = object()
    buffer = StandInBuffer({("base_footprint", "camera_optical_frame"): 1.5})
    heights = CameraHeight(1.65, "base_footprint", buffer, latest)
    reading = heights.resolve("camera_optical_frame")
    assert (reading.height, reading.source, reading.problem) == (1.5, "tf", None)
    assert buffer.lookups == [("base_footprint", "camera_optical_frame", latest)]  # ground ← image frame, latest
    fallback = heights.resolve("other_camera")  # TF does not know the frame: the parameter, with the reason
    assert (fallback.height, fallback.source) == (1.65, "parameter") and "does not exist" in fallback.problem
    assert heights.resolve("").problem.startswith("the image header has no frame_id")
    assert "TF base_footprint" in heights.describe() and "camera_height 1.65 m (fallback)" in heights.describe()


def test_without_any_answer_the_height_is_missing():
    tf_only = CameraHeight(0.0, "base_footprint", StandInBuffer({}))
    reading = tf_only.resolve("camera_optical_frame")
    assert reading.height is None and reading.source == "none" and "LookupError" in reading.problem
    parameter_only = CameraHeight(1.65)
    assert parameter_only.resolve("anything") == parameter_only.resolve("") and not parameter_only.uses_tf
    assert CameraHeight(1.65, "", StandInBuffer({})).uses_tf is False  # no ground frame: no TF
    with pytest.raises(ValueError, match="camera_height"):
        CameraHeight(-1.0)


def test_a_missing_height_source_names_what_to_set():
    assert height_source_problem(1.65, "") is None
    assert height_source_problem(0.0, "base_footprint", tf_available=True) is None
    assert height_source_problem(0.0, "") == ("scale_mode camera_height needs camera_height > 0 or ground_frame "
                                             "with tf2_ros available")
    problem = height_source_problem(0.0, "base_footprint", tf_available=False)
    assert "ground_frame 'base_footprint' is set, but tf2_ros cannot be imported" in problem
    assert height_source_problem(1.65, "base_footprint", tf_available=False) is None  # the parameter stands in


# ---- the per-camera scale state ---------------------------------------------------------------------------------
def test_first_frames_are_relative_then_the_exact_scale():
    state = CameraScaleState(CameraHeight(1.65), window=5, min_samples=3)
    depth, labels = flat_road()
    steps = [state.step(depth, labels, K, stamp_ns=10 ** 9 * (i + 1), camera_frame="cam") for i in range(4)]
    assert [s.factor is None for s in steps] == [True, True, False, False]
    assert "1 of 3 frames with road" in steps[0].reason
    assert [s.locked for s in steps] == [False, False, True, False]
    assert steps[2].factor == pytest.approx(TRUE_SCALE, rel=1e-3)
    diag = state.diagnostics()
    assert diag["scale/metric"] == "true" and float(diag["scale/factor"]) == pytest.approx(TRUE_SCALE, rel=1e-3)
    assert diag["scale/accepted"] == "4" and diag["scale/missing"] == "0" and diag["scale/height_source"] == "parameter"
    assert "scale/relative_because" not in diag


def test_frames_without_camera_info_road_or_height_count_as_missing():
    state = CameraScaleState(CameraHeight(1.65), window=5, min_samples=1)
    depth, labels = flat_road()
    no_info = state.step(depth, labels, None, 10 ** 9)
    assert no_info.factor is None and no_info.reason.startswith("no CameraInfo for this frame")
    no_road = state.step(depth, np.full_like(labels, BUILDING), K, 2 * 10 ** 9)
    assert no_road.reason.startswith("no usable road in view")
    assert state.state.missing == 2 and state.diagnostics()["scale/relative_because"] == no_road.reason
    no_height = CameraScaleState(CameraHeight(0.0, "base_footprint", StandInBuffer({})), min_samples=1)
    step = no_height.step(depth, labels, K, 10 ** 9, "cam")
    assert step.factor is None and step.reason.startswith("no camera height (TF base_footprint → cam")
    assert no_height.state.missing == 1 and no_height.diagnostics()["scale/camera_height_m"] == "none"


def test_a_backward_stamp_starts_a_new_timeline():
    state = CameraScaleState(CameraHeight(1.65), window=5, min_samples=2)
    depth, labels = flat_road()
    for i in range(3):
        state.step(depth, labels, K, stamp_ns=(100 + i) * 10 ** 9)
    assert state.state.scale is not None
    looped = state.step(depth, labels, K, stamp_ns=5 * 10 ** 9)  # the bag started over
    assert looped.new_timeline and looped.factor is None and state.timeline_resets == 1
    assert state.state.accepted == 1  # the filter forgot the old drive
    assert not state.step(depth, labels, K, stamp_ns=None).new_timeline  # unstamped frames: no timeline check
    assert state.step(depth, labels, K, stamp_ns=6 * 10 ** 9).factor is not None


def test_the_height_from_tf_sets_the_scale_and_follows_a_new_calibration():
    buffer = StandInBuffer({("base_footprint", "cam"): 1.65})
    state = CameraScaleState(CameraHeight(3.3, "base_footprint", buffer), window=3, min_samples=1)
    depth, labels = flat_road(camera_height=1.65)
    assert state.step(depth, labels, K, 10 ** 9, "cam").factor == pytest.approx(TRUE_SCALE, rel=1e-3)
    assert state.diagnostics()["scale/height_source"] == "tf"
    buffer.known.clear()  # TF lost: the parameter (twice as high) stands in, the filter keeps its window
    state.step(depth, labels, K, 2 * 10 ** 9, "cam")
    assert state.last_reading.source == "parameter" and state.last_estimate == pytest.approx(2 * TRUE_SCALE, rel=1e-3)
    assert state.diagnostics()["scale/height_problem"].startswith("TF base_footprint → cam")


def test_with_scale_turns_model_units_into_metres():
    depth, labels = flat_road()
    relative = Prediction(depth, None, labels, False, scale=None)
    metric = with_scale(relative, TRUE_SCALE)
    assert metric.is_metric and metric.scale == TRUE_SCALE and metric.labels is labels
    np.testing.assert_allclose(metric.depth, depth * TRUE_SCALE, rtol=1e-6)
    assert relative.depth is depth and not relative.is_metric  # the input is left alone


# ---- parameters -------------------------------------------------------------------------------------------------
def _values(**changes) -> dict:
    return {**{p.name: p.default for p in PARAMS}, **changes}


def test_scale_parameters_are_validated_with_their_ranges():
    assert "camera_height" in {p.name for p in PARAMS} and validate("scale_mode", "camera_height") is None
    assert "[0, 100]" in validate("camera_height", 120.0) and "[1, 1000]" in validate("scale_window", 0)
    assert "[1, 1000]" in validate("scale_min_samples", 0)
    assert validate("ground_frame", "base_footprint") is None and "matching" in validate("ground_frame", "a b")
    assert validate_together(_values(scale_mode="camera_height", camera_height=1.65)) is None
    assert validate_together(_values(scale_mode="camera_height", ground_frame="base_footprint")) is None
    assert validate_together(_values(scale_mode="camera_height")).startswith(
        "scale_mode camera_height needs camera_height > 0 or ground_frame with tf2_ros available")
    assert "scale_factor" in validate_together(_values(scale_mode="camera_height", camera_height=1.65,
                                                       scale_factor=50.0))
    assert "at most scale_window (5)" in validate_together(_values(scale_mode="camera_height", camera_height=1.65,
                                                                   scale_window=5, scale_min_samples=6))
    assert "only with scale_mode camera_height" in validate_together(_values(camera_height=1.65))
    assert "ground_frame is used only" in validate_together(_values(scale_mode="fixed", ground_frame="base_link"))


# ---- the node's task sets and messages --------------------------------------------------------------------------
def test_a_measured_scale_adds_the_road_labels_whenever_depth_runs():
    from sgdepth_ros.ros.output_tasks import reachable_task_sets, tasks_for_outputs

    assert tasks_for_outputs({"depth"}) == ("depth",)
    assert tasks_for_outputs({"depth"}, ("segmentation",)) == ("depth", "segmentation")
    assert tasks_for_outputs({"scale"}, ("segmentation",)) == ("depth", "segmentation")
    assert tasks_for_outputs({"semantic"}, ("segmentation",)) == ("segmentation",)  # no depth: nothing measured
    assert reachable_task_sets({"depth", "depth_color", "semantic"}, ("segmentation",)) == [
        ("depth", "segmentation"), ("segmentation",)]


def test_scale_topic_relative_topics_and_diagnostics_values():
    from sgdepth_ros.ros import messages

    assert messages.SCALE_TOPIC == "depth/scale" and messages.scale_message(61.5).data == pytest.approx(61.5)
    assert {k: t for k, (t, _) in messages.relative_topics().items()} == {"depth": "depth/relative",
                                                                          "points": "points/relative"}
    snapshot = {"frames_processed": 3, "errors": {}}
    status = messages.diagnostics_status(snapshot, "n", "cpu", 0, "ok",
                                         {"scale/factor": "61.5", "scale/height_source": "tf"})
    values = {kv.key: kv.value for kv in status.values}
    assert values == {"frames_processed": "3", "scale/factor": "61.5", "scale/height_source": "tf"}
