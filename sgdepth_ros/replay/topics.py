"""Which topics of a bag are the camera, its CameraInfo and the ground truth (by name, or found by type).

Auto-detection, when a role is not named:

* image: the one ``sensor_msgs/Image`` or ``CompressedImage`` topic that is not ground truth or a model output
  (names containing depth, semantic, label, segment, ground_truth, /gt or disparity are skipped); several candidates
  are an error that lists them.
* camera_info: ``<image's namespace>/camera_info``, else the only CameraInfo topic, else none.
* depth_gt / semantic_gt: an Image topic whose name says ground truth (``ground_truth`` or a ``gt`` path part) and
  depth / (semantic|label|segment).
* lidar: the only PointCloud2 topic, looked up only when no dense depth ground truth is found.

A named topic the bag lacks, or of the wrong type, is a :class:`TopicError` listing what the bag holds.
"""
from __future__ import annotations

import re
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path

from ..bag.msgtypes import is_alias_of
from ..bag.reader import BagTruncatedError, connection_msgtype, open_reader, read_messages

IMAGE, COMPRESSED = "sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"
CAMERA_INFO, POINT_CLOUD = "sensor_msgs/msg/CameraInfo", "sensor_msgs/msg/PointCloud2"
ROLE_TYPES = {"image": (IMAGE, COMPRESSED), "camera_info": (CAMERA_INFO,), "depth_gt": (IMAGE,),
              "semantic_gt": (IMAGE,), "lidar": (POINT_CLOUD,)}
_NOT_CAMERA = re.compile(r"depth|semantic|label|segment|ground_truth|(^|/)gt(/|_|$)|disparity|overlay|color/|"
                         r"points", re.IGNORECASE)
_GROUND_TRUTH = re.compile(r"ground_truth|(^|/)gt(/|_|$)", re.IGNORECASE)


class TopicError(ValueError):
    """A topic that cannot be used or found; the message lists the bag's topics."""


@dataclass(frozen=True)
class BagTopic:
    name: str
    msgtype: str
    count: int


@dataclass(frozen=True)
class ReplayTopics:
    """The topics of one replay; None = the bag has no such topic (or it was not asked for)."""

    image: str
    camera_info: str | None = None
    depth_gt: str | None = None
    semantic_gt: str | None = None
    lidar: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def names(self) -> list[str]:
        return [name for name in asdict(self).values() if name]


def list_topics(path: str | Path) -> list[BagTopic]:
    """Every topic of the bag at ``path`` with its type and message count, sorted by name.

    From the bag's index; a truncated MCAP has none, so its readable part is scanned (counts = messages readable).
    """
    counts: dict[str, int] = {}
    types: dict[str, str] = {}
    try:
        with closing(open_reader(Path(path))) as reader:
            for connection in reader.connections:
                counts[connection.topic] = counts.get(connection.topic, 0) + int(connection.msgcount)
                types[connection.topic] = connection_msgtype(connection)
    except ValueError:
        try:  # read_messages falls back to sequential MCAP reading, or raises the same error again
            for message in read_messages(path, deserialize=False):
                counts[message.topic] = counts.get(message.topic, 0) + 1
                types[message.topic] = message.msgtype
        except BagTruncatedError:
            pass  # the topics and counts of what can be read
    return [BagTopic(name, types[name], counts[name]) for name in sorted(types)]


def describe(topics: list[BagTopic]) -> str:
    """The bag's topics as indented lines ``name  type  (count)`` for error messages."""
    if not topics:
        return "  (no topics)"
    width = max(len(t.name) for t in topics)
    return "\n".join(f"  {t.name:<{width}}  {t.msgtype}  ({t.count} messages)" for t in topics)


def image_candidates(topics: list[BagTopic]) -> list[str]:
    """The names of the Image / CompressedImage topics that may be a camera (not ground truth or a model output)."""
    return [t.name for t in topics if t.msgtype in ROLE_TYPES["image"] and not _NOT_CAMERA.search(t.name)]


def resolve_topics(topics: list[BagTopic], *, image: str | None = None, camera_info: str | None = None,
                   depth_gt: str | None = None, semantic_gt: str | None = None, lidar: str | None = None,
                   find_ground_truth: bool = True, bag: str = "bag") -> ReplayTopics:
    """Pick each role's topic: the named one (checked), else auto-detected (see the module docstring).

    ``"none"`` for a ground-truth role switches it off. ``find_ground_truth=False`` only uses named ground truth.
    """
    by_name = {t.name: t for t in topics}

    def named(role: str, name: str) -> str:
        topic = by_name.get(name)
        if topic is None:
            raise TopicError(f"{bag} has no topic {name!r} (given for {role}); it has:\n{describe(topics)}")
        if topic.msgtype not in ROLE_TYPES[role]:
            alias = (" (a ROS 1-style name whose stored definition differs from the ROS 2 type)"
                     if is_alias_of(topic.msgtype, ROLE_TYPES[role]) else "")
            raise TopicError(f"{bag}: topic {name!r} is {topic.msgtype}{alias}, but {role} needs "
                             f"{' or '.join(ROLE_TYPES[role])}; the bag has:\n{describe(topics)}")
        return name

    def of_type(*msgtypes: str) -> list[BagTopic]:
        return [t for t in topics if t.msgtype in msgtypes]

    if image:
        image = named("image", image)
    else:
        candidates = image_candidates(topics)
        if len(candidates) != 1:
            found = "none" if not candidates else ", ".join(candidates)
            raise TopicError(f"{bag}: cannot tell which topic is the camera image (candidates: {found}); "
                             f"name it with --image. The bag has:\n{describe(topics)}")
        image = candidates[0]

    if camera_info:
        camera_info = named("camera_info", camera_info)
    else:
        namespace = image.removesuffix("/compressed").rsplit("/", 1)[0]
        infos = [t.name for t in of_type(CAMERA_INFO)]
        sibling = f"{namespace}/camera_info"
        camera_info = sibling if sibling in infos else (infos[0] if len(infos) == 1 else None)

    def ground_truth(role: str, name: str | None, pattern: str) -> str | None:
        if name == "none":
            return None
        if name:
            return named(role, name)
        if not find_ground_truth:
            return None
        matches = [t.name for t in of_type(IMAGE)
                   if _GROUND_TRUTH.search(t.name) and re.search(pattern, t.name, re.IGNORECASE)]
        if len(matches) > 1:
            raise TopicError(f"{bag}: several {role} candidates ({', '.join(matches)}); name one with "
                             f"--{role.replace('_', '-')}")
        return matches[0] if matches else None

    depth_gt = ground_truth("depth_gt", depth_gt, r"depth")
    semantic_gt = ground_truth("semantic_gt", semantic_gt, r"semantic|label|segment")
    if lidar == "none":
        lidar = None
    elif lidar:
        lidar = named("lidar", lidar)
    elif find_ground_truth and depth_gt is None:
        clouds = [t.name for t in of_type(POINT_CLOUD)]
        lidar = clouds[0] if len(clouds) == 1 else None
    return ReplayTopics(image, camera_info, depth_gt, semantic_gt, lidar)
