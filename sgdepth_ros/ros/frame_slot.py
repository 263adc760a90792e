"""Newest-frame-only hand-off between the subscription callback and the inference worker (ROS-free).

A slot of capacity one: ``put`` replaces a frame the worker has not taken yet (that frame is
dropped and returned so the caller can count it), ``take`` blocks until a frame is there. The
worker therefore always runs on the newest frame, and a frame is never older than one
inference period plus transport when its processing starts.
"""
from __future__ import annotations

import threading
from typing import Any


class LatestSlot:
    def __init__(self):
        self._cond = threading.Condition()
        self._item: Any = None
        self._closed = False

    def put(self, item: Any) -> Any:
        """Store ``item``; return the unprocessed item it replaced (dropped), or None."""
        with self._cond:
            dropped, self._item = self._item, item
            self._cond.notify()
            return dropped

    def take(self, timeout: float | None = None) -> Any:
        """The newest item (removing it), or None after ``timeout`` seconds or once closed."""
        with self._cond:
            self._cond.wait_for(lambda: self._item is not None or self._closed, timeout)
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        """Wake a waiting ``take`` for good (worker shutdown)."""
        with self._cond:
            self._closed = True
            self._item = None
            self._cond.notify_all()

    def reopen(self) -> None:
        with self._cond:
            self._closed = False
