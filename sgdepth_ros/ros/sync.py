"""Pairing images with CameraInfo by header stamp (ROS-free; message_filters has no wheel).

One rule, used by the node and by replay's frame reader (:class:`CameraInfoPairing`):

1. the CameraInfo whose stamp is nearest to the image's within a tolerance (0 = exact); it must have the
   image's size (else ``camera_info_size``: a stamp match is never overridden by the fallback);
2. when no stamp matches and ``fallback_latest`` is on (the node's ``camera_info_fallback_latest``, default true),
   the latest CameraInfo received that has the image's size: latched or static publishers (one message,
   a constant or zero stamp, transient-local durability) never match an image's stamp;
3. otherwise none (``camera_info_unmatched``).

Camera drivers that stamp CameraInfo like their images pair by rule 1. Waiting for a CameraInfo still in
flight is worth it only while stamps do pair (:meth:`CameraInfoPairing.expects`), so a latched CameraInfo
never makes a frame wait. Thread-safe: the subscription callback adds, the worker pairs.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any


def stamp_ns(header) -> int:
    """A std_msgs/Header's stamp (rclpy or rosbags object) as integer nanoseconds: the key for pairing, ordering
    and latency."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


class StampCache:
    """The last ``capacity`` items keyed by stamp (ns); answers the one nearest to a stamp within a tolerance."""

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


@dataclass(frozen=True)
class Pairing:
    """The outcome of :meth:`CameraInfoPairing.pair`.

    item: what was added for the CameraInfo (None when unpaired); how: ``"stamp"`` (rule 1), ``"latest"``
    (rule 2), ``"rejected"`` (the CameraInfo with the image's stamp was malformed: counted on arrival, not again),
    or the error kind ``"camera_info_size"`` / ``"camera_info_unmatched"``; reason: a sentence for the log.
    """

    item: Any
    how: str
    reason: str = ""


_REJECTED = object()  # stands for a CameraInfo stamp whose message was rejected on arrival


class CameraInfoPairing:
    """CameraInfo messages received so far, paired with images by the rule of the module docstring.

    ``add(stamp_ns, width, height, item)`` stores a validated CameraInfo (``item`` is whatever the caller
    needs back, e.g. (message, geometry)); ``add_rejected(stamp_ns)`` marks a stamp whose CameraInfo was
    malformed (its image then goes without one, and without a second count); ``pair(stamp_ns, width, height,
    …)`` answers for an image. A CameraInfo whose stamp matches the image's decides alone (a wrong size is
    an error, never hidden by the fallback); the fallback serves only images that no stamp matches.
    """

    def __init__(self, capacity: int = 32):
        self._by_stamp = StampCache(capacity)
        self._latest_by_size: dict[tuple[int, int], Any] = {}
        self._lock = threading.Lock()
        self._received = False
        self._synchronised = False  # the last image found a CameraInfo with its stamp

    def add(self, stamp_ns: int, width: int, height: int, item: Any) -> None:
        with self._lock:
            self._latest_by_size[(int(width), int(height))] = item
            self._received = True
        self._by_stamp.add(stamp_ns, (int(width), int(height), item))

    def add_rejected(self, stamp_ns: int) -> None:
        with self._lock:
            self._received = True
        self._by_stamp.add(stamp_ns, _REJECTED)

    def has_stamp(self, stamp_ns: int, tolerance_ns: int = 0) -> bool:
        return self._by_stamp.find(stamp_ns, tolerance_ns) is not None

    def expects(self) -> bool:
        """Whether a CameraInfo with an image's stamp may still be on its way: nothing received yet, or the last
        image found one with its stamp. False for a latched / constant-stamp CameraInfo: nobody waits for it."""
        with self._lock:
            return self._synchronised or not self._received

    def pair(self, stamp_ns: int, width: int, height: int, tolerance_ns: int = 0, fallback_latest: bool = True,
             wait_s: float = 0.0) -> Pairing:
        """The CameraInfo for an image of ``width`` x ``height`` stamped ``stamp_ns``.

        ``wait_s`` > 0: wait up to that long for a stamp match, but only while :meth:`expects` says one may come.
        """
        if wait_s > 0 and self.expects():
            entry = self._by_stamp.wait_for(stamp_ns, tolerance_ns, wait_s)
        else:
            entry = self._by_stamp.find(stamp_ns, tolerance_ns)
        with self._lock:
            self._synchronised = entry is not None
            latest = self._latest_by_size.get((width, height)) if fallback_latest and entry is None else None
        if entry is _REJECTED:
            return Pairing(None, "rejected", f"the camera_info with stamp {stamp_ns} ns was malformed")
        if entry is not None:
            if entry[:2] == (width, height):
                return Pairing(entry[2], "stamp")
            return Pairing(None, "camera_info_size", f"camera_info is {entry[0]}x{entry[1]} but the image is "
                                                     f"{width}x{height}")
        if latest is not None:
            return Pairing(latest, "latest")
        why = ("camera_info_fallback_latest is off" if not fallback_latest
               else f"none of {width}x{height} received")
        return Pairing(None, "camera_info_unmatched",
                       f"no camera_info with stamp {stamp_ns} ns (±{tolerance_ns} ns) and no fallback ({why})")

    def clear(self) -> None:
        with self._lock:
            self._latest_by_size.clear()
            self._received = self._synchronised = False
        self._by_stamp.clear()
