"""LiDAR ground truth for bag replay: PointCloud2 decoding, camera←lidar parsing, projection to sparse depth."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from sgdepth_ros.bag import BagWriter, read_messages, rotation_to_quaternion
from sgdepth_ros.replay.lidar import cloud_to_xyz, message_xyz, parse_transform, project_to_depth

W, H = 160, 96
K = np.array([[110.0, 0.0, 79.5], [0.0, 105.0, 47.5], [0.0, 0.0, 1.0]])
# camera optical (x right, y down, z forward) ← lidar (x forward, y left, z up), plus a 4° yaw of the LiDAR
# and an offset (LiDAR 0.3 m above, 0.1 m left of and 0.05 m behind the camera).
BASE = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
YAW = np.deg2rad(4.0)
RZ = np.array([[np.cos(YAW), -np.sin(YAW), 0.0], [np.sin(YAW), np.cos(YAW), 0.0], [0.0, 0.0, 1.0]])
T_CAM_LIDAR = np.eye(4)
T_CAM_LIDAR[:3, :3] = BASE @ RZ
T_CAM_LIDAR[:3, 3] = [-0.1, -0.3, -0.05]   # LiDAR origin in the camera frame


def _field(name, offset, datatype, count=1):
    return SimpleNamespace(name=name, offset=offset, datatype=datatype, count=count)


def _to_lidar(p_cam):
    R, t = T_CAM_LIDAR[:3, :3], T_CAM_LIDAR[:3, 3]
    return (p_cam - t) @ R   # R^T (p - t), row-wise


def _rays(u, v):
    """Camera-frame rays with z = 1 through image points (u, v)."""
    return np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], axis=-1)


# -- projection of known geometry -----------------------------------------------------------------------------

def test_wall_and_ground_project_to_their_analytic_depth():
    rng = np.random.default_rng(0)
    wall_z = 7.0
    # ground: the plane z_lidar = -1.4 (LiDAR 1.4 m above the floor), in the camera frame n·p = d
    n = T_CAM_LIDAR[:3, :3] @ [0.0, 0.0, 1.0]
    d = float(n @ T_CAM_LIDAR[:3, 3]) - 1.4
    # where the floor meets the wall in the image (a row: the floor normal is the camera's -y here)
    assert np.allclose(n, [0, -1, 0])
    v_contact = K[1, 2] + K[1, 1] * (-d) / wall_z   # floor at y_cam = -d

    # wall points: uniform on the part of the plane z = wall_z above the floor, overfilling the image sideways
    m = 60_000
    x = rng.uniform(-0.8 * wall_z, 0.8 * wall_z, m)
    y = rng.uniform(-0.55 * wall_z, -d, m)
    wall = np.stack([x, y, np.full(m, wall_z)], axis=1)
    # floor points in front of the wall: uniform in the image below the contact line (and beyond its edges)
    u = rng.uniform(-5, W + 5, 2 * m)
    v = rng.uniform(v_contact, H + 5, 2 * m)
    rays = _rays(u, v)
    floor = rays * (d / (rays @ n))[:, None]
    floor = floor[floor[:, 2] < wall_z]
    cloud = _to_lidar(np.concatenate([wall, floor]))
    rng.shuffle(cloud)
    assert np.isclose(cloud[:, 2].min(), -1.4)   # the floor is at z_lidar = -1.4

    depth = project_to_depth(cloud, T_CAM_LIDAR, K, W, H)
    assert depth.shape == (H, W) and depth.dtype == np.float32
    rows, cols = np.nonzero(depth)
    assert rows.size > 0.95 * W * H

    # analytic floor depth over each pixel's footprint [j-0.5, j+0.5) x [i-0.5, i+0.5): 1/z is affine in (u, v)
    # on a plane, so z over the footprint lies between its values at the four corners
    with np.errstate(divide="ignore"):   # rays parallel to the floor (wall pixels, not used there)
        corners = np.stack([d / (_rays(cols + du, rows + dv) @ n) for du in (-0.5, 0.5) for dv in (-0.5, 0.5)])
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    got = depth[rows, cols].astype(np.float64)
    on_wall = (np.abs(got - wall_z) < 1e-6) & (rows - 0.5 <= v_contact)
    on_floor = (got >= lo * (1 - 1e-6)) & (got <= hi * (1 + 1e-6)) & (rows + 0.5 >= v_contact) & (got < wall_z)
    assert np.all(on_wall | on_floor), list(zip(rows[~(on_wall | on_floor)], cols[~(on_wall | on_floor)]))[:5]
    assert on_wall.sum() > 0.9 * W * np.floor(v_contact) and on_floor.sum() > 0.9 * W * (H - np.ceil(v_contact))
    # pixels fully above the contact line are exactly the wall
    assert np.all(depth[: int(np.floor(v_contact))][depth[: int(np.floor(v_contact))] > 0] == np.float32(wall_z))


def test_wrong_transform_direction_would_not_match():
    """The geometry test fails for the inverse transform: the check above can catch a swapped T."""
    cloud = _to_lidar(np.array([[1.1, 0.5, 5.0]]))
    good = project_to_depth(cloud, T_CAM_LIDAR, K, W, H)
    bad = project_to_depth(cloud, np.linalg.inv(T_CAM_LIDAR), K, W, H)
    i, j = int(np.floor(K[1, 2] + K[1, 1] * 0.1 + 0.5)), int(np.floor(K[0, 2] + K[0, 0] * 0.22 + 0.5))
    assert np.count_nonzero(good) == 1 and good[i, j] == np.float32(5.0)
    assert not bad[i, j] == np.float32(5.0)


def test_nearest_point_wins_and_dropped_points():
    eye = np.eye(4)
    Ks = np.array([[10.0, 0, 4.0], [0, 10.0, 3.0], [0, 0, 1]])
    # two points on the ray of pixel (row 3, col 4), far first and near first; a third one in the same pixel
    same = np.array([[0.0, 0.0, 5.0], [0.01, -0.01, 2.0], [0.0, 0.0, 9.0]])
    for order in ([0, 1, 2], [1, 2, 0], [2, 0, 1]):
        depth = project_to_depth(same[order], eye, Ks, 8, 6)
        assert np.count_nonzero(depth) == 1 and depth[3, 4] == np.float32(2.0)
    dropped = np.array([
        [0.0, 0.0, -2.0],        # behind the camera (would project onto the centre pixel)
        [0.0, 0.0, 0.05],        # closer than min_depth
        [0.0, 0.0, 0.0],         # at the camera
        [-0.46, 0.0, 1.0],       # u = -0.6 → column -1
        [0.36, 0.0, 1.0],        # u = 7.6 → column 8 = width
        [0.0, -0.36, 1.0],       # v = -0.6 → row -1
        [0.0, 0.26, 1.0],        # v = 5.6 → row 6 = height
        [1e12, 0.0, 1.0],        # absurdly far outside: no integer overflow
    ])
    assert not project_to_depth(dropped, eye, Ks, 8, 6).any()
    # pixel centres at integers: u = -0.4 → col 0; u = 7.4 → col 7; v = 2.6 → row 3
    kept = np.array([[-0.44, 0.0, 1.0], [0.68, 0.0, 2.0], [0.0, -0.12, 3.0]])
    depth = project_to_depth(kept, eye, Ks, 8, 6)
    assert depth[3, 0] == np.float32(1.0) and depth[3, 7] == np.float32(2.0) and depth[3, 4] == np.float32(3.0)
    assert np.count_nonzero(depth) == 3
    assert not project_to_depth(np.zeros((0, 3)), eye, Ks, 8, 6).any()
    with pytest.raises(ValueError, match=r"\[N, 3\]"):
        project_to_depth(np.zeros((4, 2)), eye, Ks, 8, 6)


# -- PointCloud2 decoding -------------------------------------------------------------------------------------

def test_cloud_round_trip_through_a_rosbag2_file(tmp_path):
    rng = np.random.default_rng(1)
    xyz = rng.uniform(-50, 50, (500, 3)).astype(np.float32)
    xyz[7] = [np.nan, np.nan, np.nan]   # "no return"
    intensity = rng.uniform(0, 255, 500)
    path = tmp_path / "bag"
    with BagWriter(path) as writer:
        writer.write_point_cloud("/lidar/points", 1_000_000_000, "lidar", xyz, intensity=intensity)
        writer.write_point_cloud("/lidar/plain", 1_000_000_001, "lidar", xyz[:10])
    messages = {m.topic: m for m in read_messages(path)}
    cloud = messages["/lidar/points"].msg
    assert messages["/lidar/points"].msgtype == "sensor_msgs/msg/PointCloud2"
    assert cloud.point_step == 16 and cloud.width == 500 and cloud.height == 1 and cloud.header.frame_id == "lidar"
    assert [f.name for f in cloud.fields] == ["x", "y", "z", "intensity"]
    decoded = message_xyz(cloud)
    expected = np.delete(xyz, 7, axis=0).astype(np.float64)
    assert decoded.dtype == np.float64 and decoded.shape == (499, 3)
    np.testing.assert_array_equal(decoded, expected)
    plain = messages["/lidar/plain"].msg
    assert plain.point_step == 12
    np.testing.assert_array_equal(message_xyz(plain), expected[:9])   # row 7 (NaN) dropped


def test_float64_layout_with_padding_and_extra_fields():
    # Ouster-like: t (uint32) first, then float64 x, y, z, float32 intensity, uint16 ring, padding to 48 bytes
    layout = np.dtype({"names": ["t", "x", "y", "z", "intensity", "ring"],
                       "formats": ["<u4", "<f8", "<f8", "<f8", "<f4", "<u2"],
                       "offsets": [0, 8, 16, 24, 32, 36], "itemsize": 48})
    rng = np.random.default_rng(2)
    points = np.zeros((4, 6), layout)   # organised: 4 rows (rings) x 6 columns
    xyz = rng.normal(0, 20, (24, 3))
    xyz[5, 1] = np.inf
    flat = points.reshape(-1)
    flat["x"], flat["y"], flat["z"] = xyz.T
    flat["t"], flat["intensity"], flat["ring"] = 123456, 99.0, np.repeat(np.arange(4), 6)
    fields = [_field("t", 0, 6), _field("x", 8, 8), _field("y", 16, 8), _field("z", 24, 8),
              _field("intensity", 32, 7), _field("ring", 36, 4)]
    data = points.tobytes() + b"\0" * 5   # trailing bytes are ignored
    got = cloud_to_xyz(fields, 48, 6, 4, False, data)
    np.testing.assert_array_equal(got, np.delete(xyz, 5, axis=0))
    # the same as a list of ints (rclpy's array.array-like data) and as a uint8 array
    np.testing.assert_array_equal(cloud_to_xyz(fields, 48, 6, 4, False, list(data)), got)
    np.testing.assert_array_equal(cloud_to_xyz(fields, 48, 6, 4, False, np.frombuffer(data, np.uint8)), got)
    # padded rows: row_step 48*6 + 16
    padded = b"".join(points[r].tobytes() + b"\xff" * 16 for r in range(4))
    message = SimpleNamespace(fields=fields, point_step=48, width=6, height=4, is_bigendian=False,
                              row_step=48 * 6 + 16, data=padded)
    np.testing.assert_array_equal(message_xyz(message), got)


def test_big_endian_float32_cloud():
    layout = np.dtype({"names": ["x", "y", "z"], "formats": [">f4"] * 3, "offsets": [4, 8, 12], "itemsize": 20})
    xyz = np.array([[1.5, -2.25, 3.0], [10.0, 0.125, -7.5]], np.float32)
    points = np.zeros(2, layout)
    points["x"], points["y"], points["z"] = xyz.T
    fields = [_field("intensity", 0, 7), _field("x", 4, 7), _field("y", 8, 7), _field("z", 12, 7),
              _field("ring", 16, 4)]
    np.testing.assert_array_equal(cloud_to_xyz(fields, 20, 2, 1, True, points.tobytes()), xyz)
    # read as little-endian it is garbage, so the flag matters
    assert not np.array_equal(cloud_to_xyz(fields, 20, 2, 1, False, points.tobytes()), xyz)


def test_cloud_errors():
    fields = [_field("x", 0, 7), _field("y", 4, 7), _field("intensity", 8, 7)]
    with pytest.raises(ValueError, match=r"no z field; fields present: x, y, intensity"):
        cloud_to_xyz(fields, 12, 1, 1, False, bytes(12))
    fields = [_field("x", 0, 7), _field("y", 4, 7), _field("z", 8, 7)]
    with pytest.raises(ValueError, match=r"expected 120 bytes .* got 100"):
        cloud_to_xyz(fields, 12, 5, 2, False, bytes(100))
    with pytest.raises(ValueError, match="does not fit"):
        cloud_to_xyz([_field("x", 0, 7), _field("y", 4, 7), _field("z", 8, 8)], 12, 1, 1, False, bytes(12))
    with pytest.raises(ValueError, match="datatype"):
        cloud_to_xyz([_field("x", 0, 9), _field("y", 4, 7), _field("z", 8, 7)], 12, 1, 1, False, bytes(12))
    with pytest.raises(ValueError, match="not a PointCloud2"):
        message_xyz(SimpleNamespace(fields=fields))
    assert cloud_to_xyz(fields, 12, 0, 1, False, b"").shape == (0, 3)


# -- camera ← lidar transform ---------------------------------------------------------------------------------

def _rpy_matrix(roll, pitch, yaw):
    c, s = np.cos, np.sin
    Rx = np.array([[1, 0, 0], [0, c(roll), -s(roll)], [0, s(roll), c(roll)]])
    Ry = np.array([[c(pitch), 0, s(pitch)], [0, 1, 0], [-s(pitch), 0, c(pitch)]])
    Rz = np.array([[c(yaw), -s(yaw), 0], [s(yaw), c(yaw), 0], [0, 0, 1]])
    return Rz @ Ry @ Rx


def test_parse_transform_forms_agree(tmp_path):
    t = [0.1, -0.25, 0.7]
    rpy = (-1.5, 0.05, -1.6)
    T = np.eye(4)
    T[:3, :3] = _rpy_matrix(*rpy)
    T[:3, 3] = t
    q = rotation_to_quaternion(T[:3, :3])
    specs = [
        " ".join(map(str, [*t, *q])),
        ", ".join(map(str, [*t, *rpy])),
        " ".join(map(str, T.reshape(-1).tolist())),
        "[" + ",".join(map(str, T.reshape(-1).tolist())) + "]",
    ]
    (tmp_path / "q.json").write_text(json.dumps({"translation": t, "rotation": list(q)}))
    (tmp_path / "m.json").write_text(json.dumps({"camera_from_lidar": {"matrix": T.tolist()}}))
    (tmp_path / "q.yaml").write_text(f"camera_from_lidar:\n  translation: {t}\n  rotation: {list(q)}\n")
    (tmp_path / "m.yml").write_text("matrix:\n" + "".join(f"  - {row}\n" for row in T.tolist()))
    specs += [str(tmp_path / name) for name in ("q.json", "m.json", "q.yaml", "m.yml")]
    for spec in specs:
        got = parse_transform(spec)
        assert got.shape == (4, 4) and got.dtype == np.float64
        np.testing.assert_allclose(got, T, atol=1e-12, err_msg=spec)


def test_parse_transform_conventions():
    # yaw of +90° maps x onto y: fixed-axis RPY and (x, y, z, w) quaternion order
    for spec in ("1 2 3 0 0 1.5707963267948966", "1 2 3 0 0 0.7071067811865476 0.7071067811865476"):
        np.testing.assert_allclose(parse_transform(spec) @ [1, 0, 0, 1], [1, 3, 3, 1], atol=1e-12)
    # fixed axes, roll first: R = Rz(yaw) Ry(pitch) Rx(roll); roll 90° sends y to z, then pitch 90° sends z to x
    T = parse_transform("0 0 0 1.5707963267948966 1.5707963267948966 0")
    np.testing.assert_allclose(T[:3, :3] @ [0, 1, 0], [1, 0, 0], atol=1e-12)   # y -roll-> z -pitch-> x


@pytest.mark.parametrize("spec, words", [
    ("1 2 3 4 5", "5 numbers"),
    ("0 0 0 0 0 0 2", "norm"),
    ("1 0 0 0  0 2 0 0  0 0 1 0  0 0 0 1", "orthonormal"),
    ("1 0 0 0  0 -1 0 0  0 0 1 0  0 0 0 1", "det"),
    ("1 0 0 0  0 1 0 0  0 0 1 0  0 0 1 1", "last row"),
    ("0 0 nan 0 0 0", "non-finite"),
    ("one two three", "accepted forms"),
    ("/nonexistent/calib.yaml", "not found"),
])
def test_parse_transform_errors(spec, words):
    with pytest.raises(ValueError, match=words) as info:
        parse_transform(spec)
    assert repr(spec) in str(info.value) or spec in str(info.value)


def test_parse_transform_bad_files(tmp_path):
    (tmp_path / "keys.json").write_text(json.dumps({"translation": [0, 0, 0]}))
    (tmp_path / "broken.json").write_text("{")
    (tmp_path / "short.yaml").write_text("translation: [0, 0]\nrotation: [0, 0, 0, 1]\n")
    for name, words in (("keys.json", "expected 'translation' \\+ 'rotation' or 'matrix'"),
                        ("broken.json", "not valid JSON"), ("short.yaml", "3 numbers")):
        with pytest.raises(ValueError, match=words):
            parse_transform(str(tmp_path / name))
