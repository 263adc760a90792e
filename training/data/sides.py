"""Camera-side selection for KITTI training splits (spec §4.2: SGDepth trains on the left and right camera sequences
as two independent monocular datasets joined with ``ConcatDataset``).

Ordering of ``"both"``: all left-camera entries in list order, then all right-camera entries in the same order, i.e.
the index layout of the reference's ``ConcatDataset([left, right])``. With a shuffling DataLoader the order does not
matter for training; it only fixes which index (hence which augmentation seed) a sample gets.
"""
from __future__ import annotations

from typing import Iterable

from .splits import SplitEntry

__all__ = ["SIDE_MODES", "both_sides", "select_sides"]

SIDE_MODES = ("listed", "both", "left", "right")


def _frames(entries: Iterable[SplitEntry]) -> list[tuple[str, int]]:
    """Unique (folder, frame) pairs in order of first appearance, whatever side the entries name."""
    seen: dict[tuple[str, int], None] = {}
    for entry in entries:
        if not isinstance(entry, SplitEntry):
            raise TypeError(f"entries must be SplitEntry objects, got {type(entry).__name__}")
        seen.setdefault((entry.folder, entry.frame), None)
    return list(seen)


def _on_side(frames: list[tuple[str, int]], side: str) -> list[SplitEntry]:
    return [SplitEntry(folder, frame, side) for folder, frame in frames]


def both_sides(entries: Iterable[SplitEntry]) -> list[SplitEntry]:
    """Every listed (folder, frame) on both cameras: all 'l' entries, then all 'r' entries, each deduplicated by
    (folder, frame) and kept in order of first appearance (a frame listed as 'l' and as 'r' yields one pair)."""
    frames = _frames(entries)
    return _on_side(frames, "l") + _on_side(frames, "r")


def select_sides(entries: Iterable[SplitEntry], mode: str = "listed") -> list[SplitEntry]:
    """Choose the camera sides of a training split.

    - ``"listed"``: the entries exactly as given (order, sides and duplicates kept);
    - ``"both"``: :func:`both_sides`;
    - ``"left"`` / ``"right"``: every listed (folder, frame) on that camera only, deduplicated, in order of first
      appearance (the left / right half of ``"both"``), whatever side the split named.

    Raises: ValueError for an unknown mode; TypeError for an entry that is not a :class:`SplitEntry`.
    """
    if mode not in SIDE_MODES:
        raise ValueError(f"mode must be one of {', '.join(repr(m) for m in SIDE_MODES)}, got {mode!r}")
    if mode == "listed":
        listed = list(entries)
        for entry in listed:
            if not isinstance(entry, SplitEntry):
                raise TypeError(f"entries must be SplitEntry objects, got {type(entry).__name__}")
        return listed
    if mode == "both":
        return both_sides(entries)
    return _on_side(_frames(entries), "l" if mode == "left" else "r")
