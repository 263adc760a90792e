"""read_messages: iterate a rosbag2 bag's messages in time order, raw and deserialised (no rclpy).

Storage is detected by ``rosbags``: a bag directory (metadata.yaml + .mcap or .db3 files) or a
single ``.mcap`` / ``.db3`` file. Types come from the Jazzy typestore; a type it lacks is
registered from the message definition stored in the bag.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any, NamedTuple

from rosbags.interfaces import MessageDefinitionFormat
from rosbags.rosbag2 import Reader, ReaderError
from rosbags.typesys import Stores, get_types_from_msg, get_typestore


class BagMessage(NamedTuple):
    """One recorded message.

    topic: topic name; msgtype: e.g. ``sensor_msgs/msg/Image``; timestamp_ns: the bag's
    receive time (int ns since the epoch); rawdata: CDR bytes (for
    ``rclpy.serialization.deserialize_message``); msg: the rosbags-deserialised object
    (numpy arrays for ``uint8[]``/``float64[]`` fields), or None when ``deserialize=False``.
    """

    topic: str
    msgtype: str
    timestamp_ns: int
    rawdata: bytes
    msg: Any


def read_messages(path: str | Path, topics: Iterable[str] | None = None, *,
                  deserialize: bool = True) -> Iterator[BagMessage]:
    """Messages of ``topics`` (all when None) from the bag at ``path``, ordered by timestamp.

    The bag is checked when this is called, not on the first ``next()``: a missing path
    raises FileNotFoundError, a path that is not a readable bag ValueError, a requested topic
    the bag lacks ValueError listing the bag's topics — each naming ``path``.
    """
    path = Path(path)
    wanted = None if topics is None else ([topics] if isinstance(topics, str) else list(topics))
    with closing(_open(path)) as reader:
        available = sorted({c.topic for c in reader.connections})
    missing = sorted(set(wanted or ()) - set(available))
    if missing:
        raise ValueError(f"bag {str(path)!r} has no topic {', '.join(missing)}; "
                         f"it has: {', '.join(available) or 'none'}")
    return _iterate(path, wanted, deserialize)


def _iterate(path: Path, wanted: list[str] | None, deserialize: bool) -> Iterator[BagMessage]:
    with closing(_open(path)) as reader:
        connections = [c for c in reader.connections if wanted is None or c.topic in wanted]
        typestore = _typestore_for(connections) if deserialize else None
        if not connections:
            return
        for connection, timestamp, rawdata in reader.messages(connections=connections):
            msg = typestore.deserialize_cdr(rawdata, connection.msgtype) if typestore else None
            yield BagMessage(connection.topic, connection.msgtype, timestamp, bytes(rawdata), msg)


def _open(path: Path) -> Reader:
    """An opened rosbags Reader, with rosbags' errors re-raised naming ``path``."""
    if not path.exists():
        raise FileNotFoundError(f"bag {str(path)!r} does not exist")
    try:
        reader = Reader(path)
        reader.open()
    except (ReaderError, FileNotFoundError, OSError, KeyError, ValueError) as error:
        raise ValueError(f"{str(path)!r} is not a readable rosbag2 bag: {error}") from error
    return reader


def _typestore_for(connections):
    """The Jazzy typestore plus any type the bag defines that Jazzy lacks (from ``.msg`` definitions)."""
    typestore = get_typestore(Stores.ROS2_JAZZY)
    extra = {}
    for connection in connections:
        if connection.msgtype not in typestore.types and connection.msgdef.format == MessageDefinitionFormat.MSG:
            extra.update(get_types_from_msg(connection.msgdef.data, connection.msgtype))
    if extra:
        typestore.register(extra)
    return typestore
