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

Crash safety: every file is written to ``<name>.tmp`` in the same folder, flushed and fsynced, renamed over the
target, and the folder is fsynced — a kill at any moment leaves either the old complete file or the new complete one
(plus, at worst, a stale ``.tmp`` that is ignored and replaced next time). Reading verifies: ``torch.load`` with
``weights_only`` must succeed (a truncated file fails: the zip directory is at its end) and the expected keys must be
there; a broken file raises ValueError naming it. :func:`find_resumable` picks the newest *valid* state of a run and
reports the broken ones it skipped (runs written before these safeguards may hold one).
"""
from __future__ import annotations

import random
import shutil
from dataclasses import dataclass
from pathlib import Path

from sgdepth_ros.atomic_file import atomic_write

import torch

STATE_VERSION = 1
#: keys every state file holds (checked on load)
STATE_KEYS = ("version", "model", "optimizer", "scheduler", "scaler", "masking", "progress", "rng")
PROGRESS_KEYS = ("epoch", "step_in_epoch", "global_step")


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
    """Write a resumable state to ``path`` crash-safely (:func:`atomic_write`)."""
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
    return atomic_write(path, lambda handle: torch.save(state, handle))


def copy_state(src: str | Path, dst: str | Path) -> Path:
    """Copy a state file crash-safely (e.g. ``last.pt`` → ``epoch_005.pt``), see :func:`atomic_write`."""
    with open(src, "rb") as source:
        return atomic_write(dst, lambda handle: shutil.copyfileobj(source, handle, 1 << 22))


def load_state(path: str | Path) -> dict:
    """Read and verify a state file (weights_only: no code runs). Raises FileNotFoundError when it does not exist,
    ValueError naming the file when it is truncated, corrupt, foreign or lacks one of :data:`STATE_KEYS`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated or foreign files surface as various pickle/zip errors
        reason = str(exc).split(". ")[0].strip() or type(exc).__name__
        raise ValueError(f"{path}: not a readable training checkpoint, truncated or corrupt ({path.stat().st_size} "
                         f"bytes; {type(exc).__name__}: {reason})") from None
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise ValueError(f"{path}: not a sgdepth_ros training checkpoint (version {STATE_VERSION})")
    missing = [key for key in STATE_KEYS if key not in state]
    progress = state.get("progress")
    if "progress" in state:
        missing += [f"progress.{k}" for k in PROGRESS_KEYS if not isinstance(progress, dict) or k not in progress]
    if missing or not isinstance(state["model"], dict) or not state["model"]:
        raise ValueError(f"{path}: incomplete training checkpoint (missing {', '.join(missing) or 'model weights'})")
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


def _candidates(run_dir: str | Path) -> list[Path]:
    """A run's state files, newest first: ``last.pt`` (written every N steps and at each epoch end), then
    ``epoch_NNN.pt`` from the highest epoch down."""
    folder = checkpoint_dir(run_dir)
    last = [folder / "last.pt"] if (folder / "last.pt").is_file() else []
    epochs = sorted((p for p in folder.glob("epoch_*.pt") if p.is_file()), reverse=True)
    return last + epochs


def find_resumable(run_dir: str | Path) -> tuple[Path, dict, list[tuple[Path, str]]]:
    """The newest state of a run that loads and verifies (:func:`load_state`).

    Returns (path, the loaded state, [(broken file, why), …] skipped on the way — newer files that did not verify).
    Raises FileNotFoundError when the run has no state file, ValueError listing every file when none verifies.
    """
    skipped: list[tuple[Path, str]] = []
    for path in _candidates(run_dir):
        try:
            return path, load_state(path), skipped
        except (ValueError, OSError) as exc:
            skipped.append((path, str(exc)))
    if not skipped:
        raise FileNotFoundError(f"{run_dir}: no checkpoint in {checkpoint_dir(run_dir)}")
    raise ValueError(f"{run_dir}: no valid checkpoint; " + "; ".join(why for _, why in skipped))


def latest_state(run_dir: str | Path) -> Path | None:
    """The newest state file of a run by name (``last.pt``, else the highest ``epoch_NNN.pt``), unverified; use
    :func:`find_resumable` to get the newest one that actually loads."""
    candidates = _candidates(run_dir)
    return candidates[0] if candidates else None
