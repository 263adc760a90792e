"""SGDepth's training losses (spec §4.5, §4.6) as small pure functions.

Images are un-normalised RGB in [0,1]; per-pixel error maps are [N,1,H,W]. The photometric terms and the smoothness
run in float32 with autocast off (:func:`.precision.float32`), also inside a ``--amp bf16|fp16`` step.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from sgdepth_ros.labels import IGNORE_ID

from .precision import float32

SSIM_C1 = 0.01 ** 2
SSIM_C2 = 0.03 ** 2
SSIM_WEIGHT = 0.85
SMOOTHNESS_WEIGHT = 1e-3

# Class weights for trainIds 0..18 and the void channel 19 (weight 0): the reference's ENet-style weights, to the
# four decimals the spec records (§4.6).
SEG_CLASS_WEIGHTS = (2.8149, 6.9850, 3.7890, 9.9428, 9.7702, 9.5111, 10.3114, 10.0265, 4.6323, 9.5608,
                     7.8698, 9.5169, 10.3737, 6.6616, 10.2605, 10.2879, 10.2898, 10.4054, 10.1381, 0.0)


@float32
def ssim_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Structural dissimilarity clamp((1 − SSIM)/2, 0, 1) with 3×3 mean windows on reflection-padded inputs.
    a, b: [N,C,H,W] → [N,C,H,W]."""
    a = F.pad(a, (1, 1, 1, 1), mode="reflect")
    b = F.pad(b, (1, 1, 1, 1), mode="reflect")
    mu_a, mu_b = F.avg_pool2d(a, 3, 1), F.avg_pool2d(b, 3, 1)
    var_a = F.avg_pool2d(a * a, 3, 1) - mu_a ** 2
    var_b = F.avg_pool2d(b * b, 3, 1) - mu_b ** 2
    cov = F.avg_pool2d(a * b, 3, 1) - mu_a * mu_b
    numerator = (2 * mu_a * mu_b + SSIM_C1) * (2 * cov + SSIM_C2)
    denominator = (mu_a ** 2 + mu_b ** 2 + SSIM_C1) * (var_a + var_b + SSIM_C2)
    return torch.clamp((1 - numerator / denominator) / 2, 0, 1)


@float32
def photometric_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """0.85·SSIM loss + 0.15·L1, each averaged over channels: [N,3,H,W] × 2 → [N,1,H,W]."""
    l1 = (pred - target).abs().mean(1, keepdim=True)
    ssim = ssim_loss(pred, target).mean(1, keepdim=True)
    return SSIM_WEIGHT * ssim + (1 - SSIM_WEIGHT) * l1


@float32
def min_reprojection(target: torch.Tensor, warped: list[torch.Tensor], sources: list[torch.Tensor],
                     automask: bool = True, average: bool = False) -> torch.Tensor:
    """Per-pixel reprojection error [N,1,H,W] of the target against the warped source frames, as the reference's
    ``DepthLosses`` combines them (spec §4.5):

    - ``automask`` on: the per-pixel **minimum** over [identity errors, reprojection errors], where the identity
      errors are those of the unwarped ``sources`` (pixels that look the same without warping — static camera,
      objects moving with it — then pull no depth); no tie-break noise. With ``average`` the identity errors are
      first averaged over the frames, and so are the reprojection errors: min(mean identity, mean reprojection).
    - ``automask`` off: no minimum at all — the reference then takes the mean over every frame's reprojection error
      map, i.e. per pixel the **average** over the warped frames (``average`` changes nothing). ``sources`` is unused.
    """
    if not automask:
        return torch.cat([photometric_error(w, target) for w in warped], 1).mean(1, keepdim=True)
    return _automask_candidates(target, warped, sources, average)[0].min(1, keepdim=True)[0]


@float32
def identity_wins(target: torch.Tensor, warped: list[torch.Tensor], sources: list[torch.Tensor],
                  average: bool = False) -> torch.Tensor:
    """Bool [N,1,H,W]: where :func:`min_reprojection`'s auto-mask minimum is an identity error, i.e. the pixel pulls
    no depth (ties resolved as the loss's minimum resolves them: to the identity errors, which come first)."""
    candidates, n_identity = _automask_candidates(target, warped, sources, average)
    return candidates.min(1, keepdim=True)[1] < n_identity


def _automask_candidates(target: torch.Tensor, warped: list[torch.Tensor], sources: list[torch.Tensor],
                         average: bool) -> tuple[torch.Tensor, int]:
    """The auto-mask's candidates per pixel [N,I+R,H,W]: identity errors first, then reprojection errors (each
    averaged over the frames with ``average``), and I, the number of identity channels."""
    reprojection = torch.cat([photometric_error(w, target) for w in warped], 1)
    identity = torch.cat([photometric_error(s, target) for s in sources], 1)
    if average:
        reprojection, identity = reprojection.mean(1, keepdim=True), identity.mean(1, keepdim=True)
    return torch.cat((identity, reprojection), 1), identity.shape[1]


@float32
def smoothness(disp: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Edge-aware smoothness of the mean-normalised disparity. disp [N,1,h,w]; image [N,3,H,W] is resized
    (bilinear) to h×w. → scalar mean(|∂x d̃|·e^(−|∂x I|)) + mean(|∂y d̃|·e^(−|∂y I|))."""
    if image.shape[-2:] != disp.shape[-2:]:
        image = F.interpolate(image, size=disp.shape[-2:], mode="bilinear", align_corners=False)
    d = disp / (disp.mean((2, 3), keepdim=True) + 1e-7)
    dx = (d[..., :, :-1] - d[..., :, 1:]).abs()
    dy = (d[..., :-1, :] - d[..., 1:, :]).abs()
    ix = (image[..., :, :-1] - image[..., :, 1:]).abs().mean(1, keepdim=True)
    iy = (image[..., :-1, :] - image[..., 1:, :]).abs().mean(1, keepdim=True)
    return (dx * torch.exp(-ix)).mean() + (dy * torch.exp(-iy)).mean()


@float32
def depth_loss(min_errors: list[torch.Tensor], disparities: list[torch.Tensor], target: torch.Tensor,
               moving_mask: torch.Tensor | None = None,
               smoothness_weight: float = SMOOTHNESS_WEIGHT) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L_depth = mean over scales s of [mean(mask · min_error_s) + w·smooth(disp_s)/2^s].

    min_errors[s]: [N,1,H,W] at the input resolution (disparity s upsampled before warping, the reference), or
    [N,1,H/2^s,W/2^s] (``photometric_resolution`` native); disparities[s]: [N,1,H/2^s,W/2^s] native;
    target [N,3,H,W]; moving_mask [N,1,H,W] in {0,1} or None: at a coarser error map a coarse pixel is masked when
    any input pixel under it is. Masked pixels stay in the mean's denominator (as the reference).
    → (loss, parts for logging).
    """
    total = photometric = smooth_total = 0.0
    for s, (err, disp) in enumerate(zip(min_errors, disparities)):
        if moving_mask is not None:
            mask = moving_mask
            if mask.shape[-2:] != err.shape[-2:]:
                mask = 1.0 - F.adaptive_max_pool2d(1.0 - mask, err.shape[-2:])
            err = err * mask
        photo = err.mean()
        smooth = smoothness(disp, target)
        total = total + photo + smoothness_weight * smooth / (2 ** s)
        photometric = photometric + photo.detach()
        smooth_total = smooth_total + smooth.detach()
    n = len(min_errors)
    return total / n, {"photometric": photometric / n, "smoothness": smooth_total / n}


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor,
                      class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted cross-entropy: logits [N,20,H,W], target [N,H,W] int64 trainIds with 255 ignored → scalar
    Σ w_y·CE / Σ w_y over the non-ignored pixels (PyTorch's weighted mean)."""
    if class_weights is None:
        class_weights = torch.tensor(SEG_CLASS_WEIGHTS, device=logits.device, dtype=logits.dtype)
    return F.cross_entropy(logits, target, weight=class_weights.to(logits.dtype), ignore_index=IGNORE_ID)
