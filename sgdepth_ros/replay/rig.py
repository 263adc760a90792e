"""Several cameras of one bag (``sgdepth-ros replay BAG --cameras front,left``): which cameras it holds, each one's
topics, and all their frames in one stream in bag-time order.

A camera of a bag is a namespace ``/<name>`` directly holding an image topic (one the single-camera rules take for a
camera: :func:`.topics.image_candidates`), whose name the node accepts as a camera name
(:data:`sgdepth_ros.ros.params.CAMERA_NAME`). The multi-camera layout (``sgdepth-ros synth --rig``) is::

    /<cam>/image_raw  (or /<cam>/image_raw/compressed)   /<cam>/camera_info
    /<cam>/ground_truth/depth                            /<cam>/ground_truth/semantic

Each camera's roles are found among the topics inside its namespace by the single-camera rules
(:func:`.topics.resolve_topics`); LiDAR ground truth is single-camera only.
"""
from __future__ import annotations

import heapq
import re
from typing import Iterable, Iterator

from ..ros.params import CAMERA_NAME, MAX_CAMERAS
from .frames import ReplayFrame
from .topics import BagTopic, ReplayTopics, TopicError, describe, image_candidates, resolve_topics

ALL = "all"  # --cameras all: every camera of the bag


def bag_cameras(topics: list[BagTopic]) -> list[str]:
    """The bag's cameras (see the module docstring), sorted by name."""
    names = set()
    for name in image_candidates(topics):
        parts = name.removesuffix("/compressed").strip("/").split("/")
        if len(parts) == 2 and re.match(CAMERA_NAME, parts[0]):
            names.add(parts[0])
    return sorted(names)


def rig_hint(topics: list[BagTopic]) -> str:
    """For the error of a bag whose camera image is ambiguous: how to replay its cameras together ("" when it does
    not hold several cameras)."""
    cameras = bag_cameras(topics)
    if len(cameras) < 2:
        return ""
    return (f"The bag holds the cameras {', '.join(cameras)}: replay them together with --cameras all (or a few, "
            f"e.g. --cameras {','.join(cameras[:2])}).")


def camera_names(text: str, topics: list[BagTopic], bag: str = "bag") -> list[str]:
    """``--cameras`` (comma-separated names, or ``all``) → the camera names, checked against the bag.

    Raises TopicError for a malformed or repeated name, more than the node's maximum, or a camera the bag lacks
    (naming the cameras it has).
    """
    present = bag_cameras(topics)
    if text.strip() == ALL:
        if not present:
            raise TopicError(f"{bag} holds no camera namespace (/<camera>/<image topic>) for --cameras all; "
                             f"it has:\n{describe(topics)}")
        names = present
    else:
        names = [name.strip() for name in text.split(",")]
        for name in names:
            if not re.match(CAMERA_NAME, name):
                raise TopicError(f"--cameras: {name!r} is not a camera name (it must match {CAMERA_NAME}); give "
                                 f"comma-separated names such as front,left, or 'all'")
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise TopicError(f"--cameras names {', '.join(repeated)} more than once")
        missing = [name for name in names if name not in present]
        if missing:
            has = ", ".join(present) if present else "none"
            raise TopicError(f"{bag} has no camera {', '.join(missing)} (no image topic under "
                             f"{', '.join(f'/{m}/' for m in missing)}); its cameras: {has}. The bag has:\n"
                             f"{describe(topics)}")
    if len(names) > MAX_CAMERAS:
        raise TopicError(f"--cameras: {len(names)} cameras, the node serves at most {MAX_CAMERAS}")
    return names


def resolve_rig(topics: list[BagTopic], cameras: str, bag: str = "bag") -> dict[str, ReplayTopics]:
    """``--cameras`` → camera name → its topics, found inside ``/<name>/`` by :func:`.topics.resolve_topics`
    (ground truth included, LiDAR never). Raises TopicError naming the camera whose topics are ambiguous."""
    rig = {}
    for name in camera_names(cameras, topics, bag):
        inside = [t for t in topics if t.name.startswith(f"/{name}/")]
        try:
            rig[name] = resolve_topics(inside, lidar="none", bag=f"{bag} camera {name}")
        except TopicError as error:
            raise TopicError(f"{error}\n(the topics of camera {name} are those under /{name}/)") from None
    return rig


def merged_frames(streams: dict[str | None, Iterable[ReplayFrame]]) -> Iterator[tuple[str | None, ReplayFrame]]:
    """Every camera's frames as ``(camera, frame)`` in one stream ordered by header stamp (the bag's time; frames of
    one stamp in the order of ``streams``). Each camera's stream is read lazily, one frame ahead."""
    def tagged(order: int, camera: str | None, frames: Iterable[ReplayFrame]):
        for frame in frames:
            yield frame.stamp_ns, order, camera, frame

    merged = heapq.merge(*(tagged(i, camera, frames) for i, (camera, frames) in enumerate(streams.items())),
                         key=lambda item: item[:2])
    for _, _, camera, frame in merged:
        yield camera, frame
