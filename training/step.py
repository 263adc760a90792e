"""One training step's loss: joint forward, view synthesis at every scale, minimum reprojection, semantic masking,
smoothness and segmentation cross-entropy (spec §4.1, §4.4–4.7). No optimiser here: the loop owns the update."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from sgdepth_ros.labels import NUM_CLASSES
from sgdepth_ros.model import SGDepth
from sgdepth_ros.postprocess import disparity_to_depth

from . import geometry, losses
from .masking import MaskingSchedule, dynamic_iou, dynamic_pixels, moving_mask
from .network import JointNetwork, normalize, segment


@dataclass
class LossSettings:
    automask: bool = True
    avg_reprojection: bool = False
    smoothness: float = losses.SMOOTHNESS_WEIGHT
    min_depth: float = 0.1
    max_depth: float = 100.0
    photometric_resolution: str = "full"  # "full" (the reference) or "native": see :func:`_view_synthesis_inputs`

    @classmethod
    def from_config(cls, config) -> "LossSettings":
        """The loss settings of a :class:`~sgdepth_training.config.TrainConfig`."""
        return cls(config.automask, config.avg_reprojection, config.smoothness, config.min_depth, config.max_depth,
                   config.photometric_resolution)


@dataclass
class StepResult:
    """loss: the scalar to back-propagate; scalars: detached 0-d tensors for logging (converted to floats only when
    logged: the loop's finiteness check of the loss is a step's one host sync); images: tensors for logging."""

    loss: torch.Tensor
    scalars: dict[str, torch.Tensor] = field(default_factory=dict)
    images: dict[str, torch.Tensor] = field(default_factory=dict)


def _offsets(batch: dict) -> list[int]:
    return sorted(key[1] for key in batch if isinstance(key, tuple) and key[0] == "color")


def compute_moving_mask(model: SGDepth, batch: dict, grids: dict[int, torch.Tensor], schedule: MaskingSchedule,
                        device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Segment frames 0/±1 (eval mode, no grad, augmented inputs), warp the neighbours' labels into frame 0 with the
    scale-0 grids, log the per-image DC IoU and build the {0,1} mask [B,1,H,W]. → (mask, iou [B])."""
    labels = {f: segment(model, normalize(batch[("color_aug", f)].to(device))) for f in _offsets(batch)}
    current = dynamic_pixels(labels[0])
    warped = [dynamic_pixels(geometry.warp_labels(labels[f], grids[f].detach())) for f in grids]
    iou = dynamic_iou(current, warped)
    schedule.record(iou)
    return moving_mask(current, warped, iou, schedule.mask_threshold), iou


def _view_synthesis_inputs(disp: torch.Tensor, colors: dict[int, torch.Tensor], K: torch.Tensor, inv_K: torch.Tensor,
                           resolution: str) -> tuple[torch.Tensor, dict, torch.Tensor, torch.Tensor]:
    """Where one scale's photometric loss is computed. disp [B,1,h,w] (one decoder scale); colors f → [B,3,H,W].

    - ``"full"`` (the reference, spec §4.4): disp upsampled (bilinear) to H×W; the frames and K as they are.
    - ``"native"`` (a deviation, as SfMLearner and Monodepth (2017) did): the frames area-downsampled to h×w and K
      scaled by (w/W, h/H), so a coarse scale sees large image motion in fewer pixels — a wider basin of the
      photometric error around the true depth.
    → (disparity, frames, K, inv_K) at the loss's resolution.
    """
    h, w = disp.shape[-2:]
    H, W = next(iter(colors.values())).shape[-2:]
    if (h, w) == (H, W):
        return disp, colors, K, inv_K
    if resolution == "full":
        return F.interpolate(disp, size=(H, W), mode="bilinear", align_corners=False), colors, K, inv_K
    small = {f: F.interpolate(c, size=(h, w), mode="area") for f, c in colors.items()}
    return (disp, small, *geometry.scale_intrinsics(K, inv_K, w / W, h / H))


def training_loss(net: JointNetwork | torch.nn.Module, depth_batch: dict, seg_batch: dict | None, settings: LossSettings,
                  schedule: MaskingSchedule | None, device: torch.device,
                  keep_images: bool = False) -> StepResult:
    """L = L_depth + L_seg for one (depth batch, segmentation batch) pair.

    depth_batch: ``("color", f)`` [B,3,H,W] in [0,1] (loss targets), ``("color_aug", f)`` (network inputs),
    ``K``/``inv_K`` [B,4,4] at H×W; seg_batch: ``color_aug`` [S,3,H,W], ``segmentation`` [S,H,W] int64 or None.
    net: the JointNetwork, or DDP around it; schedule: the DC masking state when masking is active this epoch,
    else None.
    """
    offsets = _offsets(depth_batch)
    frames = {f: normalize(depth_batch[("color_aug", f)].to(device, non_blocking=True)) for f in offsets}
    colors = {f: depth_batch[("color", f)].to(device, non_blocking=True) for f in offsets}
    K = depth_batch["K"].to(device)
    inv_K = depth_batch["inv_K"].to(device)
    seg_images = None if seg_batch is None else normalize(seg_batch["color_aug"].to(device, non_blocking=True))

    out = net(frames, seg_images)
    target = colors[0]
    min_errors, grids0, warped0 = [], {}, {}
    for s, disp in enumerate(out.disparities):
        # view synthesis in float32 also under AMP (see precision.py)
        disp_s, colors_s, K_s, inv_K_s = _view_synthesis_inputs(disp.float(), colors, K, inv_K,
                                                                settings.photometric_resolution)
        depth = disparity_to_depth(disp_s, settings.min_depth, settings.max_depth)
        warped = []
        for f in offsets:
            if f == 0:
                continue
            grid = geometry.sampling_grid(depth, out.poses[f].float(), K_s, inv_K_s)
            warped.append(geometry.warp(colors_s[f], grid))
            if s == 0:
                grids0[f], warped0[f] = grid, warped[-1]
        sources = [colors_s[f] for f in offsets if f != 0]
        min_errors.append(losses.min_reprojection(colors_s[0], warped, sources, settings.automask,
                                                  settings.avg_reprojection))

    mask = iou = None
    if schedule is not None:
        joint = net.module if hasattr(net, "module") else net
        mask, iou = compute_moving_mask(joint.model, depth_batch, grids0, schedule, device)
    l_depth, parts = losses.depth_loss(min_errors, [d.float() for d in out.disparities], target, mask,
                                       settings.smoothness)
    loss = l_depth
    scalars = {"loss/depth": l_depth.detach(), "loss/photometric": parts["photometric"],
               "loss/smoothness": parts["smoothness"]}
    if seg_batch is not None:
        l_seg = losses.segmentation_loss(out.seg_logits.float(), seg_batch["segmentation"].to(device))
        loss = loss + l_seg
        scalars["loss/segmentation"] = l_seg.detach()
    scalars["loss/total"] = loss.detach()
    if mask is not None:
        scalars["masking/masked_fraction"] = 1.0 - mask.mean()
    images = {}
    if keep_images:
        images = {"color": target[:1].detach(), "disparity": out.disparities[0][:1].detach().float()}
        if warped0:
            images["warped"] = next(iter(warped0.values()))[:1].detach()
        if mask is not None:
            images["moving_mask"] = mask[:1].detach()
        if seg_batch is not None:
            images["seg_color"] = seg_batch["color"][:1] if "color" in seg_batch else seg_batch["color_aug"][:1]
            images["seg_pred"] = out.seg_logits[:1, :NUM_CLASSES].argmax(1).detach()
            images["seg_target"] = seg_batch["segmentation"][:1]
    return StepResult(loss, scalars, images)
