"""The node's per-frame rendering, made cheaper (issue 16), gives the same outputs as the straightforward code.

Each fast path is checked against a plain reference written here (the code it replaced): colour maps through
OpenCV's table lookup, the depth colour index computed in place, labels resized by two 1-D gathers, depth from
disparity in place, back-projection from cached ray grids, the point cloud packed on the decimated grid, and message
payloads that rclpy takes without a copy.
"""
from __future__ import annotations

import array

import cv2
import numpy as np
import pytest
import torch

from sgdepth_ros.colorize import COLORMAPS, colorize_depth, colorize_labels, overlay_labels
from sgdepth_ros.labels import palette
from sgdepth_ros.pinhole import backproject_pixels
from sgdepth_ros.postprocess import disparity_to_depth, nearest_indices, resize_labels
from sgdepth_ros.predictor import Prediction
from sgdepth_ros.ros.camera_model import (RAY_CACHE_SIZE, backproject, backproject_grid, check_geometry,
                                          pixel_rays)
from sgdepth_ros.ros.image_codec import encode_image, message_buffer
from sgdepth_ros.ros.outputs import OUTPUT_KEYS, RenderSettings, render
from sgdepth_ros.ros.pointcloud import pack_grid, pack_points, unpack_points


# ---- references: the plain code the fast paths replaced ------------------------------------------------------------
def ref_colorize_depth(depth, min_depth=None, max_depth=None, colormap="turbo", inverse=True):
    valid = np.isfinite(depth) & (depth > 0)
    out = np.zeros(depth.shape + (3,), np.uint8)
    if not valid.any():
        return out
    if min_depth is None or max_depth is None:
        sample = depth[::4, ::4][valid[::4, ::4]]
        sample = sample if sample.size else depth[valid]
        p_lo, p_hi = np.percentile(sample, (2, 98))
    lo = float(p_lo) if min_depth is None else float(min_depth)
    hi = float(p_hi) if max_depth is None else float(max_depth)
    lo = max(lo, 1e-6)
    hi = max(hi, lo * (1 + 1e-6))
    d = np.clip(np.where(valid, depth, hi), lo, hi)
    t = (1.0 / d - 1.0 / hi) / (1.0 / lo - 1.0 / hi) if inverse else (hi - d) / (hi - lo)
    u8 = np.round(t * 255.0).astype(np.uint8)
    out = cv2.cvtColor(cv2.applyColorMap(u8, COLORMAPS[colormap]), cv2.COLOR_BGR2RGB)
    out[~valid] = 0
    return out


def ref_backproject(depth, geometry, decimation=1):
    rows = np.arange(0, depth.shape[0], decimation)
    cols = np.arange(0, depth.shape[1], decimation)
    z = depth[np.ix_(rows, cols)]
    valid = np.isfinite(z) & (z > 0)
    v, u = np.nonzero(valid)
    points = backproject_pixels(cols[u], rows[v], z[valid], geometry.matrix)
    index = rows[v] * depth.shape[1] + cols[u]
    finite = np.isfinite(points).all(axis=1)
    return points[finite], index[finite]


def ref_render(prediction, wanted, settings, geometry):
    out = {}
    depth = np.where(np.isfinite(prediction.depth) & (prediction.depth > 0), prediction.depth,
                     np.float32(np.nan)).astype(np.float32)
    out["depth"] = depth
    out["depth_color"] = ref_colorize_depth(depth, settings.depth_color_min or None,
                                            settings.depth_color_max or None, settings.depth_colormap)
    labels = prediction.labels
    out["semantic"] = labels
    colours = np.take(palette(), labels, axis=0)
    out["semantic_color"] = colours
    blended = cv2.addWeighted(prediction.image, 1.0 - settings.overlay_alpha, colours, settings.overlay_alpha, 0.0)
    unknown = labels == 255
    blended[unknown] = prediction.image[unknown]
    out["overlay"] = blended
    points, index = ref_backproject(depth, geometry, settings.points_decimation)
    out["points"] = (pack_points(points, prediction.image.reshape(-1, 3)[index], labels.reshape(-1)[index]),
                     len(points))
    return out


# ---- fixtures --------------------------------------------------------------------------------------------------------
def _depth(rng, shape, holes=True):
    depth = rng.uniform(0.5, 80.0, shape).astype(np.float32)
    if holes:
        flat = depth.reshape(-1)
        picks = rng.choice(flat.size, 40, replace=False)
        flat[picks[:10]] = np.nan
        flat[picks[10:20]] = np.inf
        flat[picks[20:30]] = 0.0
        flat[picks[30:]] = -3.0
    return depth


def _geometry(width, height, fx=None, skew=0.0):
    fx = fx or 0.58 * width
    return check_geometry(width, height, [fx, skew, width / 2, 0, 1.9 * height, height / 2, 0, 0, 1], [0.0] * 12)


def _prediction(rng, width=37, height=23, holes=True):
    labels = rng.integers(0, 19, (height, width)).astype(np.uint8)
    labels[rng.random((height, width)) < 0.1] = 255
    return Prediction(depth=_depth(rng, (height, width), holes), disparity=None, labels=labels, is_metric=True,
                      image=rng.integers(0, 256, (height, width, 3)).astype(np.uint8))


# ---- colour maps -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("colormap", sorted(COLORMAPS))
@pytest.mark.parametrize("inverse", [True, False])
def test_colorize_depth_equals_the_reference(colormap, inverse):
    rng = np.random.default_rng(1)
    depth = _depth(rng, (41, 67))
    for lo, hi in ((None, None), (2.0, 30.0), (None, 20.0)):
        expected = ref_colorize_depth(depth, lo, hi, colormap, inverse)
        np.testing.assert_array_equal(colorize_depth(depth, lo, hi, colormap, inverse), expected)
        valid = np.isfinite(depth) & (depth > 0)
        out = message_buffer(depth.shape + (3,))
        assert colorize_depth(depth, lo, hi, colormap, inverse, valid=valid, out=out) is out
        np.testing.assert_array_equal(out, expected)
    clean = _depth(rng, (41, 67), holes=False)  # every pixel valid: the path without masks
    np.testing.assert_array_equal(colorize_depth(clean, colormap=colormap, inverse=inverse),
                                  ref_colorize_depth(clean, colormap=colormap, inverse=inverse))


def test_colorize_depth_float64_and_all_invalid():
    rng = np.random.default_rng(2)
    depth = _depth(rng, (20, 30)).astype(np.float64)
    np.testing.assert_array_equal(colorize_depth(depth), ref_colorize_depth(depth))
    empty = np.full((4, 5), np.nan, np.float32)
    assert not colorize_depth(empty).any()
    out = np.full((4, 5, 3), 7, np.uint8)
    assert colorize_depth(empty, out=out) is out and not out.any()


def test_colorize_labels_equals_the_palette_lookup():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 256, (33, 47)).astype(np.uint8)  # every id, known or not (unknown = black)
    expected = np.take(palette(), labels, axis=0)
    np.testing.assert_array_equal(colorize_labels(labels), expected)
    np.testing.assert_array_equal(colorize_labels(labels.astype(np.int64)), expected)  # other types: numpy path
    np.testing.assert_array_equal(colorize_labels(labels[:, ::2]), expected[:, ::2])  # a strided view
    out = message_buffer(labels.shape + (3,))
    assert colorize_labels(labels, out=out) is out
    np.testing.assert_array_equal(out, expected)


def test_overlay_into_a_buffer_equals_the_returned_blend():
    rng = np.random.default_rng(4)
    pred = _prediction(rng)
    expected = overlay_labels(pred.image, pred.labels, 0.3)
    out = message_buffer(pred.image.shape)
    assert overlay_labels(pred.image, pred.labels, 0.3, out=out) is out
    np.testing.assert_array_equal(out, expected)
    unknown = pred.labels == 255
    np.testing.assert_array_equal(out[unknown], pred.image[unknown])


# ---- postprocess -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["nearest", "centre"])
@pytest.mark.parametrize("src, dst", [((96, 320), (375, 1242)), ((192, 640), (375, 1242)), ((375, 1242), (96, 320)),
                                      ((7, 6), (13, 74))])
def test_resize_labels_equals_the_2d_gather(src, dst, mode):
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 19, src).astype(np.uint8)
    rows, cols = nearest_indices(src[0], dst[0], mode), nearest_indices(src[1], dst[1], mode)
    np.testing.assert_array_equal(resize_labels(labels, (dst[1], dst[0]), mode), labels[rows[:, None], cols[None, :]])
    rgb = rng.integers(0, 256, src + (3,)).astype(np.uint8)  # HxWxC too
    np.testing.assert_array_equal(resize_labels(rgb, (dst[1], dst[0]), mode), rgb[rows[:, None], cols[None, :]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_disparity_to_depth_in_place_is_bitwise_the_formula(dtype):
    disp = np.random.default_rng(6).random((17, 29)).astype(dtype)
    kept = disp.copy()
    min_disp, max_disp = 1.0 / 80.0, 1.0 / 0.5
    depth = disparity_to_depth(disp, 0.5, 80.0)
    expected = 1.0 / (min_disp + (max_disp - min_disp) * disp)
    assert depth.dtype == dtype
    np.testing.assert_array_equal(depth, expected)
    np.testing.assert_array_equal(disp, kept)  # the input is not written
    tensor = disparity_to_depth(torch.from_numpy(disp), 0.5, 80.0)  # tensors keep the plain formula
    np.testing.assert_array_equal(tensor.numpy(), expected)


# ---- back-projection and the cloud -----------------------------------------------------------------------------------
@pytest.mark.parametrize("skew", [0.0, 2.5])
@pytest.mark.parametrize("decimation", [1, 2, 3])
def test_backproject_equals_the_per_pixel_reference(decimation, skew):
    rng = np.random.default_rng(7)
    depth = _depth(rng, (23, 37))
    depth[0, 0] = depth[3, 3] = 3e38  # × a ray wider than 1 overflows float32: dropped
    g = _geometry(37, 23, fx=10.0, skew=skew)
    points, index = backproject(depth, g, decimation)
    ref_points, ref_index = ref_backproject(depth, g, decimation)
    np.testing.assert_array_equal(points, ref_points)
    np.testing.assert_array_equal(index, ref_index)
    assert np.isfinite(points).all()
    wide = depth.astype(np.float64)
    wide[1, 1] = 1e300  # beyond float32: inf there, dropped like the reference
    with np.errstate(over="ignore"):
        expected = ref_backproject(wide, g, decimation)[0]
    np.testing.assert_array_equal(backproject(wide, g, decimation)[0], expected)


@pytest.mark.parametrize("holes", [True, False])
@pytest.mark.parametrize("decimation", [1, 2, 4])
def test_pack_grid_is_bytewise_pack_points_of_the_list(holes, decimation):
    rng = np.random.default_rng(8)
    pred = _prediction(rng, holes=holes)
    g = _geometry(37, 23)
    points, index = ref_backproject(pred.depth, g, decimation)
    grid = backproject_grid(pred.depth, g, decimation)
    assert grid.count == len(points) and grid.all_kept is (len(points) == grid.keep.size)
    image, labels = pred.image[::decimation, ::decimation], pred.labels[::decimation, ::decimation]
    payload, count = pack_grid(grid, image, labels)
    assert isinstance(payload, array.array) and payload.typecode == "B" and count == len(points)
    assert payload.tobytes() == pack_points(points, pred.image.reshape(-1, 3)[index], pred.labels.reshape(-1)[index])
    assert pack_grid(grid)[0].tobytes() == pack_points(points)  # no colour: 0, no labels: 255
    assert (unpack_points(pack_grid(grid)[0])["label"] == 255).all()


def test_ray_grids_are_cached_per_geometry_and_follow_a_new_camera():
    g = _geometry(64, 48)
    x, y = pixel_rays(g, 2)
    assert pixel_rays(_geometry(64, 48), 2)[0] is x  # an equal geometry (another CameraInfo, same values): cached
    assert not x.flags.writeable and not y.flags.writeable
    assert x.shape == (1, 32) and y.shape == (24, 1)  # no skew: a row of x/z and a column of y/z
    skewed = _geometry(64, 48, skew=3.0)
    assert pixel_rays(skewed, 2)[0].shape == (24, 32)  # skew: x/z varies down the columns too
    depth = np.full((48, 64), 5.0, np.float32)
    before = backproject(depth, g, 2)[0]
    other = _geometry(64, 48, fx=20.0)  # the camera's intrinsics change: new rays, new points
    assert pixel_rays(other, 2)[0] is not x
    after = backproject(depth, other, 2)[0]
    np.testing.assert_array_equal(after, ref_backproject(depth, other, 2)[0])
    assert not np.array_equal(before, after)
    assert pixel_rays(g, 3)[0].shape == (1, 22)  # another decimation: another entry
    resized = _geometry(32, 24)  # another size
    np.testing.assert_array_equal(backproject(depth[::2, ::2], resized)[0],
                                  ref_backproject(depth[::2, ::2], resized)[0])
    assert pixel_rays.cache_info().maxsize == RAY_CACHE_SIZE
    with pytest.raises(ValueError, match="decimation"):
        pixel_rays(g, 0)


# ---- render and message fill -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("holes", [True, False])
def test_render_equals_the_reference_render(holes):
    rng = np.random.default_rng(9)
    pred = _prediction(rng, holes=holes)
    kept = pred.depth.copy()
    g = _geometry(37, 23)
    settings = RenderSettings(overlay_alpha=0.4, points_decimation=2)
    out = render(pred, set(OUTPUT_KEYS), settings, g)
    ref = ref_render(pred, set(OUTPUT_KEYS), settings, g)
    np.testing.assert_array_equal(out["depth"], ref["depth"])  # NaN where invalid, in the same places
    for key in ("depth_color", "semantic", "semantic_color", "overlay"):
        np.testing.assert_array_equal(out[key], ref[key], err_msg=key)
    assert out["points"][1] == ref["points"][1]
    assert out["points"][0].tobytes() == ref["points"][0]
    np.testing.assert_array_equal(pred.depth, kept)  # the prediction is never written
    if not holes:
        assert out["depth"] is pred.depth  # nothing to mask: no copy


def test_message_fill_takes_rendered_buffers_without_copying():
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import Image, PointCloud2
    from std_msgs.msg import Header

    from sgdepth_ros.ros.messages import array_to_image, output_messages, points_to_cloud, set_data

    rng = np.random.default_rng(10)
    pred = _prediction(rng)
    out = render(pred, set(OUTPUT_KEYS), RenderSettings(), _geometry(37, 23))
    owner = out["overlay"].base.base.obj  # message_buffer: an ndarray over an array.array('B')
    assert isinstance(owner, array.array)
    assert encode_image(out["overlay"])[4] is owner
    msgs = output_messages(out, Header(frame_id="cam"), None, None, set(OUTPUT_KEYS))
    assert msgs["overlay"].data is owner  # the message holds the rendered pixels themselves
    assert msgs["points"].data is out["points"][0]
    for key in ("depth", "depth_color", "semantic", "semantic_color", "overlay"):
        back = deserialize_message(serialize_message(msgs[key]), Image)
        assert back.data.tobytes() == np.ascontiguousarray(out[key]).tobytes(), key
    cloud = deserialize_message(serialize_message(msgs["points"]), PointCloud2)
    assert cloud.data.tobytes() == out["points"][0].tobytes() and cloud.width == out["points"][1]
    # anything else is copied once: a slice of a buffer, a plain array, bytes
    part = message_buffer((4, 6, 3))[:, :3]
    assert encode_image(part)[4] is not part.base
    plain = np.arange(12, dtype=np.float32).reshape(3, 4)
    msg = array_to_image(plain, Header())
    assert isinstance(msg.data, array.array) and msg.data.tobytes() == plain.tobytes()
    cloud_msg = points_to_cloud(b"\0" * 20, 1, Header())
    assert cloud_msg.data.tobytes() == b"\0" * 20
    raw = Image()
    set_data(raw, [1, 2, 3])
    assert raw.data.tobytes() == b"\x01\x02\x03"


# ---- the benchmark's node-own-cost table -----------------------------------------------------------------------------
class _StubPredictor:
    """predict_batch → one Prediction at the image's size (no network): the node path around the predictor."""

    def __init__(self):
        self.calls = []

    def predict_batch(self, rgbs, output_resolution=None, tasks=None):
        self.calls.append((output_resolution, tuple(tasks)))
        rgb = rgbs[0]
        h, w = rgb.shape[:2]
        labels = np.zeros((h, w), np.uint8) if "segmentation" in tasks else None
        depth = np.full((h, w), 5.0, np.float32) if "depth" in tasks else None
        return [Prediction(depth=depth, disparity=None, labels=labels, is_metric=True, image=rgb,
                           timings={"preprocess": 0.0, "forward": 0.0, "postprocess": 0.0})]


def test_bench_node_cost_runs_the_node_path_and_rates_it_against_the_targets():
    from sgdepth_ros.commands.bench import NODE_COST_SETS, NODE_COST_STAGES, measure_node_cost, render_node_cost_table

    stub = _StubPredictor()
    rgb = np.random.default_rng(11).integers(0, 256, (30, 40, 3)).astype(np.uint8)
    times = measure_node_cost({"stub": stub}, rgb, iterations=2, warmup=1)
    assert set(times["stub"]) == {"predictor alone", *NODE_COST_SETS}
    for run, rec in times["stub"].items():
        expected = ("decode", "predictor") if run == "predictor alone" else NODE_COST_STAGES
        assert all(len(rec[s]) == 2 for s in expected), run
    assert all(resolution == "input" for resolution, _ in stub.calls)  # outputs at the camera size
    assert ("input", ("depth", "segmentation")) in stub.calls
    # the ratio: (predictor p50 + own cost p50) / predictor p50, own cost = path − its own predictor time
    fixed = {"m": {"predictor alone": {"decode": [0.0] * 3, "predictor": [100.0] * 3},
                   "every output": {"decode": [0.0] * 3, "predictor": [90.0, 100.0, 110.0],
                                    "render": [20.0] * 3, "fill": [1.0] * 3, "serialize": [9.0] * 3},
                   "depth + semantic": {"decode": [0.0] * 3, "predictor": [100.0] * 3,
                                        "render": [5.0] * 3, "fill": [3.0] * 3, "serialize": [4.0] * 3}}}
    table = "\n".join(render_node_cost_table(fixed))
    assert "**1.300** | ≤ 1.25 **missed**" in table
    assert "**1.120** | ≤ 1.1 **missed**" in table
    fixed["m"]["every output"]["render"] = [10.0] * 3
    assert "**1.200** | ≤ 1.25 met" in "\n".join(render_node_cost_table(fixed))


# ---- decoding --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("encoding, bpp", [("bgr8", 3), ("rgba8", 4), ("bgra8", 4), ("mono8", 1), ("8UC1", 1)])
@pytest.mark.parametrize("padding", [0, 3])
def test_channel_reordering_decodes_equal_the_numpy_reordering(encoding, bpp, padding):
    from sgdepth_ros.ros.image_codec import decode_image

    rng = np.random.default_rng(12)
    width, height = 1242, 375
    step = width * bpp + padding
    data = rng.integers(0, 256, step * height).astype(np.uint8).tobytes()
    pixels = np.frombuffer(data, np.uint8).reshape(height, step)[:, :width * bpp].reshape(height, width, bpp)
    expected = {"bgr8": pixels[:, :, ::-1], "rgba8": pixels[:, :, :3], "bgra8": pixels[:, :, 2::-1]}.get(
        encoding, np.repeat(pixels, 3, axis=2))
    out = decode_image(encoding, width, height, step, False, data)
    assert out.flags.c_contiguous and out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)
