"""sgdepth_ros.bag: write MCAP and SQLite3 bags, read them back (rosbags and real rclpy deserialisation)."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from rclpy.serialization import deserialize_message
from rosbags.rosbag2 import Reader
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from sgdepth_ros.bag import BagWriter, quaternion_to_rotation, read_messages, rotation_to_quaternion
from sgdepth_ros.bag.writer import STORAGES

H, W = 24, 32
T0 = 1_700_000_000_123_456_789           # a realistic epoch stamp (ns)
DT = 100_000_000                          # 10 Hz
K = np.array([[40.0, 0, 15.5], [0, 41.0, 11.5], [0, 0, 1]])
S = math.sqrt(0.5)
OPTICAL_Q = (-0.5, 0.5, -0.5, 0.5)        # camera_link → camera_optical_frame (REP 103 → optical)


def smooth_rgb() -> np.ndarray:
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    return np.stack([40 + 6 * x, 30 + 8 * y, 120 + 50 * np.sin(x / 5)], axis=2).round().astype(np.uint8)


def depth_map() -> np.ndarray:
    depth = np.linspace(0.5, 80.0, H * W, dtype=np.float32).reshape(H, W)
    depth[3, 4] = np.nan
    depth[-1, :] = np.nan
    return depth


def labels_map() -> np.ndarray:
    labels = (np.arange(H * W) % 19).astype(np.uint8).reshape(H, W)
    labels[0, :5] = 255
    return labels


def write_sample(path: Path, storage: str) -> None:
    rgb = smooth_rgb()
    with BagWriter(path, storage=storage) as bag:
        bag.write_static_transforms(T0, [("base_link", "camera_link", (1.2, 0.0, 1.5), (0, 0, 0, 1))])
        bag.write_static_transforms(T0, [("camera_link", "camera_optical_frame", (0, 0, 0), OPTICAL_Q)])
        for i in range(2):
            stamp = T0 + i * DT
            bag.write_image("/camera/image_raw", stamp, "camera_optical_frame", rgb, "rgb8")
            bag.write_image("/camera/image_bgr", stamp, "camera_optical_frame", rgb, "bgr8")
            bag.write_image("/camera/depth", stamp, "camera_optical_frame", depth_map(), "32FC1")
            bag.write_image("/camera/labels", stamp, "camera_optical_frame", labels_map(), "mono8")
            bag.write_compressed("/camera/image_raw/compressed", stamp, "camera_optical_frame", rgb, fmt="png")
            bag.write_compressed("/camera/jpeg/compressed", stamp, "camera_optical_frame", rgb, fmt="jpeg",
                                 quality=95)
            bag.write_camera_info("/camera/camera_info", stamp, "camera_optical_frame", K, W, H)
            bag.write_transform(stamp, "odom", "base_link", (0.5 * i, 0.0, 0.0), (0, 0, S, S))
        assert bag.message_counts["/camera/image_raw"] == 2


EXPECTED_TOPICS = {
    "/camera/image_raw": ("sensor_msgs/msg/Image", 2),
    "/camera/image_bgr": ("sensor_msgs/msg/Image", 2),
    "/camera/depth": ("sensor_msgs/msg/Image", 2),
    "/camera/labels": ("sensor_msgs/msg/Image", 2),
    "/camera/image_raw/compressed": ("sensor_msgs/msg/CompressedImage", 2),
    "/camera/jpeg/compressed": ("sensor_msgs/msg/CompressedImage", 2),
    "/camera/camera_info": ("sensor_msgs/msg/CameraInfo", 2),
    "/tf": ("tf2_msgs/msg/TFMessage", 2),
    "/tf_static": ("tf2_msgs/msg/TFMessage", 2),
}


@pytest.fixture(scope="module", params=sorted(STORAGES))
def sample_bag(request, tmp_path_factory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp(request.param) / "sample_bag"
    write_sample(path, request.param)
    return path, request.param


def by_topic(path: Path) -> dict[str, list]:
    grouped: dict[str, list] = {}
    for message in read_messages(path):
        grouped.setdefault(message.topic, []).append(message)
    return grouped


def test_metadata_and_qos(sample_bag):
    path, storage = sample_bag
    suffix = {"mcap": ".mcap", "sqlite3": ".db3"}[storage]
    assert (path / "metadata.yaml").is_file() and (path / f"sample_bag{suffix}").is_file()
    with Reader(path) as reader:
        topics = {name: (info.msgtype, info.msgcount) for name, info in reader.topics.items()}
        assert topics == EXPECTED_TOPICS
        assert reader.message_count == 18
        assert reader.start_time == T0 and reader.end_time == T0 + DT + 1
        for connection in reader.connections:
            (qos,) = connection.ext.offered_qos_profiles
            assert qos.reliability.name == "RELIABLE" and qos.history.name == "KEEP_LAST"
            if connection.topic == "/tf_static":
                assert (qos.durability.name, qos.depth) == ("TRANSIENT_LOCAL", 1)
            else:
                assert (qos.durability.name, qos.depth) == ("VOLATILE", 10)


def test_read_messages_order_and_types(sample_bag):
    path, _ = sample_bag
    messages = list(read_messages(path))
    assert len(messages) == 18
    stamps = [m.timestamp_ns for m in messages]
    assert stamps == sorted(stamps)
    assert {m.topic: m.msgtype for m in messages} == {t: v[0] for t, v in EXPECTED_TOPICS.items()}
    only = list(read_messages(path, topics=["/camera/depth"]))
    assert [m.topic for m in only] == ["/camera/depth"] * 2
    assert [m.msg.header.stamp.nanosec for m in only] == [(T0 + i * DT) % 10**9 for i in range(2)]
    assert [m.msg for m in read_messages(path, topics="/tf", deserialize=False)] == [None, None]


def rclpy_images(path: Path, topic: str, msg_type):
    return [(m.timestamp_ns, deserialize_message(m.rawdata, msg_type)) for m in read_messages(path, [topic])]


def check_header(stamp_ns: int, msg, frame_id: str = "camera_optical_frame") -> None:
    assert msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec == stamp_ns
    assert msg.header.frame_id == frame_id


def test_images_with_rclpy(sample_bag):
    path, _ = sample_bag
    rgb = smooth_rgb()
    cases = {  # topic → (encoding, step, expected payload bytes)
        "/camera/image_raw": ("rgb8", 3 * W, rgb.tobytes()),
        "/camera/image_bgr": ("bgr8", 3 * W, rgb[:, :, ::-1].tobytes()),
        "/camera/depth": ("32FC1", 4 * W, depth_map().astype("<f4").tobytes()),
        "/camera/labels": ("mono8", W, labels_map().tobytes()),
    }
    for topic, (encoding, step, payload) in cases.items():
        received = rclpy_images(path, topic, Image)
        assert [stamp for stamp, _ in received] == [T0, T0 + DT]
        for stamp, msg in received:
            check_header(stamp, msg)
            assert (msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian) == (encoding, H, W, step, 0)
            assert bytes(msg.data) == payload, topic
    _, depth_msg = rclpy_images(path, "/camera/depth", Image)[0]
    depth = np.frombuffer(bytes(depth_msg.data), "<f4").reshape(H, W)
    np.testing.assert_array_equal(depth, depth_map())  # NaN positions equal too
    assert np.isnan(depth).sum() == W + 1


def test_compressed_with_rclpy(sample_bag):
    path, _ = sample_bag
    rgb = smooth_rgb()
    for topic, fmt in (("/camera/image_raw/compressed", "png"), ("/camera/jpeg/compressed", "jpeg")):
        for stamp, msg in rclpy_images(path, topic, CompressedImage):
            check_header(stamp, msg)
            assert msg.format == f"rgb8; {fmt} compressed bgr8"
            decoded = cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
            assert decoded.shape == (H, W, 3)
            error = np.abs(decoded.astype(int) - rgb.astype(int))
            if fmt == "png":
                assert error.max() == 0
            else:
                assert error.mean() < 3 and error.max() < 40


def test_camera_info_with_rclpy(sample_bag):
    path, _ = sample_bag
    for stamp, msg in rclpy_images(path, "/camera/camera_info", CameraInfo):
        check_header(stamp, msg)
        assert (msg.width, msg.height, msg.distortion_model) == (W, H, "plumb_bob")
        np.testing.assert_array_equal(np.asarray(msg.k).reshape(3, 3), K)
        np.testing.assert_array_equal(np.asarray(msg.p).reshape(3, 4), np.hstack([K, np.zeros((3, 1))]))
        np.testing.assert_array_equal(np.asarray(msg.r).reshape(3, 3), np.eye(3))
        np.testing.assert_array_equal(np.asarray(msg.d), np.zeros(5))


def test_transforms(sample_bag):
    path, _ = sample_bag
    static = [m.msg for m in read_messages(path, ["/tf_static"])]
    # the latched set grows like tf2_ros' StaticTransformBroadcaster: the last message holds all
    assert [len(msg.transforms) for msg in static] == [1, 2]
    parent_child = [(t.header.frame_id, t.child_frame_id) for t in static[-1].transforms]
    assert parent_child == [("base_link", "camera_link"), ("camera_link", "camera_optical_frame")]
    optical = static[-1].transforms[1].transform.rotation
    assert (optical.x, optical.y, optical.z, optical.w) == OPTICAL_Q
    lifted = static[-1].transforms[0]
    assert (lifted.transform.translation.x, lifted.transform.translation.z) == (1.2, 1.5)
    assert lifted.header.stamp.sec * 10**9 + lifted.header.stamp.nanosec == T0
    dynamic = list(read_messages(path, ["/tf"]))
    for i, message in enumerate(dynamic):
        (tf,) = message.msg.transforms
        assert message.timestamp_ns == T0 + i * DT
        assert tf.header.stamp.sec * 10**9 + tf.header.stamp.nanosec == T0 + i * DT
        assert (tf.header.frame_id, tf.child_frame_id) == ("odom", "base_link")
        assert tf.transform.translation.x == 0.5 * i
        assert math.isclose(tf.transform.rotation.z, S) and math.isclose(tf.transform.rotation.w, S)


def test_existing_path_and_bad_storage(tmp_path):
    with pytest.raises(FileExistsError, match=str(tmp_path)):
        BagWriter(tmp_path)
    with pytest.raises(ValueError, match="mcap.*sqlite3"):
        BagWriter(tmp_path / "new", storage="rosbag1")
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("storage", sorted(STORAGES))
def test_exception_inside_with_leaves_readable_bag(tmp_path, storage):
    path = tmp_path / "partial"
    with pytest.raises(RuntimeError, match="synthetic failure"):
        with BagWriter(path, storage=storage) as bag:
            bag.write_image("/camera/labels", T0, "cam", labels_map(), "mono8")
            bag.write_transform(T0 + 1, "odom", "base_link", (0, 0, 0), (0, 0, 0, 1))
            raise RuntimeError("synthetic failure")
    assert bag.closed
    messages = list(read_messages(path))
    assert [(m.topic, m.timestamp_ns) for m in messages] == [("/camera/labels", T0), ("/tf", T0 + 1)]
    np.testing.assert_array_equal(messages[0].msg.data.reshape(H, W), labels_map())


def test_writer_rejections(tmp_path):
    with BagWriter(tmp_path / "bag") as bag:
        bag.write_image("/img", T0, "cam", labels_map(), "mono8")
        with pytest.raises(ValueError, match="/img.*sensor_msgs/msg/Image.*CameraInfo"):
            bag.write_camera_info("/img", T0, "cam", K, W, H)
        with pytest.raises(ValueError, match="rgb8, bgr8"):
            bag.write_image("/x", T0, "cam", labels_map(), "rgba8")
        with pytest.raises(ValueError, match="HxWx3"):
            bag.write_image("/x", T0, "cam", labels_map(), "rgb8")
        with pytest.raises(ValueError, match="uint8"):
            bag.write_image("/x", T0, "cam", depth_map(), "mono8")
        with pytest.raises(TypeError, match="integer"):
            bag.write_image("/x", 1.5e18, "cam", labels_map(), "mono8")
        with pytest.raises(ValueError, match="fully qualified"):
            bag.write_image("camera/x", T0, "cam", labels_map(), "mono8")
        with pytest.raises(ValueError, match="norm"):
            bag.write_transform(T0, "a", "b", (0, 0, 0), (0, 0, 0, 2))
        with pytest.raises(ValueError, match="jpeg, png"):
            bag.write_compressed("/c", T0, "cam", smooth_rgb(), fmt="webp")
        bag.write_image("/depth16", T0, "cam", np.full((H, W), 0x1234, np.uint16), "16UC1")
    with pytest.raises(RuntimeError, match="closed"):
        bag.write_image("/img", T0, "cam", labels_map(), "mono8")
    (msg16,) = [m.msg for m in read_messages(tmp_path / "bag", ["/depth16"])]
    assert (msg16.step, bytes(msg16.data[:2])) == (2 * W, b"\x34\x12")
    assert [m.topic for m in read_messages(tmp_path / "bag")] == ["/img", "/depth16"]


def test_reader_errors(tmp_path, sample_bag):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        read_messages(tmp_path / "nowhere")
    (tmp_path / "not_a_bag").mkdir()
    with pytest.raises(ValueError, match="not_a_bag"):
        read_messages(tmp_path / "not_a_bag")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="notes.txt"):
        read_messages(tmp_path / "notes.txt")
    with pytest.raises(ValueError, match="/missing.*/camera/depth"):
        read_messages(sample_bag[0], ["/missing"])


def test_single_storage_file_is_readable(sample_bag):
    path, storage = sample_bag
    (storage_file,) = [p for p in path.iterdir() if p.suffix in (".mcap", ".db3")]
    assert len(list(read_messages(storage_file, ["/camera/camera_info"]))) == 2


def test_rotation_to_quaternion_hand_values():
    c, s = math.cos, math.sin
    cases = [
        (np.eye(3), (0, 0, 0, 1)),
        ([[0, -1, 0], [1, 0, 0], [0, 0, 1]], (0, 0, S, S)),                     # +90° about z
        ([[1, 0, 0], [0, -1, 0], [0, 0, -1]], (1, 0, 0, 0)),                    # 180° about x
        ([[-1, 0, 0], [0, 1, 0], [0, 0, -1]], (0, 1, 0, 0)),                    # 180° about y
        ([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], OPTICAL_Q),                       # optical frame axes
        ([[c(0.3), 0, s(0.3)], [0, 1, 0], [-s(0.3), 0, c(0.3)]], (0, s(0.15), 0, c(0.15))),  # 0.3 rad about y
        ([[1, 0, 0], [0, c(-2), -s(-2)], [0, s(-2), c(-2)]], (s(-1), 0, 0, c(-1))),        # −2 rad about x
    ]
    for R, expected in cases:
        q = rotation_to_quaternion(R)
        np.testing.assert_allclose(q, expected, atol=1e-12)
        np.testing.assert_allclose(quaternion_to_rotation(q), np.asarray(R, float), atol=1e-12)
    rng = np.random.default_rng(0)
    for _ in range(50):  # round trip through every Shepperd branch
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        q *= np.sign(q[3])
        np.testing.assert_allclose(rotation_to_quaternion(quaternion_to_rotation(q)), q, atol=1e-12)
    with pytest.raises(ValueError, match="proper rotation"):
        rotation_to_quaternion(np.diag([1.0, 1.0, -1.0]))
    with pytest.raises(ValueError, match="3x3"):
        rotation_to_quaternion(np.eye(4))


def test_bag_package_does_not_import_rclpy():
    code = "import sys, sgdepth_ros.bag; assert 'rclpy' not in sys.modules, 'rclpy imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])
