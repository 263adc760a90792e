"""Training-time augmentations of the KITTI depth and Cityscapes segmentation samples (spec §4.2, §4.3).

Determinism: no transform here touches a global random state. Every transform is called as
``transform(sample, rng)`` with an explicit :class:`torch.Generator`; ``data.stream.SeededSamples`` seeds a fresh
generator for each item from (seed, stream, pass, index), so the augmentation of an item depends only on those numbers,
not on the DataLoader worker count, the worker an item lands on, the order in which items are fetched, or anything
drawn before.

Every transform draws the same number of random values per sample, whatever the outcome of its coin flips, so changing
one probability does not reshuffle the other decisions of the same sample.

Images are float tensors 3xHxW in [0,1] throughout. No ImageNet normalisation is done here; the trainer normalises
``color_aug`` on the device.
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as nnf
import torchvision.transforms.functional as TF

from sgdepth_ros.labels import IGNORE_ID
from sgdepth_ros.postprocess import nearest_indices

__all__ = [
    "CityscapesTrainTransform", "ColorJitterParams", "KittiTrainTransform", "apply_color_jitter", "flip_intrinsics",
    "sample_color_jitter",
]

Transform = Callable[[dict[str, Any], torch.Generator], dict[str, Any]]


def _uniform(rng: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=rng, dtype=torch.float64))


# -- validation helpers ----------------------------------------------------------------------------------------------
def _check_probability(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value}")
    return value


def _check_positive_int(name: str, value: int) -> int:
    try:
        out = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be a positive integer, got {value!r}") from None
    if out < 1:
        raise ValueError(f"{name} must be a positive integer (>= 1), got {out}")
    return out


# -- colour jitter ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ColorJitterParams:
    """One colour-jitter draw. Neutral values: factors 1.0, hue 0.0."""

    brightness: float = 1.0  # multiplier, >= 0
    contrast: float = 1.0  # blend factor towards the image's mean grey, >= 0
    saturation: float = 1.0  # blend factor towards the grey image, >= 0
    hue: float = 0.0  # shift of the hue channel in turns, in [-0.5, 0.5]

    def __post_init__(self) -> None:
        for name in ("brightness", "contrast", "saturation"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} factor must be finite and >= 0, got {value}")
        if not -0.5 <= self.hue <= 0.5:
            raise ValueError(f"hue shift must be in [-0.5, 0.5], got {self.hue}")


def sample_color_jitter(rng: torch.Generator, brightness: float = 0.2, contrast: float = 0.2,
                        saturation: float = 0.2, hue: float = 0.1) -> ColorJitterParams:
    """Draw factors uniform in [max(0, 1 − r), 1 + r] for brightness/contrast/saturation and hue in [−hue, hue].

    Exactly four values are drawn from ``rng``, in the order brightness, contrast, saturation, hue.
    Raises: ValueError for a negative (or non-finite) range or ``hue`` outside [0, 0.5].
    """
    ranges = {"brightness": brightness, "contrast": contrast, "saturation": saturation}
    for name, value in ranges.items():
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} jitter range must be finite and >= 0, got {value}")
    if not 0.0 <= hue <= 0.5:
        raise ValueError(f"hue jitter range must be in [0, 0.5], got {hue}")
    factors = [_uniform(rng, max(0.0, 1.0 - r), 1.0 + r) for r in ranges.values()]
    return ColorJitterParams(*factors, hue=_uniform(rng, -hue, hue))


def apply_color_jitter(image: torch.Tensor, params: ColorJitterParams) -> torch.Tensor:
    """Jitter a float RGB image [..., 3, H, W] in [0,1] in the fixed order brightness → contrast → saturation → hue.

    Uses ``torchvision.transforms.functional.adjust_*`` (each clamps to [0,1]; contrast uses each image's own mean
    grey). A neutral factor is skipped, so neutral parameters return an exact copy (the hue round trip through HSV
    would otherwise change values by rounding). Works on float tensors, not on uint8 PIL images as the reference does,
    so there is no intermediate 8-bit quantisation. Returns a new tensor; the input is not modified.
    """
    if image.ndim < 3 or image.shape[-3] != 3:
        raise ValueError(f"image must be [..., 3, H, W], got shape {tuple(image.shape)}")
    if not image.is_floating_point():
        raise ValueError(f"image must be a float tensor in [0, 1], got {image.dtype}")
    out = image.clone()
    if params.brightness != 1.0:
        out = TF.adjust_brightness(out, params.brightness)
    if params.contrast != 1.0:
        out = TF.adjust_contrast(out, params.contrast)
    if params.saturation != 1.0:
        out = TF.adjust_saturation(out, params.saturation)
    if params.hue != 0.0:
        out = TF.adjust_hue(out, params.hue)
    return out


# -- KITTI -----------------------------------------------------------------------------------------------------------
def flip_intrinsics(K: torch.Tensor, width: int) -> torch.Tensor:
    """Intrinsics of the horizontally mirrored image, for pixel x ↦ (width − 1) − x (pixel x centred at integer x).

    A camera point (X, Y, Z) seen at u = fx·X/Z + s·Y/Z + cx appears in the mirrored image at (W−1) − u, which is where
    the returned K projects the mirrored point (−X, Y, Z): fx, fy, cy are kept, cx' = (W − 1) − cx and the skew s
    changes sign. Accepts [3,3] or [4,4] (also batched [..., n, n]); computed in float64, returned in K's dtype.
    """
    if K.ndim < 2 or K.shape[-1] != K.shape[-2] or K.shape[-1] not in (3, 4):
        raise ValueError(f"K must be [..., 3, 3] or [..., 4, 4], got shape {tuple(K.shape)}")
    n = K.shape[-1]
    mirror_pixels = torch.eye(n, dtype=torch.float64)
    mirror_pixels[0, 0] = -1.0
    mirror_pixels[0, 2] = float(width - 1)
    mirror_points = torch.eye(n, dtype=torch.float64)
    mirror_points[0, 0] = -1.0
    return (mirror_pixels @ K.to(torch.float64) @ mirror_points).to(K.dtype)


def _color_keys(sample: Mapping[Any, Any], name: str) -> list[tuple[Any, ...]]:
    return [key for key in sample if isinstance(key, tuple) and len(key) >= 2 and key[0] == name]


class KittiTrainTransform:
    """SGDepth's KITTI training augmentation (spec §4.2, steps 1, 4, 5) on a :class:`KittiRawDepthDataset` sample.

    - With probability ``flip_p`` every ``("color", o)`` frame (and ``"depth_gt"`` if present) is mirrored
      horizontally, all together. ``K`` is replaced by :func:`flip_intrinsics` (cx' = (W − 1) − cx) and ``inv_K`` is
      recomputed from it. The reference keeps K unchanged, assuming a centred principal point. In this code's
      convention (pixel x centred at integer x, the one ``training/geometry.py`` uses) the mirror axis is
      x = (W − 1)/2 = 319.5 for W = 640, while the default normalised K puts cx at 0.5·W = 320, half a pixel to the
      right of it. The mirrored principal point is therefore at 319, and keeping cx = 320 would shift every flipped
      sample's geometry by one pixel (twice the half-pixel offset) against unflipped ones. Calibrated (P_rect) K's are
      off-centre by several pixels, so there the error of an unchanged K would be larger still.
    - ``("color_aug", o)`` is created for every frame: with probability ``jitter_p`` one :class:`ColorJitterParams`
      draw applied to all frames of the sample, else a copy of ``("color", o)``. ``("color", o)`` stays un-jittered.
    - Other keys are passed through. The sample dict is not modified in place; a new dict is returned.

    Draws per sample, always in this order: flip coin, jitter coin, four jitter parameters.
    """

    def __init__(self, flip_p: float = 0.5, jitter_p: float = 0.5, brightness: float = 0.2, contrast: float = 0.2,
                 saturation: float = 0.2, hue: float = 0.1) -> None:
        self.flip_p = _check_probability("flip_p", flip_p)
        self.jitter_p = _check_probability("jitter_p", jitter_p)
        self.jitter_ranges = dict(brightness=brightness, contrast=contrast, saturation=saturation, hue=hue)
        sample_color_jitter(torch.Generator(), **self.jitter_ranges)  # validates the ranges now

    def __call__(self, sample: dict[Any, Any], rng: torch.Generator) -> dict[Any, Any]:
        keys = _color_keys(sample, "color")
        if not keys:
            raise KeyError("sample has no ('color', offset) images")
        flip = float(torch.rand((), generator=rng)) < self.flip_p
        jitter = float(torch.rand((), generator=rng)) < self.jitter_p
        params = sample_color_jitter(rng, **self.jitter_ranges)

        out = dict(sample)
        if flip:
            width = sample[keys[0]].shape[-1]
            for key in keys:
                out[key] = sample[key].flip(-1)
            if "depth_gt" in sample:
                out["depth_gt"] = sample["depth_gt"].flip(-1)
            if "K" in sample:
                out["K"] = flip_intrinsics(sample["K"], width)
                out["inv_K"] = torch.linalg.inv(out["K"].to(torch.float64)).to(sample["K"].dtype)
        for key in keys:
            aug_key = ("color_aug", *key[1:])
            out[aug_key] = apply_color_jitter(out[key], params) if jitter else out[key].clone()
        return out


# -- Cityscapes ------------------------------------------------------------------------------------------------------
def _resize_image(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear resize with antialiasing (PyTorch's antialias follows PIL's bilinear filter support when shrinking)."""
    if tuple(image.shape[-2:]) == (height, width):
        return image.clone()
    out = nnf.interpolate(image[None], size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    return out[0].clamp_(0.0, 1.0)


def _resize_labels(labels: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Nearest-neighbour resize sampling at pixel centres, as PIL NEAREST: dst i ← src ⌊(i + ½)·in/out⌋ in exact
    integer arithmetic (the runtime's :func:`sgdepth_ros.postprocess.nearest_indices`, mode "centre"). Keeps the
    dtype."""
    in_h, in_w = labels.shape[-2:]
    rows = torch.from_numpy(nearest_indices(in_h, height, "centre"))
    cols = torch.from_numpy(nearest_indices(in_w, width, "centre"))
    return labels[..., rows[:, None], cols[None, :]]


class CityscapesTrainTransform:
    """SGDepth's Cityscapes training augmentation (spec §4.3) on a ``CityscapesSegDataset(..., height=512,
    width=1024)`` sample (``color`` [3,H,W] in [0,1], ``segmentation`` int64 [H,W]).

    1. Horizontal flip with probability ``flip_p`` (image and labels together).
    2. Zoom-out: s ~ U(1, ``max_zoom_out``); the image becomes ⌊H/s⌋ × ⌊W/s⌋ (bilinear, antialiased), the labels the
       same size with nearest-neighbour sampling (only input label values appear).
    3. Random crop ``out_height`` × ``out_width`` (offsets uniform over all valid positions). If the rescaled image is
       smaller than the crop in a dimension, it is first padded at the bottom/right up to the crop size, the image with
       0 (black) and the labels with 255 (ignore). With the defaults (512×1024 input, s ≤ 1.5 → ≥ 341×682) no padding
       happens.
    4. Colour jitter with probability ``jitter_p`` (1.0 in SGDepth, i.e. always).

    Output: a new dict with the other keys passed through, and ``color`` (the un-jittered crop), ``color_aug`` (the
    jittered crop) and ``segmentation`` (int64 [out_height, out_width]).
    Draws per sample, always in this order: flip coin, scale, crop top, crop left, jitter coin, four jitter parameters.
    """

    def __init__(self, out_height: int = 192, out_width: int = 640, max_zoom_out: float = 1.5, flip_p: float = 0.5,
                 jitter_p: float = 1.0, brightness: float = 0.2, contrast: float = 0.2, saturation: float = 0.2,
                 hue: float = 0.1) -> None:
        self.out_height = _check_positive_int("out_height", out_height)
        self.out_width = _check_positive_int("out_width", out_width)
        max_zoom_out = float(max_zoom_out)
        if not (math.isfinite(max_zoom_out) and max_zoom_out >= 1.0):
            raise ValueError(f"max_zoom_out must be a finite number >= 1.0 (1.0 = no rescaling), got {max_zoom_out}")
        self.max_zoom_out = max_zoom_out
        self.flip_p = _check_probability("flip_p", flip_p)
        self.jitter_p = _check_probability("jitter_p", jitter_p)
        self.jitter_ranges = dict(brightness=brightness, contrast=contrast, saturation=saturation, hue=hue)
        sample_color_jitter(torch.Generator(), **self.jitter_ranges)  # validates the ranges now

    def __call__(self, sample: dict[str, Any], rng: torch.Generator) -> dict[str, Any]:
        image, labels = sample["color"], sample["segmentation"]
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"color must be [3, H, W], got shape {tuple(image.shape)}")
        if tuple(labels.shape) != tuple(image.shape[1:]):
            raise ValueError(f"segmentation shape {tuple(labels.shape)} differs from the image's "
                             f"{tuple(image.shape[1:])}")
        flip = float(torch.rand((), generator=rng)) < self.flip_p
        scale = _uniform(rng, 1.0, self.max_zoom_out)
        top_u = float(torch.rand((), generator=rng, dtype=torch.float64))
        left_u = float(torch.rand((), generator=rng, dtype=torch.float64))
        jitter = float(torch.rand((), generator=rng)) < self.jitter_p
        params = sample_color_jitter(rng, **self.jitter_ranges)

        if flip:
            image, labels = image.flip(-1), labels.flip(-1)
        in_h, in_w = image.shape[-2:]
        height, width = max(1, math.floor(in_h / scale)), max(1, math.floor(in_w / scale))
        image = _resize_image(image, height, width)
        labels = _resize_labels(labels, height, width)

        pad_h, pad_w = max(0, self.out_height - height), max(0, self.out_width - width)
        if pad_h or pad_w:
            image = nnf.pad(image, (0, pad_w, 0, pad_h), value=0.0)
            labels = nnf.pad(labels, (0, pad_w, 0, pad_h), value=IGNORE_ID)
            height, width = height + pad_h, width + pad_w
        # Crop offsets from the pre-drawn uniforms, so the number of draws does not depend on the sizes.
        top = min(int(top_u * (height - self.out_height + 1)), height - self.out_height)
        left = min(int(left_u * (width - self.out_width + 1)), width - self.out_width)
        image = image[:, top:top + self.out_height, left:left + self.out_width].contiguous()
        labels = labels[top:top + self.out_height, left:left + self.out_width].contiguous()

        out = dict(sample)
        out["color"] = image
        out["color_aug"] = apply_color_jitter(image, params) if jitter else image.clone()
        out["segmentation"] = labels.to(torch.int64)
        return out
