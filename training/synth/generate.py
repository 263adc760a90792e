"""Make a synthetic dataset: render drives (in worker processes) and write the requested formats.

Frames are independent given the town, so ``workers`` processes each build the world and render whole frames
(Embree single-threaded there) while this process writes files: throughput scales with cores. Output is identical
for any number of workers: every random choice is seeded by (seed, drive[, frame]).

With a camera rig (``rig``, rig.py) a task is one frame of every camera: the worker renders them in rig order from
one shared scene, and the drive is written to ``<out>/rig/<cam>/`` (a KITTI raw root per camera) and to one bag
with per-camera topics. Cityscapes images are rendered from the front mount with the Cityscapes camera, as without
a rig.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from ..data.splits import SplitEntry, write_split_file
from . import layout
from .camera import Camera, cityscapes_camera, kitti_camera
from .rig import RigCamera, parse_rig, rig_yaml

FORMATS = ("kitti", "cityscapes", "bag")


@dataclass
class SynthConfig:
    """Everything ``sgdepth-ros synth`` takes; ``validate`` names the valid range of a bad value."""

    out: Path
    drives: int = 1
    frames: int = 50
    seed: int = 0
    formats: tuple[str, ...] = FORMATS
    width: int = 1242
    height: int = 375
    cityscapes_width: int = 1024
    cityscapes_height: int = 512
    cityscapes_every: int = 5
    bag_storage: str = "mcap"
    bag_image: str = "rgb8"
    exposure_jitter: float = 0.0
    noise_sigma: float = 0.0
    workers: int = field(default_factory=lambda: min(2, os.cpu_count() or 1))
    overwrite: bool = False
    rig: str | None = None  # --rig: comma list of built-in cameras or a rig .yaml file; None = one camera
    world: str = "default"  # --world: the traffic (layout.WORLDS); "dynamic" = the masking ablation's
    test_drives: int = 1    # --test-drives: how many of the last drives are the test split (≥ 3 drives: 1)

    def validate(self) -> None:
        checks = [
            (1 <= self.drives <= 999, f"--drives must be in [1, 999], got {self.drives}"),
            (3 <= self.frames <= 100000, f"--frames must be in [3, 100000] (frames need neighbours), got {self.frames}"),
            (0 <= self.seed < 23520, f"--seed must be in [0, 23519], got {self.seed}"),
            (bool(self.formats) and set(self.formats) <= set(FORMATS),
             f"--formats must be a comma list of {', '.join(FORMATS)}, got {','.join(self.formats)}"),
            (32 <= self.width <= 4096 and 32 <= self.height <= 4096,
             f"--width/--height must be in [32, 4096], got {self.width}x{self.height}"),
            (32 <= self.cityscapes_width <= 4096 and 32 <= self.cityscapes_height <= 4096,
             f"--cityscapes-size must be in [32, 4096] each, got {self.cityscapes_width}x{self.cityscapes_height}"),
            (self.cityscapes_every >= 1, f"--cityscapes-every must be ≥ 1, got {self.cityscapes_every}"),
            (self.bag_storage in ("mcap", "sqlite3"), f"--bag-storage must be mcap or sqlite3, got {self.bag_storage}"),
            (self.bag_image in ("rgb8", "bgr8", "jpeg"), f"--bag-image must be rgb8, bgr8 or jpeg, got {self.bag_image}"),
            (0 <= self.exposure_jitter < 1, f"--exposure-jitter must be in [0, 1), got {self.exposure_jitter}"),
            (0 <= self.noise_sigma <= 0.5, f"--noise must be in [0, 0.5], got {self.noise_sigma}"),
            (1 <= self.workers <= 64, f"--workers must be in [1, 64], got {self.workers}"),
            (self.world in layout.WORLDS, f"--world must be one of {', '.join(layout.WORLDS)}, got {self.world}"),
            (1 <= self.test_drives <= 998, f"--test-drives must be in [1, 998], got {self.test_drives}"),
            (self.test_drives == 1 or self.drives >= self.test_drives + 2,
             f"--test-drives {self.test_drives} needs --drives ≥ {self.test_drives + 2} (train, val and test "
             f"drives), got {self.drives}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        self.rig_cameras()

    def rig_cameras(self) -> tuple[RigCamera, ...] | None:
        """The rig's cameras (built-in ones sized from width×height), or None without a rig; ValueError if bad."""
        return None if self.rig is None else parse_rig(self.rig, self.width, self.height)

    def kitti_camera(self) -> Camera:
        return kitti_camera(self.width, self.height)

    def cityscapes_camera(self) -> Camera:
        return cityscapes_camera(self.cityscapes_width, self.cityscapes_height)


# --- rendering, in this process or in workers ------------------------------------------------------------------

_cache: dict = {}


def render_task(task: tuple) -> object:
    """Render one frame: task = (seed, drive, frames, camera, index, exposure_jitter, noise_sigma[, world]) →
    render.Frame (``world``: one of layout.WORLDS, default "default").

    The world of the last (seed, drive, frames, world) and a renderer per camera are kept, so each is built once.
    """
    from .render import Renderer

    seed, drive, frames, camera, index, jitter, noise = task[:7]
    world = _world(seed, drive, frames, *task[7:])
    renderers = _cache["renderers"]
    if camera not in renderers:
        renderers[camera] = Renderer(world, camera, threads=_threads())
    rng = np.random.default_rng([seed, drive, index, 1])
    exposure = 1.0 + rng.uniform(-jitter, jitter) if jitter > 0 else 1.0
    return renderers[camera].render(index, exposure, noise, rng)


def render_rig_task(task: tuple) -> list:
    """Render one frame of every rig camera: task = (seed, drive, frames, rig, index, exposure_jitter, noise_sigma
    [, world]), rig a tuple of rig.RigCamera → [render.Frame] in rig order.

    The cameras share one SceneGeometry of the world plus ``world.scenery_behind`` (for cameras looking back).
    Exposure and noise: the first camera draws from the stream of ``render_task`` (so a one-camera rig renders what
    ``render_task`` does), camera k ≥ 1 from its own stream (seed, drive, index, 1, k).
    """
    from .render import Renderer, SceneGeometry
    from .world import scenery_behind

    seed, drive, frames, rig, index, jitter, noise = task[:7]
    world = _world(seed, drive, frames, *task[7:])
    if _cache.get("rig_geometry") is None:
        _cache["rig_geometry"] = SceneGeometry(world, extra=scenery_behind(world))
    renderers = _cache["renderers"]
    out = []
    for k, cam in enumerate(rig):
        key = ("rig", cam)
        if key not in renderers:
            renderers[key] = Renderer(world, cam.camera, threads=_threads(), mount=cam.mount(),
                                      geometry=_cache["rig_geometry"])
        rng = np.random.default_rng([seed, drive, index, 1] if k == 0 else [seed, drive, index, 1, k])
        exposure = 1.0 + rng.uniform(-jitter, jitter) if jitter > 0 else 1.0
        out.append(renderers[key].render(index, exposure, noise, rng))
    return out


def _world(seed: int, drive: int, frames: int, world: str = "default"):
    """The world of (seed, drive, frames, world), kept with its renderers until another is asked for."""
    from .world import make_world

    if _cache.get("world_key") != (seed, drive, frames, world):
        for renderer in _cache.get("renderers", {}).values():
            renderer.close()
        _cache.update(world_key=(seed, drive, frames, world), world=make_world(seed, frames, drive, world),
                      renderers={}, rig_geometry=None)
    return _cache["world"]


def _threads() -> int:
    return int(os.environ.get("SGDEPTH_SYNTH_THREADS", "2"))


def _worker_init() -> None:
    os.environ["SGDEPTH_SYNTH_THREADS"] = "1"  # frame-parallel: one Embree thread per worker
    import cv2
    cv2.setNumThreads(1)


class FrameSource:
    """Renders task lists in order, in this process (workers ≤ 1) or in a pool of spawned worker processes.

    Use as a context manager; ``frames(tasks)`` yields render.Frame in task order with at most 2·workers frames
    in flight, so memory stays bounded however long the drive; ``frames(tasks, render_rig_task)`` yields lists of
    them (one per rig camera).
    """

    def __init__(self, workers: int):
        self.workers = workers
        self.pool = None

    # one thread per worker for the BLAS/OpenMP pools too: small matrix products on many threads only contend
    SINGLE_THREAD_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

    def __enter__(self) -> "FrameSource":
        if self.workers > 1:
            self._saved_env = {k: os.environ.get(k) for k in self.SINGLE_THREAD_ENV}
            os.environ.update(self.SINGLE_THREAD_ENV)  # inherited by the spawned workers
            self.pool = ProcessPoolExecutor(self.workers, mp_context=get_context("spawn"), initializer=_worker_init)
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
            for k, v in self._saved_env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def frames(self, tasks: list[tuple], fn=render_task):
        if self.pool is None:
            for task in tasks:
                yield fn(task)
            return
        pending: deque = deque()
        for task in tasks:
            pending.append(self.pool.submit(fn, task))
            if len(pending) >= 2 * self.workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


# --- the whole job ---------------------------------------------------------------------------------------------

def prepare_output(config: SynthConfig) -> None:
    """Make ``out`` ready: refuse a non-empty folder we did not write; clear our own with ``overwrite``."""
    out = Path(config.out)
    manifest = out / "synth.json"
    if out.exists() and any(out.iterdir()):
        if not manifest.exists():
            raise FileExistsError(f"{out} is not empty and holds no synth.json: refusing to write into it")
        if not config.overwrite:
            raise FileExistsError(f"{out} holds a synthetic dataset already; pass --overwrite to replace it")
        for name in ("kitti", "cityscapes", "bags", "rig"):
            shutil.rmtree(out / name, ignore_errors=True)
        manifest.unlink()
    out.mkdir(parents=True, exist_ok=True)


def generate(config: SynthConfig, progress: bool = True) -> dict:
    """Render ``config.drives`` drives and write the requested formats; returns the manifest (also synth.json)."""
    from tqdm import tqdm

    config.validate()
    rig = config.rig_cameras()
    prepare_output(config)
    out = Path(config.out)
    if rig is not None:  # the rig, as a rig file that --rig reads back
        (out / "rig").mkdir()
        (out / "rig" / "rig.yaml").write_text(rig_yaml(rig))
    kitti_cam, city_cam = config.kitti_camera(), config.cityscapes_camera()
    splits: dict[str, list[SplitEntry]] = {"train": [], "val": [], "test": []}
    counts = {"kitti_frames": 0, "cityscapes_train": 0, "cityscapes_val": 0, "bag_messages": 0}
    started = time.perf_counter()
    total = config.drives * config.frames
    bar = tqdm(total=total, unit="frame", desc="synth", disable=not progress)
    with FrameSource(config.workers) as source:
        for drive in range(config.drives):
            _one_drive(config, drive, source, out, kitti_cam, city_cam, splits, counts, bar, rig)
    bar.close()
    if "kitti" in config.formats:
        roots = [out / "kitti"] if rig is None else [out / "rig" / cam.name for cam in rig]
        for root in roots:
            for split, entries in splits.items():
                write_split_file(root / "splits" / layout.SPLIT_NAME / f"{split}_files.txt", entries)
    manifest = {
        "generator": "sgdepth_ros synth", "version": 1,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()
                   if (k, v) not in _UNRECORDED_DEFAULTS},
        "kitti_camera": asdict(kitti_cam), "cityscapes_camera": asdict(city_cam),
        "drives": [layout.drive_folder(config.seed, d) for d in range(config.drives)],
        "splits": {k: len(v) for k, v in splits.items()}, "counts": counts,
        "seconds": round(time.perf_counter() - started, 2),
    }
    if rig is not None:
        manifest["rig"] = _rig_manifest(config, rig)
    (out / "synth.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


# settings whose default value synth.json leaves out (it predates them: a default dataset's manifest stays as it was)
_UNRECORDED_DEFAULTS = {("rig", None), ("world", "default"), ("test_drives", 1)}


def _rig_manifest(config: SynthConfig, rig: tuple[RigCamera, ...]) -> list[dict]:
    """Per rig camera: intrinsics, mount (rig.RigCamera.describe) and where its data went."""
    from .export_bag import rig_stream

    cameras = []
    for cam in rig:
        entry = cam.describe()
        if "kitti" in config.formats:
            entry["kitti_root"] = f"rig/{cam.name}"
        if "bag" in config.formats:
            s = rig_stream(cam)
            image = s.image_topic + "/compressed" if config.bag_image == "jpeg" else s.image_topic
            entry["topics"] = {"image": image, "camera_info": s.info_topic, "depth": s.depth_topic,
                               "semantic": s.semantic_topic}
        cameras.append(entry)
    return cameras


def _one_drive(config: SynthConfig, drive: int, source: FrameSource, out: Path, kitti_cam: Camera, city_cam: Camera,
               splits: dict, counts: dict, bar, rig: tuple[RigCamera, ...] | None = None) -> None:
    """Render and write one drive in every requested format; extend ``splits`` and ``counts``."""
    from .export_cityscapes import write_cityscapes_frame

    needs_kitti_frames = "kitti" in config.formats or "bag" in config.formats
    if rig is not None:
        _one_rig_drive(config, drive, source, out, rig, counts, bar)
    else:
        _one_camera_drive(config, drive, source, out, kitti_cam, counts, bar)
    for i in range(config.frames):
        split = layout.frame_split(config.drives, config.frames, drive, i, config.test_drives)
        if split is not None:
            splits[split].append(SplitEntry(layout.drive_folder(config.seed, drive), i, "l"))
    if "cityscapes" in config.formats:
        chosen = [(i, layout.frame_split(config.drives, config.frames, drive, i, config.test_drives))
                  for i in range(config.frames) if i % config.cityscapes_every == 0]
        chosen = [(i, "train" if s == "train" else "val") for i, s in chosen if s is not None]
        tasks = [(config.seed, drive, config.frames, city_cam, i, config.exposure_jitter, config.noise_sigma,
                  config.world) for i, _ in chosen]
        for (i, split), frame in zip(chosen, source.frames(tasks)):
            write_cityscapes_frame(out / "cityscapes", split, layout.city_name(config.seed), drive, frame)
            counts[f"cityscapes_{split}"] += 1
    if not needs_kitti_frames:
        bar.update(config.frames)


def _bag_writer(config: SynthConfig, out: Path, name: str, camera: Camera, rig: tuple[RigCamera, ...] | None = None):
    """The drive's rosbag2 writer, or None without the bag format (rosbags is then not even imported)."""
    if "bag" not in config.formats:
        return None
    from .export_bag import BagDriveWriter

    return BagDriveWriter(out / "bags" / name.removesuffix("_sync"), camera, config.bag_storage, config.bag_image,
                          rig=rig)


def _one_camera_drive(config: SynthConfig, drive: int, source: FrameSource, out: Path, kitti_cam: Camera,
                      counts: dict, bar) -> None:
    """The KITTI and bag formats of one drive of the single (front) camera."""
    from .export_kitti import KittiDriveWriter
    from .world import make_world

    name = layout.drive_name(config.seed, drive)
    t0 = layout.start_stamp_ns(config.seed, drive)
    kitti = (KittiDriveWriter(out / "kitti", layout.drive_date(config.seed), name, kitti_cam)
             if "kitti" in config.formats else None)
    bag = _bag_writer(config, out, name, kitti_cam)
    needs_kitti_frames = kitti is not None or bag is not None
    tasks = [(config.seed, drive, config.frames, kitti_cam, i, config.exposure_jitter, config.noise_sigma,
              config.world) for i in range(config.frames)] if needs_kitti_frames else []
    try:
        for frame in source.frames(tasks):
            stamp = t0 + frame.index * 100_000_000
            if kitti is not None:
                kitti.add(frame, stamp)
            if bag is not None:
                bag.add(frame, stamp)
            bar.update(1)
    finally:
        if bag is not None:  # a readable bag even when rendering failed part-way
            bag.close()
    if kitti is not None:
        kitti.close(make_world(config.seed, config.frames, drive, config.world).actors)
        counts["kitti_frames"] += config.frames
    if bag is not None:
        counts["bag_messages"] += sum(bag.writer.message_counts.values())


def _one_rig_drive(config: SynthConfig, drive: int, source: FrameSource, out: Path, rig: tuple[RigCamera, ...],
                   counts: dict, bar) -> None:
    """The KITTI trees (``<out>/rig/<cam>/``) and the bag of one drive of every rig camera."""
    from .export_kitti import KittiDriveWriter
    from .world import make_world

    name = layout.drive_name(config.seed, drive)
    t0 = layout.start_stamp_ns(config.seed, drive)
    kitti = ([KittiDriveWriter(out / "rig" / cam.name, layout.drive_date(config.seed), name, cam.camera)
              for cam in rig] if "kitti" in config.formats else None)
    bag = _bag_writer(config, out, name, rig[0].camera, rig)
    tasks = [(config.seed, drive, config.frames, rig, i, config.exposure_jitter, config.noise_sigma, config.world)
             for i in range(config.frames)] if kitti is not None or bag is not None else []
    try:
        for frames in source.frames(tasks, render_rig_task):
            stamp = t0 + frames[0].index * 100_000_000
            if kitti is not None:
                for writer, frame in zip(kitti, frames):
                    writer.add(frame, stamp)
            if bag is not None:
                bag.add_frames(frames, stamp)
            bar.update(1)
    finally:
        if bag is not None:  # a readable bag even when rendering failed part-way
            bag.close()
    if kitti is not None:
        actors = make_world(config.seed, config.frames, drive, config.world).actors
        for writer in kitti:
            writer.close(actors)
        counts["kitti_frames"] += config.frames * len(rig)
    if bag is not None:
        counts["bag_messages"] += sum(bag.writer.message_counts.values())
