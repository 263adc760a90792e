"""read_messages: iterate a rosbag2 bag's messages in time order, raw and deserialised (no rclpy).

Storage is detected by ``rosbags``: a bag directory (metadata.yaml + .mcap or .db3 files) or a
single ``.mcap`` / ``.db3`` file. Types come from the Jazzy typestore; a type it lacks is
registered from the message definition stored in the bag. Type names are reported as ROS 2 names:
a ROS 1-style alias (``sensor_msgs/Image``) of a Jazzy type with the same definition becomes
``sensor_msgs/msg/Image`` (:mod:`.msgtypes`).

Truncated MCAP (a recording cut by a crash or a full disk): rosbags needs the MCAP footer and
summary and cannot open such a file. Then the file is read sequentially with the ``mcap``
library's :class:`~mcap.stream_reader.StreamReader` (records in file order = time order for
rosbag2-written files): every complete message before the cut is yielded — also those of a
partly written chunk — and then :class:`BagTruncatedError` is raised. SQLite3 bags have no such
fallback (a damaged .db3 stays a ValueError at open). An MCAP file that rosbags refuses because
its profile is not ``ros2`` (written by another tool; CDR messages with ros2msg/ros2idl schemas)
is read the same sequential way.
"""
from __future__ import annotations

import importlib.util
import logging
import struct
from collections.abc import Iterable, Iterator
from contextlib import closing
from io import BytesIO
from pathlib import Path
from typing import Any, NamedTuple

from rosbags.interfaces import MessageDefinition, MessageDefinitionFormat
from rosbags.rosbag2 import Reader, ReaderError
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from .msgtypes import canonical_msgtype

logger = logging.getLogger(__name__)


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


class BagTruncatedError(ValueError):
    """An MCAP bag file ends early or is damaged part-way; the messages before were yielded."""


def read_messages(path: str | Path, topics: Iterable[str] | None = None, *,
                  deserialize: bool = True) -> Iterator[BagMessage]:
    """Messages of ``topics`` (all when None) from the bag at ``path``, ordered by timestamp.

    The bag is checked when this is called, not on the first ``next()``: a missing path
    raises FileNotFoundError, a path that is not a readable bag ValueError, a requested topic
    the bag lacks ValueError listing the bag's topics — each naming ``path``.

    An MCAP bag that rosbags cannot open (truncated: no footer/summary) is read sequentially
    instead (a warning is logged): the complete messages before the damage are yielded, then
    :class:`BagTruncatedError` (a ValueError) names the file and the number of messages read.
    """
    path = Path(path)
    wanted = None if topics is None else ([topics] if isinstance(topics, str) else list(topics))
    try:
        with closing(open_reader(path)) as reader:
            available = sorted({c.topic for c in reader.connections})
    except ValueError as error:
        fallback = _mcap_fallback(path)
        if fallback is None:
            raise
        files, listed_topics = fallback
        if importlib.util.find_spec("mcap") is None:  # requirements.txt, not an install_requires of the package
            raise ValueError(f"{error} (install the 'mcap' package to read what a truncated MCAP bag "
                             "holds)") from error
        cause = error.__cause__ or error
        if "profile" in str(cause).lower():  # an MCAP from another tool (profile "" …): not damaged
            logger.info("bag %r is an MCAP file without the ros2 profile (%s); reading its records with the mcap "
                        "library", str(path), cause)
        else:
            logger.warning("bag %r cannot be opened by rosbags (%s): it is probably truncated; reading its MCAP "
                           "records sequentially", str(path), cause)
        _check_stream_topics(path, files, wanted, listed_topics)
        return _read_mcap_stream(files, wanted, deserialize)
    _check_topics(path, wanted, available)
    return _iterate(path, wanted, deserialize)


def _check_topics(path: Path, wanted: list[str] | None, available: list[str], note: str = "") -> None:
    missing = sorted(set(wanted or ()) - set(available))
    if missing:
        raise ValueError(f"bag {str(path)!r} has no topic {', '.join(missing)}; "
                         f"it has: {', '.join(available) or 'none'}{note}")


def _iterate(path: Path, wanted: list[str] | None, deserialize: bool) -> Iterator[BagMessage]:
    with closing(open_reader(path)) as reader:
        connections = [c for c in reader.connections if wanted is None or c.topic in wanted]
        typestore = _typestore_for(connections) if deserialize else None
        if not connections:
            return
        msgtypes = {c.id: connection_msgtype(c) for c in connections}
        for connection, timestamp, rawdata in reader.messages(connections=connections):
            msgtype = msgtypes[connection.id]
            msg = typestore.deserialize_cdr(rawdata, msgtype) if typestore else None
            yield BagMessage(connection.topic, msgtype, timestamp, bytes(rawdata), msg)


def connection_msgtype(connection) -> str:
    """A rosbags Connection's type as a ROS 2 name (see :func:`.msgtypes.canonical_msgtype`)."""
    return canonical_msgtype(connection.msgtype, connection.msgdef)


def open_reader(path: Path) -> Reader:
    """An opened rosbags Reader, with rosbags' errors re-raised naming ``path``."""
    if not path.exists():
        raise FileNotFoundError(f"bag {str(path)!r} does not exist")
    try:
        reader = Reader(path)
        reader.open()
    except (ReaderError, FileNotFoundError, OSError, KeyError, ValueError, OverflowError, struct.error,
            EOFError) as error:  # damaged MCAP can make rosbags fail with OverflowError / struct.error
        raise ValueError(f"{str(path)!r} is not a readable rosbag2 bag: {error}") from error
    _warn_unmerged_wal(path)
    return reader


_WARNED_WAL: set[Path] = set()


def _warn_unmerged_wal(path: Path) -> None:
    """Log once per file: rosbags opens SQLite3 bags read-only and immutable, so messages still in a
    ``.db3-wal`` journal (a recording with the ``resilient`` preset that did not close) are not read."""
    files = sorted(path.glob("*.db3")) if path.is_dir() else [path]
    for db in files:
        wal = db.with_name(db.name + "-wal")
        if wal.is_file() and wal.stat().st_size > 0 and wal not in _WARNED_WAL:
            _WARNED_WAL.add(wal)
            logger.warning("%s holds a SQLite write-ahead journal (%d bytes) that is not merged into %s: its "
                           "messages are not read. Open the .db3 once with sqlite3 (as a copy) to merge it.",
                           wal, wal.stat().st_size, db.name)


def _typestore_for(connections):
    """The Jazzy typestore plus any type the bag defines that Jazzy lacks (from ``.msg`` definitions)."""
    typestore = get_typestore(Stores.ROS2_JAZZY)
    _register_missing(typestore, connections)
    return typestore


def _register_missing(typestore, connections) -> None:
    extra = {}
    for connection in connections:
        if connection_msgtype(connection) not in typestore.types \
                and connection.msgdef.format == MessageDefinitionFormat.MSG:
            extra.update(get_types_from_msg(connection.msgdef.data, connection.msgtype))
    if extra:
        typestore.register(extra)


# -- sequential MCAP fallback (truncated files) ----------------------------------------------------

_CHUNK, _SCHEMA, _CHANNEL, _MESSAGE = 0x06, 0x03, 0x04, 0x05


class _FileEnds(EOFError):
    """The file ends inside a record."""


class _StreamCut(Exception):
    """The readable part of an MCAP file ends here (``cause``: why)."""

    def __init__(self, cause: BaseException):
        super().__init__(str(cause))
        self.cause = cause


class _Channel(NamedTuple):
    """A Channel record met in the stream, shaped like a rosbags Connection for :func:`_register_missing`."""

    id: int
    topic: str
    msgtype: str
    msgdef: MessageDefinition
    encoding: str


class _StrictFile:
    """A binary file whose ``read(n)`` returns n bytes or raises :class:`_FileEnds` (the mcap library's stream
    accepts short reads, which would turn the last record of a cut file into a silently shortened one)."""

    def __init__(self, file):
        self._file = file
        self.pos = 0

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        if size is not None and 0 <= size != len(data):
            raise _FileEnds(f"the file ends at byte {self.pos + len(data)} inside a record")
        self.pos += len(data)
        return data


def _mcap_fallback(path: Path) -> tuple[list[Path], list[str] | None] | None:
    """(the MCAP files of the bag in order, the topics metadata.yaml lists or None) when the bag's storage is MCAP,
    else None."""
    if path.is_file():
        return ([path], None) if path.suffix == ".mcap" else None
    if not path.is_dir():
        return None
    info = _metadata(path / "metadata.yaml")
    if info is not None:
        files = [str(name) for name in info.get("relative_file_paths") or []]
        if info.get("storage_identifier") != "mcap" and not any(name.endswith(".mcap") for name in files):
            return None
        topics = info.get("topics_with_message_count")
        listed = None
        if isinstance(topics, list):
            try:
                listed = sorted({str(entry["topic_metadata"]["name"]) for entry in topics})
            except (KeyError, TypeError):
                listed = None
        if files:
            paths = [path / name for name in files]
            return (paths, listed) if all(p.is_file() for p in paths) else None
    mcaps = sorted(path.glob("*.mcap"))
    return (mcaps, None) if len(mcaps) == 1 else None


def _metadata(yaml_path: Path) -> dict | None:
    if not yaml_path.is_file():
        return None
    from ruamel.yaml import YAML  # rosbags' own YAML library

    try:
        info = YAML(typ="safe").load(yaml_path.read_text())["rosbag2_bagfile_information"]
    except Exception:  # unreadable metadata: fall back to looking for the .mcap file
        return None
    return info if isinstance(info, dict) else None


def _check_stream_topics(path: Path, files: list[Path], wanted: list[str] | None, listed: list[str] | None) -> None:
    """The requested-topics check of :func:`read_messages` for a bag read sequentially: against metadata.yaml's
    topics, else against the channels of a first pass over the readable part (stops once all are found)."""
    if not wanted:
        return
    if listed is not None:
        _check_topics(path, wanted, listed)
        return
    found: set[str] = set()
    note = ""
    try:
        for file in files:
            for record in _mcap_records(file):
                if isinstance(record, _Channel):
                    found.add(record.topic)
                    if found.issuperset(wanted):
                        return
    except _StreamCut as cut:
        note = f" (only the readable part of the truncated file was searched: {cut})"
    _check_topics(path, wanted, sorted(found), note)


def _read_mcap_stream(files: list[Path], wanted: list[str] | None, deserialize: bool) -> Iterator[BagMessage]:
    typestore = get_typestore(Stores.ROS2_JAZZY) if deserialize else None
    for file in files:
        channels: dict[int, _Channel] = {}
        read = kept = 0
        try:
            for record in _mcap_records(file):
                if isinstance(record, _Channel):
                    channels[record.id] = record
                    if typestore is not None and (wanted is None or record.topic in wanted):
                        _register_missing(typestore, [record])
                    continue
                read += 1
                channel = channels.get(record.channel_id)
                if channel is None:
                    raise _StreamCut(ValueError(f"message on unknown channel {record.channel_id}"))
                if wanted is not None and channel.topic not in wanted:
                    continue
                msg = None
                if typestore is not None:
                    if channel.encoding != "cdr":
                        raise ValueError(f"topic {channel.topic} in {str(file)!r} has message encoding "
                                         f"{channel.encoding!r}, not cdr")
                    msg = typestore.deserialize_cdr(record.data, channel.msgtype)
                kept += 1
                yield BagMessage(channel.topic, channel.msgtype, record.log_time, bytes(record.data), msg)
        except _StreamCut as cut:
            on_topics = "" if wanted is None else f" ({kept} of them on the requested topics)"
            raise BagTruncatedError(f"bag file {str(file)!r} is truncated or damaged after {read} messages"
                                    f"{on_topics}: {type(cut.cause).__name__}: {cut.cause}") from cut.cause


def _mcap_records(file: Path) -> Iterator:
    """The records of an MCAP file in file order, chunks opened: a ``_Channel`` for each Channel record and the
    mcap ``Message`` records (Schema records are folded into the channels). Ends
    with :class:`_StreamCut` when the file ends before its footer (an end inside the summary section, after every
    message, is only logged) or a record is damaged; the complete messages of a partly written chunk are yielded
    before."""
    from mcap.exceptions import McapError, RecordLengthLimitExceeded
    from mcap.records import Channel, Chunk, DataEnd, Message, Schema
    from mcap.stream_reader import StreamReader, breakup_chunk
    from zstandard import ZstdError

    schemas: dict[int, Schema] = {}

    def emit(record):
        if isinstance(record, Schema):
            schemas[record.id] = record
        elif isinstance(record, Channel):
            yield _channel(record, schemas.get(record.schema_id))
        elif isinstance(record, Message):
            yield record

    size = file.stat().st_size
    data_ended = False
    with file.open("rb") as handle:
        strict = _StrictFile(handle)
        # no record is longer than the file: a cut record fails before its bytes are read (no huge allocation)
        reader = StreamReader(strict, emit_chunks=True, validate_crcs=True, record_size_limit=max(size, 1))
        record_end = 0
        try:
            for record in reader.records:
                record_end = strict.pos
                if isinstance(record, Chunk):
                    for inner in breakup_chunk(record, validate_crc=True):
                        yield from emit(inner)
                else:
                    data_ended = data_ended or isinstance(record, DataEnd)
                    yield from emit(record)
        except (_FileEnds, RecordLengthLimitExceeded) as error:  # the last record runs past the end of the file
            if data_ended:
                logger.warning("MCAP file %r ends inside its summary section; all its messages were read", str(file))
                return
            if record_end:
                handle.seek(record_end)
                for inner in _salvage_chunk(handle.read()):
                    yield from emit(inner)
            cut = _FileEnds(f"the file ({size} bytes) ends inside the record at byte {record_end}")
            raise _StreamCut(cut) from error
        except (McapError, ZstdError, ValueError, struct.error, EOFError, OverflowError, RuntimeError,
                MemoryError) as error:  # damaged records; a chunk failing to decompress (lz4: RuntimeError) or CRC
            raise _StreamCut(error) from error


def _channel(record, schema) -> _Channel:
    if schema is None:
        msgtype, msgdef = "", MessageDefinition(MessageDefinitionFormat.NONE, "")
    else:
        fmt = {"ros2msg": MessageDefinitionFormat.MSG, "ros2idl": MessageDefinitionFormat.IDL}.get(
            schema.encoding, MessageDefinitionFormat.NONE)
        msgdef = MessageDefinition(fmt, schema.data.decode("utf-8", "replace"))
        msgtype = canonical_msgtype(schema.name, msgdef)
    return _Channel(record.id, record.topic, msgtype, msgdef, record.message_encoding)


def _salvage_chunk(tail: bytes) -> list:
    """The complete Schema / Channel / Message records of a Chunk record cut by the end of the file (``tail``: the
    bytes from the chunk's opcode to the end of the file); [] when ``tail`` is no such chunk or cannot be read."""
    from mcap.data_stream import ReadDataStream
    from mcap.records import Channel, Message, Schema

    try:
        if len(tail) < 9 + 32 or tail[0] != _CHUNK:
            return []
        _start, _end, uncompressed_size, _crc, name_length = struct.unpack_from("<QQQII", tail, 9)
        offset = 9 + 32
        compression = tail[offset:offset + name_length].decode("utf-8")
        offset += name_length + 8
        data = tail[offset:]
        if compression == "":
            raw = data
        elif compression == "zstd":
            import zstandard
            raw = zstandard.ZstdDecompressor().decompressobj().decompress(data)
        elif compression == "lz4":
            import lz4.frame
            raw = lz4.frame.LZ4FrameDecompressor().decompress(data)
        else:
            return []
    except Exception:  # a damaged chunk header or compressed stream: nothing to salvage
        return []
    raw = raw[:uncompressed_size]
    records, pos = [], 0
    try:
        while pos + 9 <= len(raw):
            opcode, length = struct.unpack_from("<BQ", raw, pos)
            if pos + 9 + length > len(raw):
                break
            stream = ReadDataStream(BytesIO(raw[pos + 9:pos + 9 + length]))
            if opcode == _SCHEMA:
                records.append(Schema.read(stream))
            elif opcode == _CHANNEL:
                records.append(Channel.read(stream))
            elif opcode == _MESSAGE:
                records.append(Message.read(stream, length))
            pos += 9 + length
    except Exception:  # a damaged inner record: keep the ones before
        pass
    return records
