"""CameraInfo geometry conventions (ROS-free): P for rectified inputs, intrinsics validation, dense clouds,
the one CameraInfo pairing rule (node and replay), nearest-neighbour resize conventions, LiDAR pixel roundings."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sgdepth_ros.bag import BagWriter
from sgdepth_ros.postprocess import nearest_indices, resize_labels
from sgdepth_ros.replay.frames import FrameReader
from sgdepth_ros.replay.lidar import project_to_depth
from sgdepth_ros.replay.topics import list_topics, resolve_topics
from sgdepth_ros.ros.camera_model import backproject, check_geometry, has_distortion, scale_geometry
from sgdepth_ros.ros.image_codec import InputError
from sgdepth_ros.ros.pointcloud import pack_points
from sgdepth_ros.ros.sync import CameraInfoPairing
from sgdepth_ros.sparse_depth import pixel_indices, splat_depth
from sgdepth_training.evaluation.velodyne import project_to_depth_map

# a kitti2bag-style CameraInfo for a 1242x375 rectified image: K unrectified, P rectified (fx 33 % apart)
W, H = 1242, 375
K_RAW = [959.8, 0.0, 696.0, 0.0, 956.9, 224.2, 0.0, 0.0, 1.0]
P_RECT = [721.5, 0.0, 609.6, 44.9, 0.0, 721.5, 172.9, 0.2, 0.0, 0.0, 1.0, 0.003]


# ---- item 1: P, not K ------------------------------------------------------------------------------------------
def test_geometry_comes_from_p_when_k_differs():
    g = check_geometry(W, H, K_RAW, P_RECT)
    assert (g.fx, g.fy, g.cx, g.cy) == (721.5, 721.5, 609.6, 172.9)
    np.testing.assert_array_equal(g.matrix, [[721.5, 0, 609.6], [0, 721.5, 172.9], [0, 0, 1]])
    depth = np.full((H, W), 10.0, np.float32)
    points, index = backproject(depth, g, decimation=7)
    u, v = index % W, index // W
    np.testing.assert_allclose(points[:, 0] / points[:, 2] * 721.5 + 609.6, u, atol=1e-3)
    np.testing.assert_allclose(points[:, 1] / points[:, 2] * 721.5 + 172.9, v, atol=1e-3)


def test_rescaled_k_and_p_stay_consistent():
    g = check_geometry(W, H, K_RAW, P_RECT)
    s = scale_geometry(g, 640, 192)
    sx, sy = 640 / W, 192 / H
    np.testing.assert_allclose(s.k, np.array(K_RAW) * [sx, 1, sx, 0, sy, sy, 1, 1, 1])
    np.testing.assert_allclose(s.p, np.array(P_RECT) * [sx, 1, sx, sx, 1, sy, sy, sy, 1, 1, 1, 1])
    assert (s.fx, s.cx, s.fy, s.cy) == pytest.approx((721.5 * sx, 609.6 * sx, 721.5 * sy, 172.9 * sy))
    back = scale_geometry(s, W, H)  # and back: the same camera
    np.testing.assert_allclose(back.p, P_RECT, rtol=1e-12)
    np.testing.assert_allclose(back.k, K_RAW, rtol=1e-12)


def test_unset_p_falls_back_to_k():
    g = check_geometry(W, H, K_RAW, [0.0] * 12)
    assert (g.fx, g.cx) == (959.8, 696.0)


def test_replay_lidar_ground_truth_projects_with_p(tmp_path):
    """A bag with a kitti2bag-style CameraInfo: the LiDAR point lands where P (not K) puts it."""
    w, h = 124, 38
    K = np.array([[96.0, 0, 70.0], [0, 95.7, 22.4], [0, 0, 1]])
    P = np.array([[72.15, 0, 61.0, 0], [0, 72.15, 17.3, 0], [0, 0, 1, 0]])
    point = np.array([[0.8, 0.3, 6.0]])  # in the camera optical frame (transform = identity)
    with BagWriter(tmp_path / "bag") as writer:
        writer.write_camera_info("/cam/camera_info", 100, "cam", K, w, h, P=P)
        writer.write_image("/cam/image_rect", 100, "cam", np.zeros((h, w, 3), np.uint8), "rgb8")
        writer.write_point_cloud("/lidar/points", 100, "cam", point)
    topics = resolve_topics(list_topics(tmp_path / "bag"), lidar="/lidar/points")
    frame, = list(FrameReader(tmp_path / "bag", topics, np.eye(4)))
    np.testing.assert_array_equal(frame.K, P[:, :3])
    row, col = np.argwhere(frame.depth_gt > 0)[0]
    assert (col, row) == (int(np.floor(72.15 * 0.8 / 6 + 61.0 + 0.5)), int(np.floor(72.15 * 0.3 / 6 + 17.3 + 0.5)))
    assert (col, row) != (int(np.floor(96 * 0.8 / 6 + 70 + 0.5)), int(np.floor(95.7 * 0.3 / 6 + 22.4 + 0.5)))
    assert frame.depth_gt[row, col] == np.float32(6.0)


# ---- item 3: absurd intrinsics, dense clouds, distortion ---------------------------------------------------------
GOOD = [500.0, 0, 320, 0, 500.0, 240, 0, 0, 1]


@pytest.mark.parametrize("k, p", [
    ([1e-30, 0, 320, 0, 500.0, 240, 0, 0, 1], [0.0] * 12),      # finite but absurd focal length → points ~1e32
    ([1e30, 0, 320, 0, 500.0, 240, 0, 0, 1], [0.0] * 12),
    ([500.0, 0, 1e20, 0, 500.0, 240, 0, 0, 1], [0.0] * 12),    # principal point far outside
    ([500.0, 1e6, 320, 0, 500.0, 240, 0, 0, 1], [0.0] * 12),   # skew
    ([500.0, 0, 320, 0, 500.0, 240, 0, 0, 2.0], [0.0] * 12),   # not a pinhole matrix
    (GOOD, [1e-9, 0, 320, 0, 0, 500.0, 240, 0, 0, 0, 1, 0]),   # P absurd, K fine
    (GOOD, [500.0, 0, 320, 0, 0, 500.0, 240, 0, 0, 0, 0, 0]),   # P's last row zero
])
def test_absurd_but_finite_intrinsics_are_rejected(k, p):
    with pytest.raises(InputError) as error:
        check_geometry(640, 480, k, p)
    assert error.value.kind == "bad_intrinsics" and "CameraInfo" in str(error.value)


def test_points_are_finite_for_any_accepted_camera_so_the_cloud_is_dense():
    """At the bounds of what check_geometry accepts and with float32's largest depths, no NaN/inf comes out."""
    depth = np.full((48, 64), np.finfo(np.float32).max / 4, np.float32)
    depth[0, :3] = [np.inf, np.nan, -1.0]
    for f, cx in ((0.01 * 64, -64.0), (1000 * 64, 128.0), (0.64, 32.0)):
        g = check_geometry(64, 48, [f, 0, cx, 0, f, 24.0, 0, 0, 1], [0.0] * 12)
        points, index = backproject(depth, g)
        assert np.isfinite(points).all() and len(points) == len(index)
        pack_points(points)  # accepted: dense
    with pytest.raises(ValueError, match="NaN/inf"):
        pack_points(np.array([[0.0, 0.0, np.inf]], np.float32))


def test_distortion_is_detected_not_applied():
    assert not has_distortion([0.0] * 5) and not has_distortion([])
    assert has_distortion([-0.37, 0.2, 0.0, 0.0, 0.0])
    g = check_geometry(640, 480, GOOD, [0.0] * 12)  # D plays no part in the geometry
    assert g.matrix[0, 0] == 500.0


# ---- item 2: one pairing rule -------------------------------------------------------------------------------------
def _no_wait(*args, **kwargs):
    raise AssertionError("the pairing waited for a CameraInfo")


def test_pairing_by_stamp_size_and_fallback():
    pairing = CameraInfoPairing()
    assert pairing.expects()  # nothing received yet: one may come
    pairing.add(0, 64, 48, "latched 64x48")  # a latched publisher: stamp 0, once
    assert not pairing.expects()  # stamps do not pair: nobody waits
    result = pairing.pair(1_000, 64, 48, wait_s=5.0)
    assert (result.item, result.how) == ("latched 64x48", "latest")
    assert pairing.pair(1_000, 32, 24).how == "camera_info_unmatched"  # no fallback of another size
    off = pairing.pair(1_000, 64, 48, fallback_latest=False)
    assert off.item is None and off.how == "camera_info_unmatched" and "camera_info_fallback_latest" in off.reason
    # a driver that stamps CameraInfo like its images: pairs by stamp, and the stream counts as synchronised
    pairing.add(2_000, 64, 48, "stamped")
    assert pairing.pair(2_000, 64, 48).how == "stamp" and pairing.expects()
    # a stamp match decides alone: a wrong size is an error, not hidden by the fallback
    pairing.add(3_000, 32, 24, "other size")
    assert pairing.pair(3_000, 64, 48).how == "camera_info_size"
    pairing.add_rejected(4_000)
    assert pairing.pair(4_000, 64, 48).how == "rejected"
    assert pairing.pair(4_000, 64, 48, tolerance_ns=0).item is None
    assert pairing.pair(5_000, 64, 48).item == "stamped"  # latest of the size, after an unmatched stamp


def test_latched_camera_info_never_makes_a_frame_wait():
    pairing = CameraInfoPairing()
    pairing.add(0, 64, 48, "latched")
    pairing._by_stamp.wait_for = _no_wait  # any wait fails the test (a design check, not a timing)
    for stamp in range(1, 5):
        assert pairing.pair(stamp * 10**8, 64, 48, wait_s=1.0).how == "latest"
    # once stamps pair, the next image may wait for its CameraInfo (the hook above is the one used)
    pairing.add(5 * 10**8, 64, 48, "stamped")
    assert pairing.pair(5 * 10**8, 64, 48).how == "stamp"
    with pytest.raises(AssertionError, match="waited"):
        pairing.pair(6 * 10**8, 64, 48, wait_s=1.0)


def _latched_bag(path, sizes, frames=3, infos_first=True):
    with BagWriter(path) as writer:
        if infos_first:
            for w, h in sizes:
                writer.write_camera_info("/cam/camera_info", 0, "cam", np.array(
                    [[50.0, 0, w / 2], [0, 50.0, h / 2], [0, 0, 1]]), w, h)
        for i in range(frames):
            writer.write_image("/cam/image_raw", 10**9 + i * 10**8, "cam", np.zeros((24, 32, 3), np.uint8), "rgb8")


def test_replay_pairs_a_latched_zero_stamp_camera_info_of_the_right_size(tmp_path):
    _latched_bag(tmp_path / "bag", [(32, 24), (64, 48)])  # the newest one is of another size
    topics = resolve_topics(list_topics(tmp_path / "bag"))
    frames = list(FrameReader(tmp_path / "bag", topics))
    assert len(frames) == 3 and all(f.geometry is not None and f.geometry.width == 32 for f in frames)
    off = FrameReader(tmp_path / "bag", topics, camera_info_fallback_latest=False)
    assert all(f.geometry is None for f in off) and off.unreadable == {"camera_info_unmatched": 3}


# ---- item 5: one nearest-neighbour resize, two named conventions ---------------------------------------------------
def test_nearest_equals_torch_nearest_for_every_size_pair():
    for n_in in range(1, 70):
        x = torch.arange(n_in, dtype=torch.float32).view(1, 1, n_in, 1)
        for n_out in range(1, 70):
            ref = torch.nn.functional.interpolate(x, size=(n_out, 1), mode="nearest")[0, 0, :, 0].long().numpy()
            assert np.array_equal(nearest_indices(n_in, n_out), ref), (n_in, n_out)


def test_centre_equals_pil_nearest_away_from_ties_and_differs_from_nearest():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 19, (63, 127)).astype(np.uint8)  # odd sizes: (i + ½)·in/out is never a tie
    for w, h in ((91, 45), (200, 100), (31, 17), (127, 63)):
        pil = np.asarray(Image.fromarray(labels).resize((w, h), Image.NEAREST))
        assert np.array_equal(resize_labels(labels, (w, h), mode="centre"), pil)
    # the two conventions are different functions: halving picks odd vs even source pixels
    assert nearest_indices(8, 4).tolist() == [0, 2, 4, 6] and nearest_indices(8, 4, "centre").tolist() == [1, 3, 5, 7]
    with pytest.raises(ValueError, match="centre"):
        nearest_indices(8, 4, "bilinear")


def test_training_resizers_are_the_runtime_one():
    from sgdepth_training.data._imaging import resize_labels as dataset_resize
    from sgdepth_training.data.augment import _resize_labels as augment_resize

    labels = np.random.default_rng(1).integers(0, 19, (64, 128)).astype(np.uint8)  # even: ties exist
    for w, h in ((85, 42), (102, 51), (640, 192), (64, 32)):
        ours = resize_labels(labels, (w, h), mode="centre")
        assert np.array_equal(dataset_resize(labels, w, h), ours)
        assert np.array_equal(augment_resize(torch.from_numpy(labels), h, w).numpy(), ours)


# ---- item 5: one LiDAR projection, the KITTI devkit rounding named and one pixel off -------------------------------
def test_kitti_devkit_ground_truth_is_the_ros_one_shifted_one_pixel_up_left():
    rng = np.random.default_rng(2)
    w, h = 96, 40
    P = np.array([[72.0, 0, 47.3, 0], [0, 72.0, 19.6, 0], [0, 0, 1, 0]])
    # camera-frame points spread over the image; the velodyne frame here is the camera frame with x forward
    cam = np.stack([rng.uniform(-6, 6, 3000), rng.uniform(-3, 3, 3000), rng.uniform(5, 40, 3000)], axis=1)
    velo_from_cam = np.array([[0, 0, 1, 0], [-1, 0, 0, 0], [0, -1, 0, 0], [0, 0, 0, 1.0]])
    velo = cam @ velo_from_cam[:3, :3].T
    cam_from_velo = np.linalg.inv(velo_from_cam)
    ros = project_to_depth(velo, cam_from_velo, P[:, :3], w, h, min_depth=0.0)
    devkit = project_to_depth_map(velo, P @ cam_from_velo, (w, h))
    assert np.count_nonzero(ros) > 1000
    np.testing.assert_array_equal(devkit[:-1, :-1], ros[1:, 1:])  # devkit pixel = ROS pixel − (1, 1)
    assert not np.array_equal(devkit, ros)
    # the roundings themselves, away from half-pixel ties (numpy rounds ties to even, the ROS rule half up)
    u = rng.uniform(-3, 100, 1000)
    (c_ros, r_ros), (c_kit, r_kit) = pixel_indices(u, u), pixel_indices(u, u, "kitti_devkit")
    assert np.array_equal(c_kit, c_ros - 1) and np.array_equal(r_kit, r_ros - 1)
    assert pixel_indices(np.array([2.5]), np.array([0.0]))[0][0] == 3  # ROS: half up
    assert pixel_indices(np.array([2.5]), np.array([0.0]), "kitti_devkit")[0][0] == 1  # devkit: round-half-even − 1


def test_splat_keeps_the_nearest_and_drops_outside():
    depth = splat_depth(np.array([1.2, 0.9, 5.0, -0.6, 1e30]), np.array([0.0, 0.1, 0.0, 0.0, 0.0]),
                        np.array([4.0, 2.0, 1.0, 1.0, 1.0]), 4, 2)
    assert depth.tolist() == [[0.0, 2.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]
