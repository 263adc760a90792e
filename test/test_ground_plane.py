"""Camera-height scale: the ground-plane estimator and its temporal filter, on analytic scenes with known scale."""
from __future__ import annotations

import math

import numpy as np
import pytest

from sgdepth_ros.ground_plane import (GroundPlaneConfig, estimate_ground_plane, fit_ground_plane, road_points,
                                      scale_from_camera_height)
from sgdepth_ros.scale_filter import ScaleFilter

W, H = 640, 192
K = np.array([[0.58 * W, 0, 0.5 * W], [0, 1.92 * H, 0.5 * H], [0, 0, 1]])
ROAD, BUILDING, CAR = 0, 2, 13
CAMERA_HEIGHT = 1.65
TRUE_SCALE = 5.3  # metres per model unit of the synthetic "prediction"


def scene(pitch_deg: float = 0.0, height: float = CAMERA_HEIGHT, car_box=None, rng=None, depth_noise=0.0):
    """Depth (model units) and labels of a flat road under a camera ``height`` m up, pitched down ``pitch_deg``.

    Everything above the road's horizon is a building 40 m away. ``car_box`` = (u0, v0, u1, v1) puts a car
    (a fronto-parallel box at the road depth of its bottom row) into the image.
    """
    pitch = math.radians(pitch_deg)
    normal = np.array([0.0, math.cos(pitch), math.sin(pitch)])  # road normal in the optical frame
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], axis=-1)
    along = rays @ normal
    z = np.where(along > 1e-3, height / np.maximum(along, 1e-3), np.inf)
    road = z < 80.0
    depth = np.where(road, z, 40.0)
    labels = np.where(road, ROAD, BUILDING).astype(np.uint8)
    if car_box is not None:
        u0, v0, u1, v1 = car_box
        depth[v0:v1, u0:u1] = depth[v1 - 1, (u0 + u1) // 2]
        labels[v0:v1, u0:u1] = CAR
    if depth_noise:
        depth = depth * (1 + depth_noise * rng.standard_normal(depth.shape))
    return (depth / TRUE_SCALE).astype(np.float32), labels


def estimated_scale(depth, labels, config=GroundPlaneConfig()):
    return scale_from_camera_height(estimate_ground_plane(depth, labels, K, config), CAMERA_HEIGHT)


def test_level_camera_recovers_the_exact_scale():
    depth, labels = scene()
    plane = estimate_ground_plane(depth, labels, K)
    assert plane is not None and plane.tilt_deg < 0.01
    assert scale_from_camera_height(plane, CAMERA_HEIGHT) == pytest.approx(TRUE_SCALE, rel=1e-4)


def test_camera_pitched_down_5_degrees_gives_the_same_scale():
    depth, labels = scene(pitch_deg=5.0)
    plane = estimate_ground_plane(depth, labels, K)
    assert plane.tilt_deg == pytest.approx(5.0, abs=0.05)
    assert scale_from_camera_height(plane, CAMERA_HEIGHT) == pytest.approx(TRUE_SCALE, rel=1e-3)


def test_depth_noise_moves_the_scale_little():
    rng = np.random.default_rng(1)
    depth, labels = scene(rng=rng, depth_noise=0.02)
    assert estimated_scale(depth, labels) == pytest.approx(TRUE_SCALE, rel=0.01)


def test_no_road_in_view_gives_no_estimate():
    depth = np.full((H, W), 3.0, np.float32)  # parked facing a wall
    labels = np.full((H, W), BUILDING, np.uint8)
    assert estimate_ground_plane(depth, labels, K) is None
    assert scale_from_camera_height(None, CAMERA_HEIGHT) is None


def test_a_wall_labelled_road_is_refused_by_the_tilt_check():
    depth = np.full((H, W), 3.0, np.float32)
    labels = np.full((H, W), ROAD, np.uint8)  # a wrong label everywhere: the "road" is a fronto-parallel plane
    assert estimate_ground_plane(depth, labels, K) is None


def test_car_covering_most_of_the_road_keeps_the_scale_or_gives_none():
    depth, labels = scene(car_box=(60, 110, 580, 185))
    assert estimated_scale(depth, labels) == pytest.approx(TRUE_SCALE, rel=1e-3)
    # The car's pixels wrongly labelled road are outliers above the road plane: RANSAC must ignore them.
    depth, labels = scene(car_box=(200, 120, 440, 175))
    labels[labels == CAR] = ROAD
    assert estimated_scale(depth, labels) == pytest.approx(TRUE_SCALE, rel=0.01)


def test_twenty_percent_of_labels_flipped():
    rng = np.random.default_rng(2)
    depth, labels = scene()
    road = labels == ROAD
    flip = rng.random(labels.shape) < 0.2
    flipped = labels.copy()
    flipped[road & flip] = BUILDING              # 20 % of the road missed
    flipped[~road & flip & (np.arange(H)[:, None] > H // 2)] = ROAD  # and non-road pixels called road
    assert estimated_scale(depth, flipped) == pytest.approx(TRUE_SCALE, rel=0.01)


def test_too_few_road_pixels_give_no_estimate():
    depth, labels = scene()
    sparse = np.full_like(labels, BUILDING)
    sparse[H - 8:, W // 2 - 8:W // 2 + 8] = ROAD  # a 16×8 patch: eroded and below min_points
    assert estimate_ground_plane(depth, sparse, K) is None


def test_road_points_use_only_the_lower_part_and_subsample():
    depth, labels = scene()
    config = GroundPlaneConfig(max_points=500)
    points = road_points(depth, labels, K, config)
    assert len(points) == 500
    assert np.all(points[:, 1] > 0)  # below the optical centre
    with pytest.raises(ValueError):
        road_points(depth, labels[:-1], K)


def test_fit_is_deterministic_and_config_is_validated():
    depth, labels = scene(rng=np.random.default_rng(3), depth_noise=0.02)
    points = road_points(depth, labels, K)
    assert fit_ground_plane(points).height == fit_ground_plane(points).height
    with pytest.raises(ValueError, match="inlier_threshold"):
        GroundPlaneConfig(inlier_threshold=0)
    with pytest.raises(ValueError, match="camera_height"):
        scale_from_camera_height(None, 0.0)


# --- temporal filter ---------------------------------------------------------------------------------------------

def test_filter_reports_nothing_until_min_samples_then_the_median():
    f = ScaleFilter(window=5, min_samples=3)
    assert f.update(5.0).scale is None
    assert f.update(None).scale is None
    assert f.update(5.2).scale is None
    state = f.update(5.1)
    assert state.scale == pytest.approx(5.1, rel=1e-9)
    assert (state.samples, state.accepted, state.missing, state.rejected) == (3, 3, 1, 0)
    assert state.spread > 0


def test_filter_rejects_outlier_frames():
    f = ScaleFilter(window=10, min_samples=3, outlier_ratio=1.5)
    for s in (5.0, 5.1, 4.9, 5.0):
        f.update(s)
    state = f.update(50.0)
    assert state.rejected == 1 and state.scale == pytest.approx(5.0, rel=0.02)
    assert f.update(0.5).rejected == 2


def test_filter_relocks_when_the_scale_really_changed_and_resets():
    f = ScaleFilter(window=10, min_samples=3, outlier_ratio=1.5, relock_after=4)
    for _ in range(5):
        f.update(2.0)
    for _ in range(4):
        state = f.update(8.0)
    assert state.scale == pytest.approx(8.0)
    f.reset()
    assert f.state().scale is None and f.state().accepted == 0


def test_filter_window_is_bounded_and_parameters_validated():
    f = ScaleFilter(window=4, min_samples=1, outlier_ratio=math.inf)
    for s in (1.0, 1.0, 1.0, 1.0, 9.0, 9.0, 9.0):
        state = f.update(s)
    assert state.samples == 4 and state.scale == pytest.approx(9.0)
    for kwargs in ({"window": 0}, {"min_samples": 5, "window": 4}, {"outlier_ratio": 1.0}, {"relock_after": 0}):
        with pytest.raises(ValueError):
            ScaleFilter(**kwargs)


# --- the scale source and the predictor's per-call plumbing ------------------------------------------------------

def test_camera_height_source_filters_frames_and_resets():
    from sgdepth_ros.scale import CameraHeightScale, resolve_scale

    source = resolve_scale("camera_height", camera_height=CAMERA_HEIGHT)
    assert isinstance(source, CameraHeightScale) and source.required_tasks == {"depth", "segmentation"}
    depth, labels = scene()
    factors = [source.factor(depth, labels, K) for _ in range(3)]
    assert factors[:2] == [None, None] and factors[2] == pytest.approx(TRUE_SCALE, rel=1e-3)
    assert source.factor() == pytest.approx(TRUE_SCALE, rel=1e-3)  # no frame: only reports
    assert source.factor(depth, labels, None) == pytest.approx(TRUE_SCALE, rel=1e-3)  # no intrinsics: a miss
    assert source.state.missing == 1 and source.last_estimate is None
    source.reset()
    assert source.factor() is None
    with pytest.raises(ValueError, match="camera_height"):
        resolve_scale("camera_height")
    with pytest.raises(ValueError, match="only with scale_mode 'camera_height'"):
        resolve_scale("auto", camera_height=1.5)
    with pytest.raises(ValueError, match="camera_height must be"):
        CameraHeightScale(-1.0)


class _Recorder:
    """A scale source that records what the predictor hands it."""
    is_metric = True
    required_tasks = frozenset({"depth", "segmentation"})

    def __init__(self):
        self.calls = []

    def factor(self, depth=None, labels=None, intrinsics=None):
        self.calls.append((None if depth is None else depth.shape, None if labels is None else labels.shape,
                           None if intrinsics is None else np.array(intrinsics)))
        return 2.0


def test_predictor_hands_each_camera_its_intrinsics_at_the_output_size(ours_safetensors, rgb):
    from sgdepth_ros.predictor import Predictor

    predictor = Predictor(ours_safetensors, device="cpu", backend="torch", input_size=(128, 64), scale_mode="relative")
    a, b = _Recorder(), _Recorder()
    h, w = rgb.shape[:2]
    Ka = np.array([[200.0, 0, w / 2], [0, 210.0, h / 2], [0, 0, 1]])
    preds = predictor.predict_batch([rgb, rgb], tasks=("depth",), intrinsics=[Ka, None], scales=[a, b])
    (shape_a, labels_a, Ka_out), (_, _, Kb_out) = a.calls[0], b.calls[0]
    assert shape_a == (64, 128) and labels_a == (64, 128)  # segmentation ran for the source although not asked for
    np.testing.assert_allclose(Ka_out[0], Ka[0] * 128 / w)
    np.testing.assert_allclose(Ka_out[1], Ka[1] * 64 / h)
    assert Kb_out is None
    assert all(p.is_metric and p.scale == 2.0 and p.labels is None for p in preds)
    relative = predictor.predict(rgb)
    assert not relative.is_metric and relative.scale is None
    np.testing.assert_allclose(preds[0].depth, relative.depth * 2.0, rtol=1e-5)
