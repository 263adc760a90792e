"""The camera's height above the road from a bag's static transforms (``/tf_static``), without tf2 (rosbags only).

A vehicle's TF tree names a frame on the ground under the vehicle: ``base_footprint`` (REP 120: the robot's position
projected onto the ground) or ``base_link`` (many vehicle stacks put it on the ground below the rear axle, as the
synthetic world's bags do). The camera's height above the road is the z of the camera frame's origin expressed in
that ground frame, whatever chain of transforms lies between them (base_link → camera_link → camera_optical_frame,
or a camera mounted under another link, or a ground frame that is the child of base_link).

Only ``/tf_static`` is read: the camera mounting is static, and ``/tf`` moves with the vehicle. When several static
messages give a child frame, the last one in the bag wins (tf2's static buffer keeps the newest too).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..bag.reader import read_messages
from ..bag.transforms import check_translation, quaternion_to_rotation

TF_STATIC_TOPIC = "/tf_static"
GROUND_FRAMES = ("base_footprint", "base_link")
MAX_TF_DEPTH = 64  # frames between a frame and its root; a deeper chain is a loop or a broken tree


@dataclass(frozen=True)
class CameraHeight:
    """height_m: z of the camera frame's origin in the ground frame (metres, > 0 for a camera above the road);
    ground_frame / camera_frame: the frames used; chain: the frames from the ground frame to the camera frame."""

    height_m: float
    ground_frame: str
    camera_frame: str
    chain: tuple[str, ...]

    def describe(self) -> str:
        return f"bag {TF_STATIC_TOPIC}: {' → '.join(self.chain)} (z of {self.camera_frame} in {self.ground_frame})"


def _frame(name: str) -> str:
    """A frame id without tf1's leading slash."""
    return str(name).lstrip("/")


def static_transforms(bag: str | Path) -> dict[str, tuple[str, np.ndarray]]:
    """Every static transform of the bag: child frame → (parent frame, 4×4 pose of the child in the parent, metres).

    Raises ValueError naming the bag when it has no ``/tf_static`` topic or a transform is malformed
    (non-finite translation, non-unit quaternion).
    """
    tree: dict[str, tuple[str, np.ndarray]] = {}
    for message in read_messages(bag, [TF_STATIC_TOPIC]):
        for stamped in message.msg.transforms:
            parent, child = _frame(stamped.header.frame_id), _frame(stamped.child_frame_id)
            t, q = stamped.transform.translation, stamped.transform.rotation
            try:
                pose = np.eye(4)
                pose[:3, :3] = quaternion_to_rotation((q.x, q.y, q.z, q.w))
                pose[:3, 3] = check_translation((t.x, t.y, t.z))
            except ValueError as error:
                raise ValueError(f"{bag}: {TF_STATIC_TOPIC} transform {parent} → {child} is malformed: "
                                 f"{error}") from None
            if parent and child and parent != child:
                tree[child] = (parent, pose)
    return tree


def _to_root(tree: dict[str, tuple[str, np.ndarray]], frame: str) -> tuple[list[str], np.ndarray]:
    """(frames from ``frame`` up to its root, pose of ``frame`` in the root)."""
    path, pose = [frame], np.eye(4)
    while path[-1] in tree:
        parent, child_in_parent = tree[path[-1]]
        if parent in path or len(path) > MAX_TF_DEPTH:
            raise ValueError(f"{TF_STATIC_TOPIC} has a loop through {parent!r}")
        pose = child_in_parent @ pose
        path.append(parent)
    return path, pose


def camera_height_from_transforms(tree: dict[str, tuple[str, np.ndarray]], camera_frame: str,
                                  ground_frames: tuple[str, ...] = GROUND_FRAMES) -> CameraHeight:
    """The camera's height over the first of ``ground_frames`` connected to ``camera_frame`` in ``tree``
    (:func:`static_transforms`). Raises LookupError when none is connected (the message lists the frames found)."""
    camera_frame = _frame(camera_frame)
    camera_path, camera_in_root = _to_root(tree, camera_frame)
    for ground in map(_frame, ground_frames):
        ground_path, ground_in_root = _to_root(tree, ground)
        if ground_path[-1] != camera_path[-1]:
            continue  # another tree (or a frame the bag does not have)
        camera_in_ground = np.linalg.inv(ground_in_root) @ camera_in_root
        common = next(f for f in ground_path if f in camera_path)  # the lowest shared ancestor
        up = ground_path[:ground_path.index(common) + 1]
        down = camera_path[:camera_path.index(common)][::-1]
        return CameraHeight(float(camera_in_ground[2, 3]), ground, camera_frame, tuple(up + down))
    frames = sorted(set(tree) | {parent for parent, _ in tree.values()})
    raise LookupError(f"{TF_STATIC_TOPIC} connects none of the ground frames {', '.join(ground_frames)} to the "
                      f"camera frame {camera_frame!r} (frames: {', '.join(frames) or 'none'})")


def camera_height_from_bag(bag: str | Path, camera_frame: str,
                           ground_frames: tuple[str, ...] = GROUND_FRAMES) -> CameraHeight:
    """The camera's height above the road from the bag's ``/tf_static`` (see the module docstring).

    camera_frame: the image's header frame_id. ground_frames: candidates, the first connected one is used.
    Raises ValueError (with what to do instead) when the bag has no usable ``/tf_static``, the frames are not
    connected, or the camera is not above the ground frame (height ≤ 0).
    """
    hint = "give the camera's height with --camera-height"
    try:
        tree = static_transforms(bag)
    except ValueError as error:
        raise ValueError(f"no camera height from the bag's TF ({error}); {hint}") from None
    try:
        height = camera_height_from_transforms(tree, camera_frame, ground_frames)
    except (LookupError, ValueError) as error:
        raise ValueError(f"{bag}: no camera height from TF: {error}; {hint}, or name the ground frame with "
                         f"--ground-frame") from None
    if not height.height_m > 0:
        raise ValueError(f"{bag}: the camera frame {camera_frame!r} is {height.height_m:.3f} m above "
                         f"{height.ground_frame!r} in {TF_STATIC_TOPIC}: not a camera above the road; {hint}")
    return height
