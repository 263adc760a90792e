"""Monodepth2-style split files: one ``folder frame side`` per line (e.g. ``splits/eigen_zhou/train_files.txt``)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .errors import DatasetError

SIDES = ("l", "r")


@dataclass(frozen=True)
class SplitEntry:
    """One training/evaluation frame of a KITTI raw drive."""

    folder: str  # "2011_09_26/2011_09_26_drive_0001_sync", relative to the KITTI raw root
    frame: int  # index of the image file (0000000042.png → 42)
    side: str  # "l" (image_02, left colour camera) or "r" (image_03, right)

    def __post_init__(self) -> None:
        if self.side not in SIDES:
            raise ValueError(f"side must be 'l' or 'r', got {self.side!r}")
        if not self.folder or any(c.isspace() for c in self.folder):
            raise ValueError(f"folder must be non-empty without whitespace, got {self.folder!r}")

    @property
    def date(self) -> str:
        """The calibration date folder, the first path component of ``folder`` ("2011_09_26")."""
        return self.folder.replace("\\", "/").split("/")[0]


def read_split_file(path: str | os.PathLike[str]) -> list[SplitEntry]:
    """Read a split file. Blank lines and lines starting with ``#`` are ignored.

    Raises: DatasetError ``"<file>:<line>: ..."`` for a line that is not exactly ``folder <int frame> <l|r>``;
    DatasetError naming the file when it does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: split file does not exist")
    entries: list[SplitEntry] = []
    with open(path, encoding="utf-8") as handle:
        for lineno, raw in enumerate(handle, start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) != 3:
                raise DatasetError(f"{path}:{lineno}: expected 'folder frame side', got {line[:80]!r}")
            folder, frame, side = parts
            try:
                index = int(frame)
            except ValueError:
                raise DatasetError(f"{path}:{lineno}: frame {frame!r} is not an integer") from None
            if index < 0:
                raise DatasetError(f"{path}:{lineno}: frame {index} is negative")
            if side not in SIDES:
                raise DatasetError(f"{path}:{lineno}: side {side!r} is not 'l' or 'r'")
            entries.append(SplitEntry(folder, index, side))
    return entries


def write_split_file(path: str | os.PathLike[str], entries: Iterable[SplitEntry]) -> None:
    """Write entries as ``folder frame side`` lines (parent folders are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for entry in entries:
            handle.write(f"{entry.folder} {entry.frame} {entry.side}\n")
