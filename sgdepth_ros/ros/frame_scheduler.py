"""Newest frame per camera, the camera waiting longest first: the hand-off between the subscription callbacks and the
inference worker (ROS-free, thread-safe).

Each camera has a slot of capacity one. :meth:`FrameScheduler.put` stores a camera's frame and returns the frame it
replaced, if the worker had not taken it yet (dropped: the caller counts it for that camera), so the worker always
runs a camera's newest frame. :meth:`FrameScheduler.take` blocks until a frame waits and returns up to ``limit``
(camera, frame) pairs, cameras in the order they started waiting. A camera keeps its place in that order when its
waiting frame is replaced by a newer one, so under overload the cameras are served in turn: once a camera has a frame
waiting, at most (cameras − 1) frames of other cameras are taken before it — fairness by construction, not by timing.
With one camera this is a newest-frame-only slot.
"""
from __future__ import annotations

import threading
from typing import Any, Hashable


class FrameScheduler:
    def __init__(self):
        self._cond = threading.Condition()
        self._waiting: dict[Hashable, Any] = {}  # camera → its waiting frame; dict order = waiting order
        self._closed = False

    def put(self, camera: Hashable, frame: Any) -> Any:
        """Store ``frame`` as ``camera``'s newest; return the frame it replaced (not taken yet: dropped), or None."""
        with self._cond:
            dropped = self._waiting.get(camera)
            self._waiting[camera] = frame  # an existing key keeps its position: the camera keeps its place
            self._cond.notify()
            return dropped

    def take(self, limit: int = 1, timeout: float | None = None) -> list[tuple[Hashable, Any]]:
        """Up to ``limit`` (camera, frame) pairs, longest-waiting camera first, removed from their slots; [] after
        ``timeout`` seconds without a frame, or once closed."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        with self._cond:
            self._cond.wait_for(lambda: self._waiting or self._closed, timeout)
            if self._closed:
                return []
            cameras = list(self._waiting)[:limit]
            return [(camera, self._waiting.pop(camera)) for camera in cameras]

    def waiting(self) -> int:
        """The number of cameras with a frame waiting."""
        with self._cond:
            return len(self._waiting)

    def close(self) -> None:
        """Drop what waits and wake a waiting ``take`` for good (worker shutdown)."""
        with self._cond:
            self._closed = True
            self._waiting.clear()
            self._cond.notify_all()

    def reopen(self) -> None:
        with self._cond:
            self._closed = False
