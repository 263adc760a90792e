"""Pairing images with CameraInfo by header stamp (ROS-free; message_filters has no wheel).

Camera drivers publish both with the same stamp; the cache keeps the last few CameraInfo
messages keyed by stamp (nanoseconds) and answers the one nearest to an image's stamp within
a tolerance (0 = exact match). Thread-safe: the callback adds, the worker looks up and may
wait briefly for a CameraInfo that is still in flight.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any


def stamp_ns(header) -> int:
    """A std_msgs/Header's stamp (rclpy or rosbags object) as integer nanoseconds: the key for pairing, ordering
    and latency."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


class StampCache:
    def __init__(self, capacity: int = 32):
        self._items: OrderedDict[int, Any] = OrderedDict()
        self._capacity = capacity
        self._cond = threading.Condition()

    def add(self, stamp_ns: int, item: Any) -> None:
        with self._cond:
            self._items[stamp_ns] = item
            self._items.move_to_end(stamp_ns)
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)
            self._cond.notify_all()

    def find(self, stamp_ns: int, tolerance_ns: int = 0) -> Any:
        """The item whose stamp is nearest to ``stamp_ns`` with |Δ| ≤ tolerance, else None."""
        with self._cond:
            return self._find(stamp_ns, tolerance_ns)

    def wait_for(self, stamp_ns: int, tolerance_ns: int, timeout: float) -> Any:
        """Like :meth:`find`, waiting up to ``timeout`` seconds for a match to arrive."""
        with self._cond:
            found = [None]

            def matched() -> bool:
                found[0] = self._find(stamp_ns, tolerance_ns)
                return found[0] is not None

            self._cond.wait_for(matched, timeout)
            return found[0]

    def latest(self) -> Any:
        with self._cond:
            return next(reversed(self._items.values())) if self._items else None

    def clear(self) -> None:
        with self._cond:
            self._items.clear()

    def _find(self, stamp_ns: int, tolerance_ns: int) -> Any:
        best, best_gap = None, None
        for key, item in self._items.items():
            gap = abs(key - stamp_ns)
            if gap <= tolerance_ns and (best_gap is None or gap < best_gap):
                best, best_gap = item, gap
        return best
