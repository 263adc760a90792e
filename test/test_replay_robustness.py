"""Replay on bags other tools write, replays that evaluate nothing, and live replay's footprint on its caller.

* ROS 1-style type names (``sensor_msgs/Image``) for the ROS 2 types, written by rosbags into real MCAP and SQLite3
  bags, and an MCAP without the ros2 profile, replay like the canonical names; an alias whose definition differs
  is refused by name.
* "0 of 0 frames" is an error: an image topic without messages (exit 2), a metadata.yaml naming a topic the storage
  does not hold, images that cannot be decoded (exit 1, the reason on stderr and in the report).
* Live replay: the caller's ROS_DOMAIN_ID is used when set, else a free domain; os.environ is the same before, during
  and after; a context the caller created stays usable (in process, the real node over DDS).
"""
from __future__ import annotations

import os
import random
import socket
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from sgdepth_ros.bag import BagWriter, messages, read_messages
from sgdepth_ros.bag.msgtypes import canonical_msgtype
from sgdepth_ros.default_model import default_model_path
from sgdepth_ros.replay.frames import FrameReader
from sgdepth_ros.replay.topics import TopicError, list_topics, resolve_topics
from sgdepth_ros.ros.domain import domain_in_use, explicit_domain_id, free_domain_id, replay_domain_id
from sgdepth_ros.samples import road_scene

from replay_runner import replay, report

W, H, FRAMES = 96, 48, 3
T0, DT = 1_700_000_000_000_000_000, 100_000_000
K = np.array([[80.0, 0, 47.5], [0, 80.0, 23.5], [0, 0, 1]])
IMAGE, COMPRESSED, INFO = "sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage", "sensor_msgs/msg/CameraInfo"
# a ROS 1 Image definition: its Header has a seq field, so the bytes are not a ROS 2 Image's
ROS1_IMAGE_DEF = ("std_msgs/Header header\nuint32 height\nuint32 width\nstring encoding\nuint8 is_bigendian\n"
                  "uint32 step\nuint8[] data\n" + "=" * 80 + "\nMSG: std_msgs/Header\nuint32 seq\n"
                  "builtin_interfaces/Time stamp\nstring frame_id\n" + "=" * 80 + "\nMSG: builtin_interfaces/Time\n"
                  "int32 sec\nuint32 nanosec\n")


def ros1_style(msgtype: str) -> str:
    return msgtype.replace("/msg/", "/")


def write_alias_bag(path: Path, storage: str, compressed: bool = False, image_def: str | None = None) -> Path:
    """A bag written by rosbags with every type under its ROS 1-style name (registered so in the typestore, as a
    tool that names types that way would): ``/cam/image_raw`` (or ``…/compressed``) and ``/cam/camera_info``."""
    store = get_typestore(Stores.ROS2_JAZZY)
    image_type = COMPRESSED if compressed else IMAGE
    store.register({ros1_style(t): store.fielddefs[t] for t in (image_type, INFO)})
    topic = "/cam/image_raw/compressed" if compressed else "/cam/image_raw"
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        if image_def is None:
            image = writer.add_connection(topic, ros1_style(image_type), typestore=store)
        else:
            image = writer.add_connection(topic, ros1_style(image_type), msgdef=image_def, rihs01="RIHS01_" + "0" * 64)
        info = writer.add_connection("/cam/camera_info", ros1_style(INFO), typestore=store)
        for i in range(FRAMES):
            stamp = T0 + i * DT
            rgb = road_scene(W, H, seed=i)
            msg = (messages.compressed_image(store.types, stamp, "cam", rgb, "png") if compressed
                   else messages.image(store.types, stamp, "cam", rgb, "rgb8"))
            writer.write(info, stamp, store.serialize_cdr(messages.camera_info(store.types, stamp, "cam", K, W, H),
                                                          INFO))
            writer.write(image, stamp, store.serialize_cdr(msg, image_type))
    return path


# -- ROS 1-style type names and other writers' MCAP ------------------------------------------------------------


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
@pytest.mark.parametrize("compressed", [False, True])
def test_ros1_style_type_names_of_the_same_types_are_read_as_the_ros2_types(tmp_path, storage, compressed):
    bag = write_alias_bag(tmp_path / "bag", storage, compressed)
    written = {c.topic: c.msgtype for c in _connections(bag)}
    assert set(written.values()) == {ros1_style(COMPRESSED if compressed else IMAGE), ros1_style(INFO)}
    listed = {t.name: t.msgtype for t in list_topics(bag)}
    image_topic = "/cam/image_raw/compressed" if compressed else "/cam/image_raw"
    assert listed == {image_topic: COMPRESSED if compressed else IMAGE, "/cam/camera_info": INFO}
    topics = resolve_topics(list_topics(bag))
    assert (topics.image, topics.camera_info) == (image_topic, "/cam/camera_info")
    frames = list(FrameReader(bag, topics))
    assert len(frames) == FRAMES and all(f.K is not None and np.allclose(f.K, K) for f in frames)
    np.testing.assert_array_equal(frames[1].rgb, road_scene(W, H, seed=1))
    assert {m.msgtype for m in read_messages(bag)} == set(listed.values())


def test_a_bag_with_ros1_style_names_replays_and_its_output_bag_uses_the_ros2_names(tmp_path):
    bag = write_alias_bag(tmp_path / "bag", "mcap")
    done = replay(bag, "--out", tmp_path / "out", "--backend", "torch", "--device", "cpu")
    assert done.returncode == 0, done.stdout + done.stderr
    summary = report(tmp_path / "out")
    assert summary["frames"]["sent"] == summary["frames"]["delivered"] == FRAMES and summary["complete"]
    types = {t.name: t.msgtype for t in list_topics(summary["outputs"]["bag"])}
    assert types["/cam/image_raw"] == IMAGE and types["/cam/camera_info"] == INFO


def test_a_ros1_style_name_with_another_definition_is_not_taken_for_the_ros2_type(tmp_path):
    bag = write_alias_bag(tmp_path / "bag", "mcap", image_def=ROS1_IMAGE_DEF)
    listed = {t.name: t.msgtype for t in list_topics(bag)}
    assert listed["/cam/image_raw"] == "sensor_msgs/Image" and listed["/cam/camera_info"] == INFO
    with pytest.raises(TopicError, match="ROS 1-style name whose stored definition differs"):
        resolve_topics(list_topics(bag), image="/cam/image_raw")
    with pytest.raises(TopicError, match="cannot tell which topic is the camera image"):
        resolve_topics(list_topics(bag))


def test_canonical_msgtype_rules():
    assert canonical_msgtype(IMAGE) == IMAGE
    assert canonical_msgtype("sensor_msgs/Image") == IMAGE  # no definition stored: goes by the name
    assert canonical_msgtype("my_pkg/Image") == "my_pkg/Image"  # unknown to Jazzy: unchanged
    assert canonical_msgtype("sensor_msgs/msg/Nope") == "sensor_msgs/msg/Nope"


def test_an_mcap_without_the_ros2_profile_is_read_without_calling_it_truncated(tmp_path, caplog):
    """An MCAP written by the mcap library with profile "" (as non-rosbag2 tools do): every message is read."""
    from mcap.writer import Writer as McapWriter

    store = get_typestore(Stores.ROS2_JAZZY)
    path = tmp_path / "other_tool.mcap"
    with path.open("wb") as f:
        writer = McapWriter(f)
        writer.start(profile="", library="a test")
        schema = writer.register_schema("sensor_msgs/Image", "ros2msg",
                                        store.generate_msgdef(IMAGE, ros_version=2)[0].encode())
        channel = writer.register_channel("/cam/image_raw", "cdr", schema)
        for i in range(FRAMES):
            msg = messages.image(store.types, T0 + i * DT, "cam", road_scene(W, H, seed=i), "rgb8")
            writer.add_message(channel, log_time=T0 + i * DT, publish_time=T0 + i * DT,
                               data=bytes(store.serialize_cdr(msg, IMAGE)))
        writer.finish()
    with caplog.at_level("INFO", logger="sgdepth_ros.bag.reader"):
        assert [t.msgtype for t in list_topics(path)] == [IMAGE]
        frames = list(FrameReader(path, resolve_topics(list_topics(path))))
    assert len(frames) == FRAMES
    assert "truncated" not in caplog.text and "without the ros2 profile" in caplog.text


# -- nothing evaluated is an error -----------------------------------------------------------------------------


def test_an_image_topic_without_messages_is_an_error(tmp_path, replay_here):
    store = get_typestore(Stores.ROS2_JAZZY)
    with Writer(tmp_path / "bag", version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        writer.add_connection("/cam/image_raw", IMAGE, typestore=store)
        info = writer.add_connection("/cam/camera_info", INFO, typestore=store)
        writer.write(info, T0, store.serialize_cdr(messages.camera_info(store.types, T0, "cam", K, W, H), INFO))
    done = replay_here(tmp_path / "bag", "--out", tmp_path / "out")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "/cam/image_raw has no messages" in done.stderr and "(0 messages)" in done.stderr
    assert not (tmp_path / "out" / "report.json").exists()


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_a_metadata_yaml_naming_another_topic_is_an_error_with_the_reason(tmp_path, replay_here, storage):
    bag = tmp_path / "bag"
    with BagWriter(bag, storage=storage) as writer:
        for i in range(FRAMES):
            writer.write_image("/cam/image_raw", T0 + i * DT, "cam", road_scene(W, H, seed=i), "rgb8")
    metadata = bag / "metadata.yaml"
    metadata.write_text(metadata.read_text().replace("/cam/image_raw", "/front/image_raw"))
    done = replay_here(bag, "--out", tmp_path / "out", "--backend", "torch", "--device", "cpu")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "error: no message of /front/image_raw could be read" in done.stderr
    assert "metadata.yaml does not match" in done.stderr
    summary = report(tmp_path / "out")
    assert not summary["complete"] and summary["frames"]["sent"] == summary["frames"]["delivered"] == 0
    assert summary["frames"]["in_bag"] == FRAMES and "metadata.yaml" in summary["errors"][0]
    assert "No results" in (tmp_path / "out" / "report.md").read_text()


def test_images_that_cannot_be_decoded_are_an_error_with_their_kinds(tmp_path, replay_here):
    bag = tmp_path / "bag"
    with BagWriter(bag) as writer:
        for i in range(FRAMES):
            msg = messages.image(writer._types, T0 + i * DT, "cam", road_scene(W, H, seed=i), "rgb8")
            msg.data = msg.data[:100]  # shorter than step × height
            writer.write_message("/cam/image_raw", T0 + i * DT, msg)
    done = replay_here(bag, "--out", tmp_path / "out", "--backend", "torch", "--device", "cpu")
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"no image on /cam/image_raw could be decoded (short_data {FRAMES})" in done.stderr
    assert not report(tmp_path / "out")["complete"]


# -- ROS domain ------------------------------------------------------------------------------------------------


def test_explicit_domain_id_is_read_and_checked():
    assert explicit_domain_id({"ROS_DOMAIN_ID": "7"}) == 7
    assert explicit_domain_id({"ROS_DOMAIN_ID": " 0 "}) == 0
    assert explicit_domain_id({"ROS_DOMAIN_ID": ""}) is None and explicit_domain_id({}) is None
    for bad in ("abc", "233", "-1"):
        with pytest.raises(ValueError, match=r"0\.\.232"):
            explicit_domain_id({"ROS_DOMAIN_ID": bad})
    assert replay_domain_id({"ROS_DOMAIN_ID": "42"}) == (42, "ROS_DOMAIN_ID")
    domain, source = replay_domain_id({})
    assert source == "free" and 1 <= domain <= 101


def test_a_domain_with_a_participant_is_seen_as_in_use_and_skipped(monkeypatch, tmp_path):
    import rclpy
    from rclpy.node import Node

    order = list(range(1, 102))
    random.Random(5).shuffle(order)
    first, second = [d for d in order if not domain_in_use(d)][:2]
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    monkeypatch.setenv("ROS_LOG_DIR", str(tmp_path))
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=first)
    node = Node("domain_probe", context=context)  # the DDS participant is created with the first node
    try:
        assert domain_in_use(first)
    finally:
        node.destroy_node()
        context.try_shutdown()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:  # a participant of another DDS on `first`
        taken.bind(("", 7400 + 250 * first + 10))
        assert domain_in_use(first) and free_domain_id(random.Random(5)) == second


# -- live replay leaves its caller as it was -------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_bag(tmp_path_factory) -> Path:
    bag = tmp_path_factory.mktemp("live") / "bag"
    with BagWriter(bag) as writer:
        for i in range(FRAMES):
            writer.write_camera_info("/cam/camera_info", T0 + i * DT, "cam", K, W, H)
            writer.write_image("/cam/image_raw", T0 + i * DT, "cam", road_scene(W, H, seed=i), "rgb8")
    return bag


def live_replay(model: str, bag: Path):
    from sgdepth_ros.replay.live import LiveReplay, LiveSettings
    from sgdepth_ros.ros.messages import output_topics

    topics = resolve_topics(list_topics(bag))
    settings = LiveSettings(model, device="cpu", node_params={"backend": "torch"}, drain_s=120.0)
    return LiveReplay(settings, {k: t for k, (t, _) in output_topics(False).items()}, topics.image,
                      topics.camera_info, compressed=False), FrameReader(bag, topics)


def _recorder():
    from sgdepth_ros.replay.evaluate import EvalSettings, ReplayEvaluator
    from sgdepth_ros.replay.recorder import FrameRecorder

    return FrameRecorder(ReplayEvaluator(EvalSettings()), {}, None)


def test_live_replay_uses_the_callers_domain_and_leaves_its_environment_and_context(small_bag, monkeypatch,
                                                                                     tmp_path):
    import rclpy
    from std_msgs.msg import String

    domain = free_domain_id()
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    monkeypatch.setenv("ROS_LOG_DIR", str(tmp_path))
    rclpy.init()  # the caller's own ROS: rclpy's default context
    try:
        caller = rclpy.create_node("caller")
        got = []
        caller.create_subscription(String, "/caller_topic", got.append, 10)
        publisher = caller.create_publisher(String, "/caller_topic", 10)
        before = dict(os.environ)
        live, frames = live_replay(str(default_model_path()), small_bag)
        recorder = _recorder()
        with live:
            assert dict(os.environ) == before
            assert (live.domain_id, live.domain_source) == (domain, "ROS_DOMAIN_ID")
            result = live.play(frames, recorder)
        assert dict(os.environ) == before
        assert result["sent"] == FRAMES and result["delivered"] + result["dropped"] == FRAMES
        assert result["delivered"] >= 1 and recorder.delivered == result["delivered"] and result["node_alive"]
        # the caller's context was neither shut down nor disturbed
        assert rclpy.ok()
        publisher.publish(String(data="still here"))
        rclpy.spin_once(caller, timeout_sec=5.0)
        assert [m.data for m in got] == ["still here"]
        caller.destroy_node()
    finally:
        rclpy.try_shutdown()


def test_live_replay_that_fails_to_start_also_leaves_the_caller_as_it_was(small_bag, monkeypatch, tmp_path):
    import rclpy

    monkeypatch.delenv("ROS_DOMAIN_ID", raising=False)
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    monkeypatch.setenv("ROS_LOG_DIR", str(tmp_path))
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=free_domain_id())  # a context of the caller's own
    try:
        before = dict(os.environ)
        live, _ = live_replay(str(tmp_path / "absent.safetensors"), small_bag)
        with pytest.raises(RuntimeError, match="sgdepth_node exited"):
            with live:
                pass
        assert dict(os.environ) == before
        assert live.domain_source == "free" and 1 <= live.domain_id <= 101
        assert context.ok() and live.node.returncode not in (None, 0)
    finally:
        context.try_shutdown()


def _connections(bag: Path):
    from rosbags.rosbag2 import Reader

    with Reader(bag) as reader:
        return list(reader.connections)
