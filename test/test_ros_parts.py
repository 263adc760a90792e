"""The node's ROS-free parts: intrinsics, point clouds, stamp pairing, newest-frame slot, stats, parameters."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import yaml

from sgdepth_ros.predictor import Prediction
from sgdepth_ros.ros.camera_model import backproject, check_geometry, scale_geometry
from sgdepth_ros.ros.image_codec import InputError
from sgdepth_ros.ros.launcher import share_file
from sgdepth_ros.ros.outputs import RenderSettings, render
from sgdepth_ros.ros.params import PARAMS, validate, validate_together
from sgdepth_ros.ros.pointcloud import pack_points, unpack_points
from sgdepth_ros.ros.stats import NodeStats, RateLimitedLog, StampOrder
from sgdepth_ros.ros.sync import StampCache

K = [720.0, 0, 620, 0, 710.0, 180, 0, 0, 1]
P = [720.0, 0, 620, 5.0, 0, 710.0, 180, 0, 0, 0, 1, 0]


def test_geometry_scaling_matches_a_resized_image():
    g = check_geometry(1240, 360, K, P)
    s = scale_geometry(g, 620, 120)
    assert (s.fx, s.cx, s.fy, s.cy) == (360.0, 310.0, 710.0 / 3, 60.0)
    assert s.p[3] == 2.5 and s.p[5] == pytest.approx(710.0 / 3) and s.p[10] == 1.0


def test_unset_p_becomes_k():
    g = check_geometry(1240, 360, K, [0.0] * 12)
    assert g.p == (720.0, 0, 620, 0, 0, 710.0, 180, 0, 0, 0, 1, 0)


@pytest.mark.parametrize("k, p, size", [([0.0] * 9, P, (10, 10)), ([float("nan")] + K[1:], P, (10, 10)),
                                         (K, [float("inf")] + P[1:], (10, 10)), ([-1.0] + K[1:], P, (10, 10)),
                                         (K[:8], P, (10, 10)), (K, P, (0, 10))])
def test_bad_intrinsics_are_rejected(k, p, size):
    with pytest.raises(InputError) as err:
        check_geometry(*size, k, p)
    assert err.value.kind == "bad_intrinsics"


def test_backprojection_lands_where_the_intrinsics_say():
    g = check_geometry(8, 6, [4.0, 0, 4, 0, 2.0, 3, 0, 0, 1], [0.0] * 12)
    depth = np.full((6, 8), 10.0, np.float32)
    depth[0, 0] = np.nan
    depth[5, 7] = 0.0
    points, index = backproject(depth, g)
    assert len(points) == 46  # two invalid pixels skipped
    u, v = index % 8, index // 8
    np.testing.assert_allclose(points[:, 0], (u - 4) / 4.0 * 10)
    np.testing.assert_allclose(points[:, 1], (v - 3) / 2.0 * 10)
    np.testing.assert_allclose(points[:, 2], 10)
    decimated, idx2 = backproject(np.full((6, 8), 2.0, np.float32), g, decimation=2)
    assert len(decimated) == 12 and set(idx2 % 8) == {0, 2, 4, 6}


def test_point_packing_round_trip():
    pts = np.array([[1, 2, 3], [-1, 0.5, 9]], np.float32)
    cloud = unpack_points(pack_points(pts, np.array([[255, 0, 10], [1, 2, 3]], np.uint8), np.array([13, 255], np.uint8)))
    assert cloud.dtype.itemsize == 20
    np.testing.assert_array_equal(np.stack([cloud["x"], cloud["y"], cloud["z"]], 1), pts)
    assert list(cloud["rgb"]) == [0xFF000A, 0x010203] and list(cloud["label"]) == [13, 255]


def test_stamp_cache_pairs_exact_and_within_tolerance():
    cache = StampCache(capacity=3)
    for stamp in (100, 200, 300, 400):
        cache.add(stamp, f"info{stamp}")
    assert cache.find(300) == "info300"
    assert cache.find(100) is None  # evicted (capacity 3)
    assert cache.find(305) is None and cache.find(305, tolerance_ns=10) == "info300"
    assert cache.latest() == "info400"

    def late_add():
        time.sleep(0.05)
        cache.add(500, "info500")
    threading.Thread(target=late_add).start()
    assert cache.wait_for(500, 0, timeout=5.0) == "info500"
    assert cache.wait_for(999, 0, timeout=0.01) is None


def test_stamp_order():
    order = StampOrder(reset_after_ns=1000)
    assert order.check(5000) is None
    assert order.check(5000) == "duplicate_stamp"
    assert order.check(4500) == "out_of_order_stamp"
    assert order.check(6000) is None
    assert order.check(10) is None  # a jump back > 1000 ns: new timeline (bag loop)
    assert order.check(20) is None


def test_stats_and_rate_limited_log():
    stats = NodeStats()
    for i in range(5):
        stats.received()
        stats.processed(latency_ms=10.0 * (i + 1), timings={"preprocess": 1.0, "forward": 3.0, "postprocess": 1.0},
                        processing_ms=6.0)
    stats.dropped(2)
    stats.error("short_data")
    snap = stats.snapshot()
    assert snap["frames_processed"] == 5 and snap["frames_dropped"] == 2
    assert snap["latency_p50_ms"] == 30.0 and snap["errors"] == {"short_data": 1}
    lines = []
    log = RateLimitedLog(lines.append, period_s=60)
    for _ in range(3):
        log("bad_step", "x")
    log("short_data", "y")
    assert lines == ["[bad_step] x", "[short_data] y"]


def test_parameter_validation_names_the_valid_range():
    assert validate("overlay_alpha", 0.3) is None
    assert "[0, 1]" in validate("overlay_alpha", 1.5)
    assert "one of relative, fixed" in validate("scale_mode", "metric")
    assert validate("device", "cuda:1") is None and "matching" in validate("device", "gpu")
    assert "multiple of 32" in validate("input_width", 100)
    assert "must be a" in validate("points_decimation", "2")
    assert validate("use_sim_time", True) is None  # not ours
    assert "below" in validate_together({"depth_color_min": 50.0, "depth_color_max": 10.0})
    assert "CUDA" in validate_together({"precision": "fp16", "device": "cpu"})


def test_config_yaml_holds_the_declared_defaults():
    config = yaml.safe_load(share_file("config/sgdepth.yaml").read_text())["/**"]["ros__parameters"]
    assert config == {p.name: list(p.default) if isinstance(p.default, tuple) else p.default for p in PARAMS}
    for p in PARAMS:
        assert validate(p.name, p.default) is None, p.name


def test_render_computes_only_what_is_wanted():
    rng = np.random.default_rng(0)
    pred = Prediction(depth=rng.uniform(1, 50, (6, 8)).astype(np.float32), disparity=None,
                      labels=rng.integers(0, 19, (6, 8)).astype(np.uint8), is_metric=True,
                      image=rng.integers(0, 255, (6, 8, 3)).astype(np.uint8))
    pred.depth[0, 0] = np.inf
    settings = RenderSettings(points_decimation=1)
    assert set(render(pred, {"semantic"}, settings, None)) == {"semantic"}
    g = check_geometry(8, 6, [4.0, 0, 4, 0, 4.0, 3, 0, 0, 1], [0.0] * 12)
    out = render(pred, {"depth", "depth_color", "semantic_color", "overlay", "points"}, settings, g)
    assert set(out) == {"depth", "depth_color", "semantic_color", "overlay", "points"}
    assert np.isnan(out["depth"][0, 0]) and out["depth"].dtype == np.float32
    data, count = out["points"]
    assert count == 47
    cloud = unpack_points(data)
    assert set(cloud["label"]) <= set(range(19))
    assert "points" not in render(pred, {"points"}, settings, None)  # no camera_info, no cloud


def test_camera_parameters_are_validated_with_the_camera_named():
    from sgdepth_ros.ros.params import camera_values

    assert validate("cameras", ["front", "left"]) is None
    assert "named more than once" in validate("cameras", ["front", "front"])
    assert "must match" in validate("cameras", ["front/left"])
    assert "list of names" in validate("cameras", "front")
    assert "at most 16" in validate("cameras", [f"c{i}" for i in range(17)])
    assert "front.input_transport" in validate("front.input_transport", "h264")
    assert validate("front.camera_height", 1.5) is None
    values = {p.name: p.default for p in PARAMS} | {"cameras": ["front", "rear"], "scale_mode": "camera_height",
                                                    "front.camera_height": 1.6, "rear.camera_height": 0.0}
    assert camera_values(values, "front")["camera_height"] == 1.6
    assert validate_together(values).startswith("camera rear: ")  # rear has no height source
    values["rear.camera_height"] = 1.2
    assert validate_together(values) is None
