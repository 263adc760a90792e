"""View synthesis for self-supervised depth: back-projection, projection and warping (spec §4.4).

Pixel convention: pixel (x, y) has its centre at integer coordinates, x ∈ [0, W−1], y ∈ [0, H−1]; K acts on those
indices. Sampling grids are normalised with (W−1, H−1), i.e. the ``align_corners=True`` convention, and every
``grid_sample`` call here passes ``align_corners=True`` to match (the reference code left it out, which on PyTorch ≥ 1.3
shifts every warp by half a pixel — spec §8.1). A zero-motion warp therefore reproduces the source exactly.

Precision: every function here runs in float32 with autocast off (:func:`.precision.float32`), also inside a
``--amp bf16|fp16`` step — bf16 would quantise pixel coordinates above 512 to steps of 4, fp16 overflow at
u·z ≈ 65 000. The outputs are float32 whatever the input dtype.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .precision import float32


def pixel_grid(height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Homogeneous pixel coordinates [3, H·W]: rows (x, y, 1), x fastest."""
    ys, xs = torch.meshgrid(torch.arange(height, device=device, dtype=dtype),
                            torch.arange(width, device=device, dtype=dtype), indexing="ij")
    return torch.stack((xs.reshape(-1), ys.reshape(-1), torch.ones_like(xs).reshape(-1)))


def scale_intrinsics(K: torch.Tensor, inv_K: torch.Tensor, sx: float, sy: float) -> tuple[torch.Tensor, torch.Tensor]:
    """K and inv_K [N,4,4] of an image resized by (sx, sy) → (K', inv_K') [N,4,4]: K's rows x and y scaled, as the
    reference scales the normalised K by each scale's width and height (no half-pixel shift); K' = S·K with
    S = diag(sx, sy, 1, 1), so inv_K' = inv_K·S⁻¹ (columns scaled, no matrix inverse)."""
    factors = torch.tensor([sx, sy, 1.0, 1.0], device=K.device, dtype=K.dtype)
    return K * factors.view(1, 4, 1), inv_K / factors.view(1, 1, 4)


@float32
def backproject(depth: torch.Tensor, inv_K: torch.Tensor) -> torch.Tensor:
    """depth [N,1,H,W] (z along the optical axis), inv_K [N,4,4] → homogeneous camera points [N,4,H·W]."""
    n, _, h, w = depth.shape
    rays = inv_K[:, :3, :3] @ pixel_grid(h, w, depth.device, depth.dtype)  # [N,3,HW]
    points = rays * depth.reshape(n, 1, -1)
    return torch.cat((points, torch.ones_like(points[:, :1])), 1)


@float32
def project(points: torch.Tensor, K: torch.Tensor, T: torch.Tensor, height: int, width: int,
            eps: float = 1e-7) -> torch.Tensor:
    """Camera points [N,4,H·W] of the target view, transform T [N,4,4] (target → source camera), K [N,4,4]
    → normalised sampling grid [N,H,W,2] in the align_corners=True convention (−1 = centre of the first pixel)."""
    n = points.shape[0]
    cam = (K[:, :3, :] @ T) @ points  # [N,3,HW]
    pix = cam[:, :2] / (cam[:, 2:3] + eps)
    scale = torch.tensor([width - 1, height - 1], device=pix.device, dtype=pix.dtype).view(1, 2, 1)
    grid = pix / scale * 2.0 - 1.0
    return grid.view(n, 2, height, width).permute(0, 2, 3, 1)


@float32
def sampling_grid(depth: torch.Tensor, T: torch.Tensor, K: torch.Tensor, inv_K: torch.Tensor) -> torch.Tensor:
    """Where each target pixel (with ``depth`` [N,1,H,W]) lands in the source view after T (target → source):
    grid [N,H,W,2] for ``grid_sample(..., align_corners=True)``."""
    h, w = depth.shape[-2:]
    return project(backproject(depth, inv_K), K, T, h, w)


@float32
def warp(source: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Bilinear sample source [N,C,H,W] at grid [N,H,W,2] with border padding (the reference's choice)."""
    return F.grid_sample(source, grid, mode="bilinear", padding_mode="border", align_corners=True)


@float32
def warp_labels(labels: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour warp of integer label maps [N,H,W] (e.g. trainIds) → [N,H,W] of the same dtype."""
    warped = F.grid_sample(labels[:, None].to(grid.dtype), grid, mode="nearest", padding_mode="border",
                           align_corners=True)
    return warped[:, 0].round().to(labels.dtype)
