"""The training loop: one (depth, segmentation) batch pair per step, Adam + StepLR per epoch, DC masking schedule,
logging, validation between epochs, resumable checkpoints (spec §4.1, §4.8)."""
from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from sgdepth_ros.backends import resolve_device

from . import checkpointing as ckpt
from .config import TrainConfig
from .data.assemble import TrainingData, build_training_data
from .data.stream import SeededSamples, StreamBatchSampler
from .distributed import DistInfo, barrier, gather_floats, init_from_env, shutdown
from .masking import MaskingSchedule
from .network import JointNetwork, build_model
from .run_log import RunLogger
from .step import LossSettings, training_loss
from .validate import validate

LOG = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run_dir: Path
    progress: ckpt.Progress
    finished: bool            # all epochs done (False: stopped at max_steps, resumable)
    last_scalars: dict[str, float]
    images_per_second: float


def _seed_everything(seed: int, deterministic: bool) -> None:
    import random

    random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    elif torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True


def _autocast(config: TrainConfig, device: torch.device):
    if config.amp == "off":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if config.amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _loader(dataset, transform, batch: int, config: TrainConfig, name: str, start: int, info: DistInfo,
            device: torch.device):
    sampler = StreamBatchSampler(len(dataset), batch, config.seed, name, start, info.rank, info.world_size)
    loader = DataLoader(SeededSamples(dataset, transform, config.seed, name), batch_sampler=sampler,
                        num_workers=config.num_workers, pin_memory=device.type == "cuda",
                        persistent_workers=config.num_workers > 0)
    return loader, sampler


def _device(device: torch.device, config: TrainConfig, info: DistInfo) -> torch.device:
    """This process's device (cuda:LOCAL_RANK under DDP); AMP fp16 needs CUDA."""
    if device.type == "cuda" and info.enabled:
        device = torch.device("cuda", info.local_rank)
    if config.amp == "fp16" and device.type != "cuda":
        raise ValueError("amp 'fp16' needs a CUDA device; use 'bf16' or 'off' on the CPU")
    return device


def prepare_run_dir(run_dir: Path, config: TrainConfig, resume: bool) -> None:
    """Create the run folder with its config; refuse to mix runs (an existing run needs --resume)."""
    config_path = run_dir / "config.json"
    if resume:
        if not config_path.is_file():
            raise FileNotFoundError(f"{run_dir}: no config.json, nothing to resume")
        return
    if config_path.is_file() or (run_dir.exists() and any(run_dir.iterdir())):
        raise FileExistsError(f"{run_dir} is not empty; resume it with --resume {run_dir}, or choose another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt.atomic_write(config_path, lambda handle: handle.write(config.to_json().encode()))


def train(config: TrainConfig, run_dir: str | Path, resume: bool = False, progress_bar: bool | None = None,
          data: TrainingData | None = None) -> TrainResult:
    """Run (or resume) training into ``run_dir``. Under torchrun every process calls this; rank 0 writes files."""
    run_dir = Path(run_dir)
    device = resolve_device(config.device)
    info = init_from_env(device.type)
    try:
        return _train(config, run_dir, resume, progress_bar, data, info, _device(device, config, info))
    finally:
        shutdown(info)


@dataclass
class TrainingState:
    """What a checkpoint holds and the loop updates."""

    model: torch.nn.Module
    net: torch.nn.Module            # JointNetwork, or DDP around it
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    masking: MaskingSchedule | None
    progress: ckpt.Progress

    def save(self, run_dir: Path, name: str, info: DistInfo) -> None:
        """Rank 0 writes ``checkpoints/<name>`` atomically; every process waits for it."""
        if info.is_main:
            ckpt.save_state(ckpt.checkpoint_dir(run_dir) / name, model=self.model, optimizer=self.optimizer,
                            scheduler=self.scheduler, scaler=self.scaler if self.scaler.is_enabled() else None,
                            masking=self.masking, progress=self.progress)
        barrier(info)


def build_state(config: TrainConfig, device: torch.device, info: DistInfo, run_dir: Path,
                resume: bool) -> tuple[TrainingState, str]:
    """Network, Adam, StepLR, grad scaler and masking schedule — restored from the run's newest checkpoint when
    resuming. → (state, a line on how the encoders were initialised)."""
    model, init_note = build_model(config.num_layers, config.split_pos, config.depth_scales, config.grad_scales,
                                   config.pretrained, None if resume else config.init_weights,
                                   (config.min_depth, config.max_depth))
    model.to(device)
    if config.channels_last and device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    net = JointNetwork(model)
    if info.enabled:
        net = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=config.depth_only)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_step, gamma=config.lr_gamma)
    scaler = torch.amp.GradScaler(device.type, enabled=config.amp == "fp16")
    masking = (MaskingSchedule(config.masking_from_epoch, config.epochs, config.masking_linear,
                               config.masking_fraction, always=config.masking_always)
               if config.masking and not config.depth_only else None)
    state = TrainingState(model, net, optimizer, scheduler, scaler, masking, ckpt.Progress())
    if resume:
        path, saved, skipped = ckpt.find_resumable(run_dir)
        for broken, why in skipped:
            LOG.warning("skipped broken checkpoint %s (%s)", broken, why)
        state.progress = ckpt.restore(saved, model=model, optimizer=optimizer, scheduler=scheduler,
                                      scaler=scaler, masking=masking)
        LOG.warning("resuming %s at epoch %d, step %d", path, state.progress.epoch + 1, state.progress.global_step)
    return state, init_note


def _optimise(state: TrainingState, loss: torch.Tensor, step: int, only_pose: bool = False) -> None:
    """Backward + Adam step (through the grad scaler for fp16). A non-finite loss stops before it spoils weights.
    ``only_pose`` (pose warm-up): every other weight keeps its value — its gradient is dropped, and Adam skips a
    parameter without one (no step, no moment update)."""
    if not math.isfinite(float(loss.detach())):
        raise FloatingPointError(f"loss became {float(loss.detach())} at step {step}; lower --lr or turn AMP off")
    state.optimizer.zero_grad(set_to_none=True)
    state.scaler.scale(loss).backward()
    if only_pose:
        for name, parameter in state.model.named_parameters():
            if not name.startswith("pose."):
                parameter.grad = None
    state.scaler.step(state.optimizer)
    state.scaler.update()


def _end_epoch(state: TrainingState, epoch: int, info: DistInfo) -> None:
    """Masking threshold from this epoch's IoUs (all processes), lr schedule step, counters."""
    if state.masking is not None:
        state.masking.end_epoch(epoch, gather_floats(state.masking.iou_log, info))
    state.scheduler.step()
    state.progress.epoch += 1
    state.progress.step_in_epoch = 0


def _train(config, run_dir, resume, progress_bar, data, info: DistInfo, device: torch.device) -> TrainResult:
    if info.is_main:
        prepare_run_dir(run_dir, config, resume)
    barrier(info)
    _seed_everything(config.seed, config.deterministic)
    data = data or build_training_data(config)
    state, init_note = build_state(config, device, info, run_dir, resume)
    progress, masking = state.progress, state.masking
    depth_loader, depth_sampler = _loader(data.depth, data.depth_transform, config.depth_batch, config, "depth",
                                          progress.global_step, info, device)
    seg_iter = None
    if not config.depth_only:
        seg_iter = iter(_loader(data.seg, data.seg_transform, config.seg_batch, config, "segmentation",
                                progress.global_step, info, device)[0])
    depth_iter = iter(depth_loader)
    steps_per_epoch = config.batches_per_epoch or depth_sampler.batches_per_pass
    settings = LossSettings.from_config(config)
    logger = RunLogger(run_dir, enabled=info.is_main)
    if info.is_main:
        _announce(config, data, init_note, steps_per_epoch, device, info, logger)
    show_bar = info.is_main and (sys.stderr.isatty() if progress_bar is None else progress_bar)
    last: dict[str, float] = {}
    images_done, busy = 0, 0.0
    state.model.train()
    deadline = None if config.max_seconds is None else time.monotonic() + config.max_seconds
    try:
        while progress.epoch < config.epochs:
            epoch = progress.epoch
            if masking is not None and progress.step_in_epoch == 0:
                masking.start_epoch()
            active = masking if masking is not None and masking.active(epoch) else None
            bar = tqdm(total=steps_per_epoch, initial=progress.step_in_epoch, disable=not show_bar,
                       desc=f"epoch {epoch + 1}/{config.epochs}", unit="step", dynamic_ncols=True)
            while progress.step_in_epoch < steps_per_epoch:
                t0 = time.perf_counter()
                depth_batch = next(depth_iter)
                seg_batch = next(seg_iter) if seg_iter is not None else None
                keep_images = info.is_main and (progress.global_step + 1) % config.image_every_steps == 0
                with _autocast(config, device):
                    result = training_loss(state.net, depth_batch, seg_batch, settings, active, device, keep_images)
                _optimise(state, result.loss, progress.global_step + 1,
                          only_pose=progress.global_step < config.pose_warmup_steps)
                progress.step_in_epoch += 1
                progress.global_step += 1
                busy += time.perf_counter() - t0
                images_done += config.depth_batch + (0 if config.depth_only else config.seg_batch)
                if (progress.global_step % config.log_every_steps == 0 or keep_images) and info.is_main:
                    last = {k: float(v) for k, v in result.scalars.items()}
                    last["lr"] = state.optimizer.param_groups[0]["lr"]
                    last["speed/images_per_second"] = images_done * info.world_size / max(busy, 1e-9)
                    if active is not None:
                        last["masking/threshold"] = active.threshold
                    logger.scalars(progress.global_step, last)
                    bar.set_postfix(loss=f"{last['loss/total']:.4f}")
                if keep_images:
                    logger.pictures(progress.global_step, result.images)
                bar.update(1)
                if config.checkpoint_every_steps and progress.global_step % config.checkpoint_every_steps == 0:
                    state.save(run_dir, "last.pt", info)
                if ((config.max_steps is not None and progress.global_step >= config.max_steps)
                        or _past(deadline, info)):
                    bar.close()
                    state.save(run_dir, "last.pt", info)
                    return TrainResult(run_dir, progress, False, last, images_done / max(busy, 1e-9))
            bar.close()
            _end_epoch(state, epoch, info)
            if info.is_main and config.validate:
                metrics = validate(state.model, data, config, device, show_bar)
                if metrics:
                    logger.scalars(progress.global_step, metrics)
                    LOG.warning("epoch %d validation: %s", epoch + 1,
                                ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
            state.save(run_dir, "last.pt", info)
            if info.is_main and (progress.epoch % config.checkpoint_every_epochs == 0
                                 or progress.epoch == config.epochs):
                ckpt.copy_state(ckpt.checkpoint_dir(run_dir) / "last.pt",
                                ckpt.checkpoint_dir(run_dir) / f"epoch_{progress.epoch:03d}.pt")
    finally:
        logger.close()
    return TrainResult(run_dir, progress, True, last, images_done / max(busy, 1e-9))


def _past(deadline: float | None, info) -> bool:
    """Whether ``max_seconds`` is up (``time.monotonic()`` past ``deadline``) on any process: all of them stop at the
    same step. False without a deadline, with no collective call."""
    if deadline is None:
        return False
    return any(gather_floats([float(time.monotonic() >= deadline)], info))


def _announce(config, data: TrainingData, init_note: str, steps_per_epoch: int, device, info, logger) -> None:
    lines = [f"preset {config.preset}: {len(data.depth)} depth samples"
             + (f", {len(data.seg)} segmentation images" if data.seg is not None else " (depth only)")
             + (f", {data.skipped} skipped (missing files)" if data.skipped else ""),
             f"{config.epochs} epochs × {steps_per_epoch} steps, batch {config.depth_batch}"
             + (f"+{config.seg_batch}" if not config.depth_only else "")
             + f" per process × {info.world_size}, {config.width}x{config.height}, device {device}, amp {config.amp}",
             init_note]
    if config.pose_warmup_steps:
        lines.append(f"pose warm-up: the first {config.pose_warmup_steps} steps train only the pose network")
    for line in lines:
        print(line, file=sys.stderr)
    logger.text("run", "\n\n".join(lines + ["```\n" + config.to_json() + "\n```"]))
