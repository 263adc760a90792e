"""The ROS 2 name of a bag connection's message type (no rclpy).

rosbag2 names types ``package/msg/Name``; some tools write the ROS 1-style ``package/Name`` (``sensor_msgs/Image``)
for the same ROS 2 type. :func:`canonical_msgtype` maps such an alias to ``package/msg/Name`` when the Jazzy
typestore knows that type and the definition stored in the bag (``.msg`` or ``.idl`` text; none stored is accepted,
as rosbag2 itself goes by the name) declares the same fields, constants and nested types. A definition that differs
(a ROS 1 ``Header`` with ``seq``, another package's own type) keeps its alias name, so it is never decoded with the
wrong layout.
"""
from __future__ import annotations

import re
from functools import lru_cache

from rosbags.interfaces import MessageDefinition, MessageDefinitionFormat
from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore

_ROS1_STYLE = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)/([A-Za-z][A-Za-z0-9_]*)$")


@lru_cache(maxsize=1)
def _jazzy():
    return get_typestore(Stores.ROS2_JAZZY)


def ros2_name(msgtype: str) -> str | None:
    """``package/Name`` → ``package/msg/Name``; None for any other form."""
    match = _ROS1_STYLE.match(msgtype)
    return f"{match.group(1)}/msg/{match.group(2)}" if match else None


def canonical_msgtype(msgtype: str, msgdef: MessageDefinition | None = None) -> str:
    """``msgtype`` as the typestore names it: a ROS 1-style alias of a known ROS 2 type with the same definition
    (or none stored) → ``package/msg/Name``; anything else unchanged."""
    typestore = _jazzy()
    if msgtype in typestore.fielddefs:
        return msgtype
    name = ros2_name(msgtype)
    if name is None or name not in typestore.fielddefs:
        return msgtype
    fmt = msgdef.format if msgdef is not None else MessageDefinitionFormat.NONE
    data = msgdef.data if msgdef is not None else ""
    return name if _same_definition(name, fmt, data) else msgtype


@lru_cache(maxsize=64)
def _same_definition(name: str, fmt: MessageDefinitionFormat, data: str) -> bool:
    """Whether the stored definition ``data`` of ``name`` equals the typestore's (no definition: True)."""
    if fmt == MessageDefinitionFormat.NONE or not data.strip():
        return True
    try:
        parsed = get_types_from_msg(data, name) if fmt == MessageDefinitionFormat.MSG else get_types_from_idl(data)
    except Exception:  # an unparsable definition is not "the same"
        return False
    known = _jazzy().fielddefs
    return name in parsed and all(known.get(typename) == fields for typename, fields in parsed.items())


def is_alias_of(msgtype: str, wanted: tuple[str, ...]) -> bool:
    """Whether ``msgtype`` is the ROS 1-style spelling of one of ``wanted`` (for error messages)."""
    return ros2_name(msgtype) in wanted
