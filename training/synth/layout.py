"""Names, folders and split assignment of the synthetic dataset (pure functions, no rendering).

``<out>/kitti/<date>/<date>_drive_<NNNN>_sync/…`` (KITTI raw), ``<out>/kitti/splits/synthetic/*_files.txt``
(monodepth2 format), ``<out>/cityscapes/{leftImg8bit,gtFine}/{train,val}/<city>/…``, ``<out>/bags/<drive>/``
(rosbag2) and ``<out>/synth.json`` (what was made, with which settings). With a camera rig (``--rig``):
``<out>/rig/<cam>/`` instead of ``<out>/kitti`` (the same KITTI raw layout, one root per camera) and
``<out>/rig/rig.yaml`` (the rig).
"""
from __future__ import annotations

import datetime as dt

SPLIT_NAME = "synthetic"
#: Traffic of a world (``synth --world``): ``default`` the everyday town; ``dynamic`` the town of the masking ablation
#: (issue 17), where objects moving with the camera are common (world._make_dynamic_actors); ``queue`` the town with
#: still cars queued in the ego lane ahead instead of a lead car (world._make_queue_actors): cars seen from behind
#: whose photometric loss is right.
WORLDS = ("default", "dynamic", "queue")
VAL_FRACTION, TEST_FRACTION = 0.1, 0.2
NEIGHBOUR_GAP = 2  # training samples keep this many frames away from val/test frames (they use frames ±1)


def drive_date(seed: int) -> str:
    """KITTI-style date folder of a seed's town, unique for seeds below 23,520 (YYYY_MM_DD)."""
    day, month, year = seed % 28 + 1, seed // 28 % 12 + 1, 2030 + seed // 336
    return f"{year:04d}_{month:02d}_{day:02d}"


def drive_name(seed: int, drive: int) -> str:
    """``<date>_drive_<NNNN>_sync`` with drives numbered from 1."""
    return f"{drive_date(seed)}_drive_{drive + 1:04d}_sync"


def drive_folder(seed: int, drive: int) -> str:
    """The split-file folder field: ``<date>/<date>_drive_<NNNN>_sync``."""
    return f"{drive_date(seed)}/{drive_name(seed, drive)}"


def city_name(seed: int) -> str:
    return f"synthtown{seed}"


def start_stamp_ns(seed: int, drive: int) -> int:
    """Nanoseconds since the epoch of a drive's first frame: noon on the town's date, one hour per drive."""
    date = dt.datetime.strptime(drive_date(seed), "%Y_%m_%d").replace(hour=12, tzinfo=dt.timezone.utc)
    return int(date.timestamp()) * 10**9 + drive * 3600 * 10**9


def frame_split(drives: int, frames: int, drive: int, frame: int, test_drives: int = 1) -> str | None:
    """Which split frame ``frame`` of ``drive`` belongs to as a training target: train, val, test or None.

    With ``test_drives`` + 2 or more drives the last ``test_drives`` drives are the test split and the one before
    them validation (no frame of a test drive is ever seen in training). With fewer (only possible for
    ``test_drives`` = 1), each drive is cut in time: the last 20 % of its frames test, the 10 % before validation,
    the rest training, and training targets within NEIGHBOUR_GAP frames of a validation or test frame are dropped so
    no training sample reads a held-out frame. First and last frames of a drive are never targets (they lack a
    neighbour).
    """
    if frame < 1 or frame > frames - 2:
        return None
    if drives >= test_drives + 2:
        return "test" if drive >= drives - test_drives else "val" if drive == drives - test_drives - 1 else "train"
    if test_drives != 1:
        raise ValueError(f"{test_drives} test drives need at least {test_drives + 2} drives, got {drives}")
    usable = frames - 2
    test_start = 1 + int(round(usable * (1 - TEST_FRACTION)))
    val_start = 1 + int(round(usable * (1 - TEST_FRACTION - VAL_FRACTION)))
    if frame >= test_start:
        return "test"
    if frame >= val_start:
        return "val"
    return "train" if frame < val_start - NEIGHBOUR_GAP else None
