"""Training checkpoints: everything needed to resume exactly, written atomically, loaded without executing code.

Run folder layout::

    <run>/config.json                      the TrainConfig
    <run>/checkpoints/last.pt              newest resumable state (every N steps and at every epoch end)
    <run>/checkpoints/epoch_005.pt         every ``checkpoint_every_epochs`` epochs (and the final epoch)
    <run>/tensorboard/                     event files

A state file is a ``torch.save`` dict of tensors, numbers, strings, lists and dicts only, so ``torch.load(...,
weights_only=True)`` reads it: model (full, with the pose net), optimiser, scheduler, grad scaler, masking state,
epoch, step counters, and the RNG states (torch CPU/CUDA, Python). Data order and augmentation are functions of
(seed, step) (see ``data/stream.py``), so they resume without extra state.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

import torch

STATE_VERSION = 1


@dataclass
class Progress:
    """Where training stands: ``epoch`` being run (0-based), steps done within it and in total."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(path: str | Path, *, model, optimizer, scheduler, scaler, masking, progress: Progress,
               extra: dict | None = None) -> Path:
    """Write a resumable state to ``path`` atomically (temporary file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "version": STATE_VERSION,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "masking": masking.state_dict() if masking is not None else None,
        "progress": {"epoch": progress.epoch, "step_in_epoch": progress.step_in_epoch,
                     "global_step": progress.global_step},
        "rng": rng_state(),
        "extra": extra or {},
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_state(path: str | Path) -> dict:
    """Read a state file (weights_only: no code runs). Raises ValueError naming the file when it is not one."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # truncated or foreign files surface as various pickle/zip errors
        raise ValueError(f"{path}: not a readable training checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION or "model" not in state:
        raise ValueError(f"{path}: not a sgdepth_ros training checkpoint (version {STATE_VERSION})")
    return state


def restore(state: dict, *, model, optimizer=None, scheduler=None, scaler=None, masking=None) -> Progress:
    """Load a state into the given objects (those not None) and return the progress it records."""
    model.load_state_dict(state["model"], strict=True)
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state.get("scaler") is not None:
        scaler.load_state_dict(state["scaler"])
    if masking is not None and state.get("masking") is not None:
        masking.load_state_dict(state["masking"])
    set_rng_state(state["rng"])
    return Progress(**state["progress"])


def latest_state(run_dir: str | Path) -> Path | None:
    """The newest state of a run: ``last.pt`` if present, else the highest ``epoch_NNN.pt``."""
    folder = checkpoint_dir(run_dir)
    if (folder / "last.pt").is_file():
        return folder / "last.pt"
    epochs = sorted(folder.glob("epoch_*.pt"))
    return epochs[-1] if epochs else None
