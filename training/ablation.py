"""The masking ablation of issue 17: does SGDepth's semantic guidance fix the "holes" on objects moving with the camera?

Five runs on the same synthetic data (``sgdepth-ros synth --preset dynamic``), seed, step budget and resolution:

- ``a`` only depth: the reference's only-depth settings (preset ``synthetic_only_depth``: depth batch 12, gradient
  scales 1.0/0.0, no segmentation, no masking);
- ``b`` full without masking (``synthetic_full``, ``masking=False``);
- ``c`` full with masking (``synthetic_full``), the reference schedule scaled to the run's epochs;
- ``d`` full with masking but without the static-frame detection (``masking_always=True``: in the masking epochs
  every dynamic-class pixel of every frame is masked);
- ``e`` full with masking from a quarter of the epochs on (epoch 5 of 20) instead of 15 of 20: the diagnostic of the
  schedule. In the reference schedule masking starts where the learning rate drops (to a tenth here, to 1e-8 in the
  reference code), so its masked epochs barely move the weights; ``e`` masks while the network still learns (the lr
  step stays at 15/20, and the threshold's linear increase spreads over the longer masking span).

The step budget is the same for every run: ``epochs`` epochs of ``steps / epochs`` steps (``batches_per_epoch``),
whatever the batch; the learning-rate step and the first masking epoch sit at 15/20 of the epochs as in the reference
(20 epochs: epoch 15, so the masked epochs are 16–18 with 75/50/25 % of the images' IoUs as threshold). Runs live in
``<out>/<run>_seed<seed>/`` and are resumed exactly (``train --resume``) when the study is run again; a finished run
is not trained again. Each run is evaluated on the test drives with
:func:`~sgdepth_training.evaluation.runner.evaluate_depth_regions` (all / moving / static pixels with one median scale
per image, holes on moving objects); ``ablation_report`` writes the markdown table and the figure.
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import TrainConfig, from_preset

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Run:
    """One arm of the study: ``key`` (a–e), a short ``label``, the training ``preset`` and its ``settings``."""

    key: str
    label: str
    preset: str
    settings: dict
    segmentation: bool
    masking_start: float | None = None  # first masking epoch as a fraction of the epochs; None: the reference's


# where the reference puts its lr step and first masking epoch: epoch 15 of 20
REFERENCE_SCHEDULE_FRACTION = 15 / 20
# run e's first masking epoch: 5 of 20
EARLY_MASKING_FRACTION = 5 / 20
RUNS: dict[str, Run] = {
    "a": Run("a", "only depth", "synthetic_only_depth", {}, False),
    "b": Run("b", "full, no masking", "synthetic_full", {"masking": False}, True),
    "c": Run("c", "full, masking", "synthetic_full", {"masking": True}, True),
    "d": Run("d", "full, masking without static-frame detection", "synthetic_full",
             {"masking": True, "masking_always": True}, True),
    "e": Run("e", "full, early masking", "synthetic_full", {"masking": True}, True, EARLY_MASKING_FRACTION),
}
# settings of a run folder that may differ when a run is resumed (where and how fast, not what is computed)
RESUMABLE_DIFFERENCES = ("device", "num_workers", "max_steps", "max_seconds")
EVAL_FILE, FIGURE_FILE, TIME_FILE = "ablation_eval.json", "ablation_figure.npz", "ablation_time.json"


@dataclass
class StudySettings:
    """What the study depends on. ``settings``: extra TrainConfig values per run key, ``"*"`` for every run
    (applied last, e.g. ``{"*": {"depth_batch": 2}}`` for a tiny smoke test)."""

    data: Path
    out: Path
    runs: tuple[str, ...] = tuple(RUNS)
    seeds: tuple[int, ...] = (1,)
    steps: int = 800
    epochs: int = 20
    width: int = 320
    height: int = 96
    device: str = "auto"
    amp: str = "off"
    pretrained: str = "scratch"
    num_workers: int = 1
    seg_resize: tuple[int, int] | None = None  # None: the data's Cityscapes size (if ≥ the crop), else 2 × the crop
    settings: dict[str, dict] = field(default_factory=dict)
    figure_frames: int = 3
    eval_batch: int = 4

    def validate(self) -> None:
        unknown = [r for r in self.runs if r not in RUNS]
        if not self.runs or unknown or len(set(self.runs)) != len(self.runs):
            raise ValueError(f"runs must be distinct keys of {', '.join(RUNS)}, got {','.join(self.runs)}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise ValueError(f"seeds must be distinct integers ≥ 0, got {self.seeds}")
        if not 1 <= self.epochs <= 1000:
            raise ValueError(f"epochs must be in [1, 1000], got {self.epochs}")
        if self.steps < self.epochs:
            raise ValueError(f"steps ({self.steps}) must be at least epochs ({self.epochs}): one step per epoch")
        if not 0 <= self.figure_frames <= 12:
            raise ValueError(f"figure frames must be in [0, 12], got {self.figure_frames}")
        bad = [k for k in self.settings if k != "*" and k not in RUNS]
        if bad:
            raise ValueError(f"per-run settings name unknown runs {bad}; valid: {', '.join(RUNS)} or *")
        synth = Path(self.data) / "synth.json"
        if not synth.is_file():
            raise ValueError(f"{self.data}: not a `sgdepth-ros synth` output (no synth.json); render it with "
                             f"`sgdepth-ros synth --preset dynamic --out {self.data}`")

    @property
    def batches_per_epoch(self) -> int:
        return max(1, round(self.steps / self.epochs))

    @property
    def total_steps(self) -> int:
        return self.batches_per_epoch * self.epochs

    @property
    def schedule_epoch(self) -> int:
        """lr step and first masking epoch: the reference's 15 of 20, scaled (≥ 1, ≤ epochs − 1 when possible)."""
        return self.epoch_at(REFERENCE_SCHEDULE_FRACTION)

    def epoch_at(self, fraction: float) -> int:
        """The epoch at ``fraction`` of the epochs (rounded; ≥ 1, ≤ epochs − 1 when possible)."""
        return max(1, min(round(fraction * self.epochs), self.epochs - 1))

    def masking_epoch(self, key: str) -> int:
        """Run ``key``'s first masking epoch (run e's early one, else the reference's scaled)."""
        start = RUNS[key].masking_start
        return self.schedule_epoch if start is None else self.epoch_at(start)

    def manifest(self) -> dict:
        """The data's synth.json."""
        return json.loads((Path(self.data) / "synth.json").read_text())

    def kitti_root(self) -> Path:
        return Path(self.data) / "kitti"

    def test_split(self) -> Path:
        from .synth import layout
        return self.kitti_root() / "splits" / layout.SPLIT_NAME / "test_files.txt"

    def run_dir(self, key: str, seed: int) -> Path:
        return Path(self.out) / f"{key}_seed{seed}"


def _seg_resize(study: StudySettings) -> tuple[int, int]:
    if study.seg_resize is not None:
        return tuple(study.seg_resize)
    cfg = study.manifest().get("config", {})
    size = (int(cfg.get("cityscapes_width", 0)), int(cfg.get("cityscapes_height", 0)))
    if size[0] >= study.width and size[1] >= study.height:
        return size
    return (2 * study.width, 2 * study.height)


def train_config(study: StudySettings, key: str, seed: int) -> TrainConfig:
    """The TrainConfig of run ``key`` with ``seed`` (validated)."""
    run = RUNS[key]
    cityscapes = Path(study.data) / "cityscapes"
    if run.segmentation and not cityscapes.is_dir():
        raise ValueError(f"{study.data}: run {key} ({run.label}) trains segmentation and needs the Cityscapes export "
                         f"(synth --formats kitti,cityscapes; --preset dynamic makes it)")
    values = dict(kitti_root=str(study.kitti_root()), cityscapes_root=str(cityscapes) if run.segmentation else None,
                  width=study.width, height=study.height, seg_resize=_seg_resize(study), seed=seed,
                  epochs=study.epochs, batches_per_epoch=study.batches_per_epoch, lr_step=study.schedule_epoch,
                  masking_from_epoch=study.masking_epoch(key), pretrained=study.pretrained,
                  num_workers=study.num_workers, device=study.device, amp=study.amp, validate=False,
                  checkpoint_every_steps=25, checkpoint_every_epochs=1000, log_every_steps=10,
                  image_every_steps=max(100, study.total_steps // 4),
                  notes={"ablation": key, "label": run.label})
    settings = {**run.settings, **study.settings.get("*", {}), **study.settings.get(key, {})}
    return from_preset(run.preset, settings=settings, **values)


def _comparable(config: TrainConfig) -> dict:
    return {k: v for k, v in json.loads(config.to_json()).items() if k not in RESUMABLE_DIFFERENCES}


def run_state(run_dir: Path, config: TrainConfig) -> str:
    """``"new"`` (no run yet), ``"empty"`` (started, no checkpoint yet), ``"partial"`` (resumable), ``"finished"``;
    ValueError if the folder holds a run with other settings (only device, num_workers and max_steps may differ)."""
    from . import checkpointing as ckpt

    config_path = run_dir / "config.json"
    if not config_path.is_file():
        if run_dir.exists() and any(run_dir.iterdir()):
            raise ValueError(f"{run_dir}: not empty and holds no config.json; move it away or choose another --out")
        return "new"
    saved = TrainConfig.load(config_path)
    if _comparable(saved) != _comparable(config):
        diff = sorted(k for k, v in _comparable(config).items() if _comparable(saved).get(k) != v)
        raise ValueError(f"{run_dir}: holds a run with other settings ({', '.join(diff)}); move it away, choose "
                         f"another --out, or give the settings it was made with")
    if ckpt.latest_state(run_dir) is None:
        return "empty"
    progress = _progress(run_dir)
    return "finished" if progress["epoch"] >= saved.epochs else "partial"


def _progress(run_dir: Path) -> dict:
    """The progress counters of the run's newest valid checkpoint (remembered per file version: a checkpoint is a
    few hundred MB to read)."""
    from . import checkpointing as ckpt

    newest = ckpt.latest_state(run_dir)
    key = None
    if newest is not None:
        stat = newest.stat()
        key = (str(newest), stat.st_mtime_ns, stat.st_size)
        if key in _PROGRESS_CACHE:
            return dict(_PROGRESS_CACHE[key])
    path, saved, _ = ckpt.find_resumable(run_dir)
    progress = dict(saved["progress"])
    if key is not None and Path(key[0]) == path:
        _PROGRESS_CACHE[key] = progress
    return dict(progress)


_PROGRESS_CACHE: dict[tuple, dict] = {}


def _add_time(run_dir: Path, seconds: float, steps: tuple[int, int], device: str) -> None:
    """Add one training invocation (wall seconds, steps, where it ran) to ``<run>/ablation_time.json``."""
    import os

    import torch

    path = run_dir / TIME_FILE
    doc = json.loads(path.read_text()) if path.is_file() else {"seconds": 0.0, "invocations": []}
    doc["seconds"] = round(doc["seconds"] + seconds, 1)
    doc["invocations"].append({"seconds": round(seconds, 1), "from_step": steps[0], "to_step": steps[1],
                               "device": device, "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()})
    path.write_text(json.dumps(doc, indent=2) + "\n")


def train_run(study: StudySettings, key: str, seed: int, progress_bar: bool | None = None) -> str:
    """Train (or resume, or skip when finished) one run → its state afterwards ("finished")."""
    from sgdepth_ros.backends import resolve_device

    from .loop import train

    config = train_config(study, key, seed)
    run_dir = study.run_dir(key, seed)
    state = run_state(run_dir, config)
    if state == "finished":
        LOG.warning("run %s seed %d: finished already (%s)", key, seed, run_dir)
        return state
    if state == "empty":  # made, but stopped before its first checkpoint: start it again
        shutil.rmtree(run_dir)
        state = "new"
    start = 0 if state == "new" else int(_progress(run_dir)["global_step"])
    LOG.warning("run %s seed %d (%s): %s at step %d of %d in %s", key, seed, RUNS[key].label,
                "starting" if state == "new" else "resuming", start, study.total_steps, run_dir)
    t0 = time.perf_counter()
    done = start
    try:
        if state == "new":
            result = train(config, run_dir, resume=False, progress_bar=progress_bar)
        else:
            saved = TrainConfig.load(run_dir / "config.json")
            # as `train --resume`: where, how fast and how far are this invocation's (RESUMABLE_DIFFERENCES)
            saved.device, saved.num_workers, saved.max_steps = config.device, config.num_workers, config.max_steps
            result = train(saved, run_dir, resume=True, progress_bar=progress_bar)
        done = result.progress.global_step
    finally:
        if (run_dir / "config.json").is_file():
            try:
                done = int(_progress(run_dir)["global_step"])
            except (FileNotFoundError, ValueError):
                pass
            _add_time(run_dir, time.perf_counter() - t0, (start, done), str(resolve_device(config.device)))
    return "finished" if result.finished else "partial"


# -- evaluation ----------------------------------------------------------------------------------------------------

def figure_frames(study: StudySettings) -> list[str]:
    """The test frames the figure shows (``"folder frame side"`` names, the same for every run): greedily the frames
    with the largest share of moving-object pixels, at least 10 frames apart within a drive."""
    from .data.splits import read_split_file
    from .evaluation.depth_gt import moving_actor_mask

    if study.figure_frames == 0:
        return []
    cache: dict = {}
    scored = []
    for e in read_split_file(study.test_split()):
        share = float(moving_actor_mask(study.kitti_root(), e.folder, e.frame, e.side, cache).mean())
        scored.append((-share, e.folder, e.frame, e.side))
    chosen: list[tuple[str, int, str]] = []
    for _, folder, frame, side in sorted(scored):
        if all(f != folder or abs(i - frame) >= 10 for f, i, _ in chosen):
            chosen.append((folder, frame, side))
        if len(chosen) == study.figure_frames:
            break
    return [f"{folder} {frame} {side}" for folder, frame, side in chosen]


def evaluate_run(study: StudySettings, key: str, seed: int, frames: list[str], progress_bar: bool = False) -> dict:
    """Evaluate the run's newest checkpoint on the test drives (cached in ``<run>/ablation_eval.json`` per checkpoint
    step) → the region report plus ``run``, ``seed``, ``global_step``, ``finished``, ``train_seconds``, ``automask``
    (shares) and ``actor_groups`` (errors per kind of actor). Cached documents lacking a newer measurement get it."""
    from sgdepth_ros.backends import resolve_device

    from .evaluation.actors import ActorErrors
    from .evaluation.automask_share import RULE as AUTOMASK_RULE
    from .evaluation.report import json_safe, region_report, write_json
    from .export import load_run

    run_dir = study.run_dir(key, seed)
    progress = _progress(run_dir)
    cached_path = run_dir / EVAL_FILE
    device = resolve_device(study.device)
    if cached_path.is_file() and (run_dir / FIGURE_FILE).is_file():
        cached = json.loads(cached_path.read_text())
        if cached.get("global_step") == progress["global_step"] and cached.get("figure_frames") == frames:
            stale_share = cached.get("automask", {}).get("rule") != AUTOMASK_RULE  # not measured, or an older rule
            if stale_share or "actor_groups" not in cached:
                loaded = load_run(run_dir)
                loaded.model.to(device)
                if stale_share:
                    cached["automask"] = _automask_shares(study, loaded, device)
                if "actor_groups" not in cached:
                    cached["actor_groups"] = _actor_groups(study, loaded, device)
                write_json(cached_path, cached)
            return json_safe(cached)
    loaded = load_run(run_dir)
    c = loaded.config
    loaded.model.to(device)
    kept: dict[str, np.ndarray] = {}
    actors = ActorErrors(c.kitti_root)

    def keep(name, color, depth, gt, moving) -> None:
        if name in frames:
            kept[name] = depth.astype(np.float32)

    result = _test_evaluation(study, loaded, device, progress_bar=progress_bar, on_image=keep, actors=actors)
    doc = region_report(result, extra_settings={"split_file": str(study.test_split()), "width": c.width,
                                                 "height": c.height, "device": str(device)})
    time_doc = run_dir / TIME_FILE
    doc.update(run=key, label=RUNS[key].label, seed=seed, global_step=progress["global_step"],
               epoch=progress["epoch"], finished=progress["epoch"] >= c.epochs, figure_frames=frames,
               train_seconds=json.loads(time_doc.read_text())["seconds"] if time_doc.is_file() else None,
               train_devices=sorted({f"{i['device']} ({i['cpus']} CPUs, {i['torch_threads']} threads)"
                                     for i in json.loads(time_doc.read_text())["invocations"]})
               if time_doc.is_file() else [],
               automask=_automask_shares(study, loaded, device), actor_groups=actors.groups())
    np.savez_compressed(run_dir / FIGURE_FILE, names=np.array(list(kept)), **{f"depth_{i}": kept[n] for i, n in
                                                                              enumerate(kept)})
    write_json(cached_path, doc)
    return json_safe(doc)


def _test_evaluation(study: StudySettings, loaded, device, progress_bar: bool = False, on_image=None, actors=None):
    """``evaluate_depth_regions`` of the loaded run on the study's test drives (one scale per image)."""
    import torch

    from .evaluation.depth_gt import KittiEvalDataset
    from .evaluation.runner import evaluate_depth_regions

    c = loaded.config
    dataset = KittiEvalDataset(c.kitti_root, study.test_split(), height=c.height, width=c.width, gt="png",
                               region=True)
    with torch.inference_mode():
        return evaluate_depth_regions(loaded.model, dataset, device=device, protocol=c.val_protocol,
                                      min_depth=c.min_depth, max_depth=c.max_depth, batch_size=study.eval_batch,
                                      progress=progress_bar, on_image=on_image, actors=actors)


def _actor_groups(study: StudySettings, loaded, device) -> dict:
    """The run's errors per kind of actor on the test drives (:class:`~.evaluation.actors.ActorErrors`)."""
    from .evaluation.actors import ActorErrors

    actors = ActorErrors(loaded.config.kitti_root)
    _test_evaluation(study, loaded, device, actors=actors)
    return actors.groups()


def _automask_shares(study: StudySettings, loaded, device) -> dict:
    """Where the run's own networks make the auto-mask drop the photometric loss, on the test drives
    (:func:`~sgdepth_training.evaluation.automask_share.automask_shares`)."""
    from .evaluation.automask_share import automask_shares

    c = loaded.config
    return automask_shares(loaded.model, c.kitti_root, study.test_split(), c.width, c.height, c.intrinsics,
                           c.min_depth, c.max_depth, device, study.eval_batch)


def read_figure_depths(study: StudySettings, key: str, seed: int) -> dict[str, np.ndarray]:
    """name → the run's median-scaled, clamped depth [H,W] metres of the figure frames."""
    with np.load(study.run_dir(key, seed) / FIGURE_FILE) as z:
        return {str(n): z[f"depth_{i}"] for i, n in enumerate(z["names"])}


def study_record(study: StudySettings) -> dict:
    """The settings as the report states them."""
    manifest = study.manifest()
    cfg = manifest.get("config", {})
    return {"data": str(study.data), "world": cfg.get("world", "default"), "drives": cfg.get("drives"),
            "frames": cfg.get("frames"), "test_drives": cfg.get("test_drives", 1), "synth_seed": cfg.get("seed"),
            "data_size": f"{cfg.get('width')}x{cfg.get('height')}", "splits": manifest.get("splits"),
            "runs": list(study.runs), "seeds": list(study.seeds), "steps": study.total_steps, "epochs": study.epochs,
            "batches_per_epoch": study.batches_per_epoch, "schedule_epoch": study.schedule_epoch,
            "masking_epochs": {k: study.masking_epoch(k) for k in study.runs if RUNS[k].settings.get("masking")},
            "resolution": f"{study.width}x{study.height}", "seg_resize": "x".join(map(str, _seg_resize(study))),
            "device": study.device, "amp": study.amp, "pretrained": study.pretrained,
            "settings": {k: dict(v) for k, v in study.settings.items()}}


def run_study(study: StudySettings, *, train: bool = True, report: Path | None = None, figure: Path | None = None,
              progress: bool | None = None, command: str | None = None) -> dict:
    """Train every (run, seed) (unless ``train`` is False), evaluate each that has a checkpoint, write the report
    (``report`` markdown, ``figure`` PNG) → ``{"study": …, "results": [per run and seed]}`` (also
    ``<out>/ablation.json``)."""
    from .evaluation.report import write_json

    study.validate()
    for key in study.runs:  # every config first: a bad setting stops the study before hours of training
        for seed in study.seeds:
            run_state(study.run_dir(key, seed), train_config(study, key, seed))
    if train:
        for seed in study.seeds:
            for key in study.runs:
                train_run(study, key, seed, progress)
    frames = figure_frames(study)
    results = []
    for seed in study.seeds:
        for key in study.runs:
            state = run_state(study.run_dir(key, seed), train_config(study, key, seed))
            if state in ("new", "empty"):
                LOG.warning("run %s seed %d: no checkpoint yet, left out of the report", key, seed)
                continue
            results.append(evaluate_run(study, key, seed, frames, progress_bar=bool(progress)))
    doc = {"study": study_record(study), "figure_frames": frames,
           "results": [{k: v for k, v in r.items() if k != "per_image"} for r in results]}
    write_json(Path(study.out) / "ablation.json", doc)
    if report is not None:
        from .ablation_report import write_report
        write_report(study, doc, Path(report), Path(figure) if figure else Path(report).with_suffix(".png"),
                     command=command)
    return doc
