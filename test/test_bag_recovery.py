"""Truncated MCAP bags: read_messages yields every complete message before the cut, then BagTruncatedError."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore

from sgdepth_ros.bag import BagWriter, read_messages
from sgdepth_ros.bag import reader as bag_reader
from sgdepth_ros.bag.reader import BagTruncatedError

IMAGE, INFO = "/camera/image_raw", "/camera/camera_info"
T0, DT = 1_700_000_000_000_000_000, 100_000_000
K = np.array([[50.0, 0, 31.5], [0, 50.0, 23.5], [0, 0, 1]])


def frame(i: int, h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(x + 3 * i) % 256, (y + 5 * i) % 256, np.full_like(x, i % 256)], axis=2).astype(np.uint8)


def write_bag(path: Path, frames: int, h: int, w: int) -> Path:
    with BagWriter(path, storage="mcap") as bag:
        for i in range(frames):
            stamp = T0 + i * DT
            bag.write_camera_info(INFO, stamp, "cam", K, w, h)
            bag.write_image(IMAGE, stamp, "cam", frame(i, h, w), "rgb8")
    return path


def truncated_copy(bag: Path, dest: Path, fraction: float) -> Path:
    shutil.copytree(bag, dest)
    mcap = dest / f"{bag.name}.mcap"
    mcap.rename(dest / f"{dest.name}.mcap")
    mcap = dest / f"{dest.name}.mcap"
    meta = dest / "metadata.yaml"
    meta.write_text(meta.read_text().replace(f"{bag.name}.mcap", f"{dest.name}.mcap"))
    with mcap.open("r+b") as f:
        f.truncate(int(mcap.stat().st_size * fraction))
    return dest


def read_until_error(path, topics=None):
    """(messages read, the BagTruncatedError) — iterating by hand so the prefix is kept."""
    got = []
    with pytest.raises(BagTruncatedError) as info:
        for message in read_messages(path, topics):
            got.append(message)
    return got, info.value


def assert_prefix(got, full):
    assert 0 < len(got) < len(full)
    for a, b in zip(got, full):
        assert (a.topic, a.msgtype, a.timestamp_ns, a.rawdata) == (b.topic, b.msgtype, b.timestamp_ns, b.rawdata)
        if a.topic == IMAGE:
            assert a.msg.encoding == "rgb8" and (a.msg.height, a.msg.width) == (b.msg.height, b.msg.width)
            np.testing.assert_array_equal(a.msg.data, b.msg.data)
        else:
            np.testing.assert_array_equal(a.msg.k, b.msg.k)


@pytest.fixture(scope="module")
def small_bag(tmp_path_factory):
    """30 frames of 64x48: below rosbags' 1 MiB chunk size, so the whole bag is one (uncompressed) chunk."""
    return write_bag(tmp_path_factory.mktemp("bags") / "small", 30, 48, 64)


@pytest.fixture(scope="module")
def big_bag(tmp_path_factory):
    """60 frames of 160x120 (3.5 MB): several complete 1 MiB chunks."""
    return write_bag(tmp_path_factory.mktemp("bags") / "big", 60, 120, 160)


@pytest.mark.parametrize("bag_name", ["small_bag", "big_bag"])
@pytest.mark.parametrize("fraction", [0.6, 0.95])
@pytest.mark.parametrize("as_file", [False, True])
def test_truncated_bag_yields_prefix_then_error(request, tmp_path, caplog, bag_name, fraction, as_file):
    bag = request.getfixturevalue(bag_name)
    full = list(read_messages(bag))
    cut = truncated_copy(bag, tmp_path / "cut", fraction)
    target = cut / "cut.mcap" if as_file else cut
    with caplog.at_level("WARNING", logger="sgdepth_ros.bag.reader"):
        got, error = read_until_error(target)
    assert_prefix(got, full)
    assert str(cut / "cut.mcap") in str(error) and f"truncated or damaged after {len(got)} messages" in str(error)
    assert isinstance(error, ValueError)
    assert any("truncated" in r.getMessage() for r in caplog.records)
    # a frame's image and info: the prefix holds whole messages, roughly the readable fraction
    assert len(got) >= 0.4 * fraction * len(full)


def test_truncated_bag_topic_subset_and_missing_metadata(big_bag, tmp_path):
    full = [m for m in read_messages(big_bag) if m.topic == IMAGE]
    cut = truncated_copy(big_bag, tmp_path / "cut", 0.7)
    got, error = read_until_error(cut, [IMAGE])
    assert_prefix(got, full)
    assert "on the requested topics" in str(error)
    (cut / "metadata.yaml").unlink()
    got2, _ = read_until_error(cut, [IMAGE])
    assert [m.rawdata for m in got2] == [m.rawdata for m in got]


@pytest.mark.parametrize("drop_metadata", [False, True])
def test_truncated_bag_missing_topic_is_value_error(small_bag, tmp_path, drop_metadata):
    cut = truncated_copy(small_bag, tmp_path / "cut", 0.6)
    if drop_metadata:
        (cut / "metadata.yaml").unlink()
    with pytest.raises(ValueError, match=r"has no topic /nope; it has: /camera/camera_info, /camera/image_raw") as info:
        read_messages(cut, [IMAGE, "/nope"])
    assert not isinstance(info.value, BagTruncatedError) and str(cut) in str(info.value)


def test_intact_bag_stays_on_rosbags(small_bag, monkeypatch):
    def no_fallback(*args, **kwargs):
        raise AssertionError("the sequential MCAP fallback was used for an intact bag")

    monkeypatch.setattr(bag_reader, "_read_mcap_stream", no_fallback)
    monkeypatch.setattr(bag_reader, "_mcap_fallback", no_fallback)
    messages = list(read_messages(small_bag))
    assert len(messages) == 60 and messages[-1].timestamp_ns == T0 + 29 * DT


def test_intact_bag_without_metadata_reads_fully_by_stream(small_bag, tmp_path):
    full = list(read_messages(small_bag))
    copy = tmp_path / "copy"
    shutil.copytree(small_bag, copy)
    (copy / "metadata.yaml").unlink()
    got = list(read_messages(copy))  # rosbags needs metadata.yaml; the stream reader reads to the footer
    assert [(m.topic, m.timestamp_ns, m.rawdata) for m in got] == [(m.topic, m.timestamp_ns, m.rawdata) for m in full]


def test_truncated_sqlite_bag_stays_an_error(tmp_path):
    with BagWriter(tmp_path / "db", storage="sqlite3") as bag:
        for i in range(20):
            bag.write_image(IMAGE, T0 + i * DT, "cam", frame(i, 48, 64), "rgb8")
    db3 = tmp_path / "db" / "db.db3"
    with db3.open("r+b") as f:
        f.truncate(db3.stat().st_size // 2)
    with pytest.raises(ValueError) as info:
        list(read_messages(tmp_path / "db"))
    assert not isinstance(info.value, BagTruncatedError) and str(tmp_path / "db") in str(info.value)


def test_zstd_chunked_mcap_from_mcap_writer(tmp_path):
    from mcap.writer import CompressionType, Writer

    store = get_typestore(Stores.ROS2_JAZZY)
    Image, Header, Time = (store.types[n] for n in
                           ("sensor_msgs/msg/Image", "std_msgs/msg/Header", "builtin_interfaces/msg/Time"))
    path = tmp_path / "zstd.mcap"
    raws = []
    with path.open("wb") as f:
        writer = Writer(f, chunk_size=20_000, compression=CompressionType.ZSTD)
        writer.start(profile="ros2", library="test")
        msgdef = "std_msgs/Header header\nuint32 height\nuint32 width\nstring encoding\nuint8 is_bigendian\n" \
                 "uint32 step\nuint8[] data\n================================================================================\n" \
                 "MSG: std_msgs/Header\nbuiltin_interfaces/Time stamp\nstring frame_id\n" \
                 "================================================================================\n" \
                 "MSG: builtin_interfaces/Time\nint32 sec\nuint32 nanosec\n"
        schema = writer.register_schema("sensor_msgs/msg/Image", "ros2msg", msgdef.encode())
        channel = writer.register_channel(IMAGE, "cdr", schema)
        rng = np.random.default_rng(0)
        for i in range(40):
            stamp = T0 + i * DT
            data = rng.integers(0, 256, 48 * 64 * 3, dtype=np.uint8)  # incompressible: many chunks
            msg = Image(header=Header(stamp=Time(sec=stamp // 10**9, nanosec=stamp % 10**9), frame_id="cam"),
                        height=48, width=64, encoding="rgb8", is_bigendian=0, step=64 * 3, data=data)
            raw = bytes(store.serialize_cdr(msg, "sensor_msgs/msg/Image"))
            raws.append((stamp, raw))
            writer.add_message(channel, log_time=stamp, data=raw, publish_time=stamp)
        writer.finish()
    full = list(read_messages(path))  # intact: rosbags reads it
    assert [(m.timestamp_ns, m.rawdata) for m in full] == raws
    with path.open("r+b") as f:
        f.truncate(int(path.stat().st_size * 0.6))
    got, error = read_until_error(path)
    assert_prefix(got, full)
    assert f"after {len(got)} messages" in str(error)
    assert len(got) >= 0.5 * 40


def test_cut_in_summary_section_reads_everything(small_bag, tmp_path, caplog):
    """A file cut after its data section (inside the footer) lost no message: no error, only warnings."""
    full = list(read_messages(small_bag))
    cut = truncated_copy(small_bag, tmp_path / "cut", 1.0)
    mcap = cut / "cut.mcap"
    with mcap.open("r+b") as f:
        f.truncate(mcap.stat().st_size - 10)
    with caplog.at_level("WARNING", logger="sgdepth_ros.bag.reader"):
        got = list(read_messages(cut))
    assert [(m.topic, m.timestamp_ns, m.rawdata) for m in got] == [(m.topic, m.timestamp_ns, m.rawdata) for m in full]
    assert any("summary section" in r.getMessage() for r in caplog.records)


def test_partly_written_zstd_chunk_is_salvaged(tmp_path):
    """One big zstd chunk (600 kB, several 128 kB zstd blocks) cut in the middle: the messages of its decodable
    blocks come out (a cut inside a chunk's only zstd block would leave nothing decodable)."""
    from mcap.writer import CompressionType, Writer

    store = get_typestore(Stores.ROS2_JAZZY)
    path = tmp_path / "one_chunk.mcap"
    with path.open("wb") as f:
        writer = Writer(f, chunk_size=10**8, compression=CompressionType.ZSTD)
        writer.start(profile="ros2", library="test")
        schema = writer.register_schema("std_msgs/msg/String", "ros2msg", b"string data\n")
        channel = writer.register_channel("/chatter", "cdr", schema)
        rng = np.random.default_rng(1)
        for i in range(300):
            text = rng.integers(97, 123, 2000, dtype=np.uint8).tobytes().decode()
            raw = bytes(store.serialize_cdr(store.types["std_msgs/msg/String"](data=text), "std_msgs/msg/String"))
            writer.add_message(channel, log_time=T0 + i * DT, data=raw, publish_time=T0 + i * DT)
        writer.finish()
    full = list(read_messages(path))
    with path.open("r+b") as f:
        f.truncate(int(path.stat().st_size * 0.5))
    got, error = read_until_error(path)
    assert 60 <= len(got) < 300
    assert [(m.timestamp_ns, m.rawdata, m.msg.data) for m in got] == [(m.timestamp_ns, m.rawdata, m.msg.data)
                                                                      for m in full[:len(got)]]
    assert "ends inside the record" in str(error)
