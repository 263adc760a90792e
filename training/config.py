"""Training configuration: one explicit dataclass, the reference presets, validation with the valid ranges.

The learning-rate decay factor (StepLR gamma) needs a word: the reference code passes the learning rate (1e-4) where
StepLR expects gamma, so its lr collapses to 1e-8 after epoch 15 and the masking epochs barely train (spec §4.8, §8.2).
Monodepth2 uses 0.1. We default to 0.1 and keep ``lr_gamma=1e-4`` one flag away to reproduce the code literally; it is
not known which of the two produced the released weights.
"""
from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

SIDES = ("listed", "both", "left", "right")
AMP_MODES = ("off", "bf16", "fp16")
PRETRAINED = ("auto", "imagenet", "scratch")
INTRINSICS = ("calib", "default")
PHOTOMETRIC_RESOLUTIONS = ("full", "native")


@dataclass
class TrainConfig:
    """Everything a training run depends on (saved as ``config.json`` in the run folder)."""

    preset: str = "zhou_full"
    # data
    kitti_root: str | None = None
    split: str = "eigen_zhou"           # a folder name under <kitti_root>/splits/ or a path holding *_files.txt
    sides: str = "both"                 # which cameras: as listed in the split file, both (SGDepth), left, right
    intrinsics: str = "default"         # normalised KITTI K (reference) or the calibration files
    cityscapes_root: str | None = None  # None: depth only
    label_kind: str = "auto"
    missing: str = "error"              # a missing/corrupt file: "error" (named) or "skip" (counted)
    width: int = 640
    height: int = 192
    seg_resize: tuple[int, int] = (1024, 512)  # (width, height) before the random zoom-out and crop
    max_zoom_out: float = 1.5
    # method
    depth_batch: int = 6
    seg_batch: int = 6                  # 0: no segmentation
    grad_scales: tuple[float, float] = (0.9, 0.1)
    masking: bool = True
    masking_from_epoch: int = 15
    masking_linear: bool = True
    masking_fraction: float = 0.1       # only without linear increase
    masking_always: bool = False        # no static-frame detection: in the masking epochs mask every dynamic-class
                                        # pixel of every frame (the ablation's run d)
    automask: bool = True
    avg_reprojection: bool = False
    photometric_resolution: str = "full"  # full: every scale's disparity upsampled, the loss at the input size (the
                                          # reference); native: the loss at each scale's own size on downsampled
                                          # images (a deviation: a wider basin for large image motion)
    smoothness: float = 1e-3
    min_depth: float = 0.1
    max_depth: float = 100.0
    num_layers: int = 18
    split_pos: int = 1
    depth_scales: int = 4
    pretrained: str = "auto"            # ImageNet encoders when torchvision's weights are cached locally
    init_weights: str | None = None     # start from a trained network: a released model.pth or our .safetensors
    pose_warmup_steps: int = 0          # first N steps train only the pose network (others frozen): for init_weights
                                        # without a pose network, so a fresh pose does not wreck the trained depth
    # schedule
    epochs: int = 20
    batches_per_epoch: int | None = 7293  # None: one pass over the depth data (len // global batch)
    lr: float = 1e-4
    lr_step: int = 15
    lr_gamma: float = 0.1
    # system
    seed: int = 1
    deterministic: bool = False
    num_workers: int = 2
    device: str = "auto"
    amp: str = "off"
    channels_last: bool = False
    # bookkeeping
    checkpoint_every_epochs: int = 5
    checkpoint_every_steps: int = 1000  # a resumable "last" checkpoint (crash safety); 0 = only at epoch ends
    log_every_steps: int = 50
    image_every_steps: int = 500
    validate: bool = True
    val_max_images: int | None = 200
    val_protocol: str = "kitti"         # depth validation/scale mask: kitti (gt > 0), capped (1e-3..80 m), eigen
    max_steps: int | None = None        # stop after this many steps in total (resumable); per invocation, not resumed
    max_seconds: float | None = None    # stop at the first step that ends this many seconds after training started
                                        # (resumable, checkpoint written); per invocation, not resumed
    notes: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown training settings {unknown}")
        data = dict(data)
        for key in ("seg_resize", "grad_scales"):
            if key in data and data[key] is not None:
                data[key] = tuple(data[key])
        return cls(**data)

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: not a valid training config ({exc})") from None

    @property
    def depth_only(self) -> bool:
        return self.seg_batch == 0 or self.cityscapes_root is None


# Reference experiments (spec §4.9) plus synthetic-world ones. Values not listed keep the dataclass defaults.
# Where the split files come from: ``eigen_zhou`` is monodepth2's splits/eigen_zhou/ folder; ``kitti`` is SGDepth's
# KITTI split (the reference's kitti_kitti_split/{train,validation,test}.json index files), which no
# monodepth2 checkout holds: convert the JSONs with ``train --split-json DIR`` (data/sgdepth_json.py).
PRESETS: dict[str, dict] = {
    "zhou_full": dict(split="eigen_zhou", sides="both", batches_per_epoch=7293, depth_batch=6, seg_batch=6,
                      grad_scales=(0.9, 0.1), masking=True),
    "zhou_only_depth": dict(split="eigen_zhou", sides="both", batches_per_epoch=7293, depth_batch=12, seg_batch=0,
                            grad_scales=(1.0, 0.0), masking=False),
    "kitti_full": dict(split="kitti", sides="both", batches_per_epoch=9645, depth_batch=6, seg_batch=6,
                       grad_scales=(0.9, 0.1), masking=True),
    "kitti_only_depth": dict(split="kitti", sides="both", batches_per_epoch=9645, depth_batch=12, seg_batch=0,
                             grad_scales=(1.0, 0.0), masking=False),
    # the synthetic world: left camera only (the only one rendered), its own calibration, one pass per epoch
    "synthetic_full": dict(split="synthetic", sides="listed", intrinsics="calib", batches_per_epoch=None,
                           depth_batch=6, seg_batch=6, grad_scales=(0.9, 0.1), masking=True, val_protocol="capped"),
    "synthetic_only_depth": dict(split="synthetic", sides="listed", intrinsics="calib", batches_per_epoch=None,
                                 depth_batch=12, seg_batch=0, grad_scales=(1.0, 0.0), masking=False,
                                 val_protocol="capped"),
}


def from_preset(name: str, settings: dict | None = None, **overrides) -> TrainConfig:
    """The preset's config with ``overrides`` (None values are ignored: "keep the preset's") and then ``settings``
    (applied as given, None included, e.g. from :func:`parse_setting`) applied, validated."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; valid: {', '.join(PRESETS)}")
    values = {**PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}, **(settings or {})}
    config = TrainConfig.from_dict({"preset": name, **values})
    validate(config)
    return config


# -- ``--set KEY=VALUE``: any TrainConfig field from the command line, typed by the dataclass ------------------------
NOT_SETTABLE = {"preset": "choose it with --preset"}
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def settable_fields() -> dict[str, str]:
    """Field name → its type as text (``"float"``, ``"int | None"``, ``"tuple[float, float]"``, …) for ``--set``."""
    hints = typing.get_type_hints(TrainConfig)
    return {f.name: _type_text(hints[f.name]) for f in dataclasses.fields(TrainConfig) if f.name not in NOT_SETTABLE}


def _type_text(hint) -> str:
    return getattr(hint, "__name__", None) if isinstance(hint, type) else str(hint).replace("typing.", "")


def _coerce(name: str, hint, text: str):
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if type(None) in args and text.strip().lower() in ("none", "null"):
            return None
        hint = next(a for a in args if a is not type(None))
        args = typing.get_args(hint)
    if hint is bool:
        word = text.strip().lower()
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        raise ValueError(f"{name} is true or false, got {text!r}")
    if hint in (int, float, str):
        try:
            return hint(text.strip())
        except ValueError:
            raise ValueError(f"{name} must be {'an integer' if hint is int else 'a number'}, got {text!r}") from None
    if typing.get_origin(hint) is tuple:
        parts = [p for p in re.split(r"[,x ]+", text.strip()) if p]
        if len(parts) != len(args):
            raise ValueError(f"{name} takes {len(args)} values separated by ',' (e.g. {name}=" +
                             ",".join("1" if a is int else "0.5" for a in args) + f"), got {text!r}")
        return tuple(_coerce(name, a, p) for a, p in zip(args, parts))
    if hint is dict or typing.get_origin(hint) is dict:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{name} takes a JSON object, got {text!r} ({exc})") from None
        if not isinstance(value, dict):
            raise ValueError(f"{name} takes a JSON object, got {text!r}")
        return value
    raise ValueError(f"{name}: cannot be set from text ({_type_text(hint)})")


def parse_setting(text: str) -> tuple[str, object]:
    """``"KEY=VALUE"`` → (field name, typed value) for any :class:`TrainConfig` field (``-`` and ``_`` alike).

    Values by field type: numbers as written; booleans true/false/yes/no/on/off/1/0; ``none`` for fields that
    accept None; pairs as ``a,b`` (or ``WxH``). Ranges are checked afterwards by :func:`validate`.
    Raises: ValueError naming the key and listing the valid keys, or naming the key and the expected form.
    """
    key, sep, value = text.partition("=")
    key = key.strip().replace("-", "_")
    fields = settable_fields()
    if not sep or not key:
        raise ValueError(f"--set takes KEY=VALUE, got {text!r}")
    if key in NOT_SETTABLE:
        raise ValueError(f"{key} cannot be set with --set: {NOT_SETTABLE[key]}")
    if key not in fields:
        raise ValueError(f"unknown training setting {key!r}; valid keys: {', '.join(sorted(fields))}")
    return key, _coerce(key, typing.get_type_hints(TrainConfig)[key], value)


def _no_cityscapes_message(c: TrainConfig) -> str:
    """Why a joint preset without Cityscapes is refused: without segmentation data it would silently train a hybrid
    (depth batch and gradient scales of the full model, no masking, no segmentation) that matches neither
    reference experiment."""
    only = c.preset.replace("_full", "_only_depth")
    hint = (f"for depth only use --preset {only} (depth batch {PRESETS[only]['depth_batch']}, gradient scales "
            f"{PRESETS[only]['grad_scales'][0]:g}/{PRESETS[only]['grad_scales'][1]:g}, no masking)"
            if only != c.preset and only in PRESETS else "for depth only set seg_batch=0")
    return (f"preset {c.preset} trains depth + segmentation (seg_batch {c.seg_batch}, gradient scales "
            f"{c.grad_scales[0]:g}/{c.grad_scales[1]:g}, masking) and needs Cityscapes: give --cityscapes DIR; "
            + hint)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def validate(c: TrainConfig) -> None:
    """Raise ValueError naming the setting and its valid range."""
    _check(c.kitti_root is not None, "a KITTI raw root is needed (--kitti DIR, or --synthetic DIR)")
    _check(c.sides in SIDES, f"sides must be one of {SIDES}, got {c.sides!r}")
    _check(c.intrinsics in INTRINSICS, f"intrinsics must be one of {INTRINSICS}, got {c.intrinsics!r}")
    _check(c.missing in ("error", "skip"), f"missing must be 'error' or 'skip', got {c.missing!r}")
    for name in ("width", "height"):
        v = getattr(c, name)
        _check(isinstance(v, int) and v > 0 and v % 32 == 0, f"{name} must be a positive multiple of 32, got {v}")
    _check(c.seg_resize[0] >= c.width and c.seg_resize[1] >= c.height,
           f"seg_resize {c.seg_resize} must be at least the crop size {c.width}x{c.height}")
    _check(1.0 <= c.max_zoom_out <= 4.0, f"max_zoom_out must be in [1, 4], got {c.max_zoom_out}")
    _check(1 <= c.depth_batch <= 1024, f"depth_batch must be in [1, 1024], got {c.depth_batch}")
    _check(0 <= c.seg_batch <= 1024, f"seg_batch must be in [0, 1024], got {c.seg_batch}")
    _check(len(c.grad_scales) == 2 and all(0.0 <= g <= 1.0 for g in c.grad_scales),
           f"grad_scales must be two numbers in [0, 1], got {c.grad_scales}")
    if c.seg_batch and c.cityscapes_root is None:
        raise ValueError(_no_cityscapes_message(c))
    _check(0 <= c.masking_from_epoch, f"masking_from_epoch must be ≥ 0, got {c.masking_from_epoch}")
    _check(0.0 <= c.masking_fraction <= 1.0, f"masking_fraction must be in [0, 1], got {c.masking_fraction}")
    _check(0.0 <= c.smoothness <= 1.0, f"smoothness must be in [0, 1], got {c.smoothness}")
    _check(0 < c.min_depth < c.max_depth, f"need 0 < min_depth < max_depth, got {c.min_depth}, {c.max_depth}")
    _check(c.num_layers in (18, 34, 50, 101, 152), f"num_layers must be 18/34/50/101/152, got {c.num_layers}")
    _check(0 <= c.split_pos <= 4, f"split_pos must be in 0..4, got {c.split_pos}")
    _check(1 <= c.depth_scales <= 4, f"depth_scales must be in 1..4, got {c.depth_scales}")
    _check(c.pretrained in PRETRAINED, f"pretrained must be one of {PRETRAINED}, got {c.pretrained!r}")
    _check(c.init_weights is None or Path(c.init_weights).is_file(),
           f"init_weights: no such file {c.init_weights!r} (a released SGDepth model.pth or an sgdepth_ros "
           ".safetensors)")
    _check(c.pose_warmup_steps >= 0, f"pose_warmup_steps must be ≥ 0, got {c.pose_warmup_steps}")
    _check(1 <= c.epochs <= 10000, f"epochs must be in [1, 10000], got {c.epochs}")
    _check(c.batches_per_epoch is None or c.batches_per_epoch >= 1,
           f"batches_per_epoch must be ≥ 1 (or None: one pass), got {c.batches_per_epoch}")
    _check(0 < c.lr <= 1.0, f"lr must be in (0, 1], got {c.lr}")
    _check(c.lr_step >= 1, f"lr_step must be ≥ 1, got {c.lr_step}")
    _check(0 < c.lr_gamma <= 1.0, f"lr_gamma must be in (0, 1], got {c.lr_gamma}")
    _check(c.num_workers >= 0, f"num_workers must be ≥ 0, got {c.num_workers}")
    _check(c.amp in AMP_MODES, f"amp must be one of {AMP_MODES}, got {c.amp!r}")
    _check(c.checkpoint_every_epochs >= 1, f"checkpoint_every_epochs must be ≥ 1, got {c.checkpoint_every_epochs}")
    _check(c.checkpoint_every_steps >= 0, f"checkpoint_every_steps must be ≥ 0, got {c.checkpoint_every_steps}")
    _check(c.log_every_steps >= 1 and c.image_every_steps >= 1, "log/image intervals must be ≥ 1")
    _check(c.photometric_resolution in PHOTOMETRIC_RESOLUTIONS,
           f"photometric_resolution must be one of {', '.join(PHOTOMETRIC_RESOLUTIONS)}, "
           f"got {c.photometric_resolution!r}")
    _check(c.val_protocol in ("kitti", "capped", "eigen"),
           f"val_protocol must be one of kitti, capped, eigen, got {c.val_protocol!r}")
    _check(c.max_steps is None or c.max_steps >= 1, f"max_steps must be ≥ 1, got {c.max_steps}")
    _check(c.max_seconds is None or c.max_seconds > 0, f"max_seconds must be > 0, got {c.max_seconds}")
    _check(c.val_max_images is None or c.val_max_images >= 1,
           f"val_max_images must be ≥ 1 (or None: all), got {c.val_max_images}")
