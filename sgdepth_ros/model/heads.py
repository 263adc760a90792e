"""Output heads: multi-resolution disparity, segmentation logits, and the pose decoder."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NUM_SEG_CHANNELS = 20  # 19 Cityscapes trainIds + one untrained "void" channel (index 19)


def _pad_conv(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    return conv(F.pad(x, (1, 1, 1, 1), mode="reflect"))


class MultiResDepth(nn.Module):
    """Sigmoid disparity heads on the last ``scales`` decoder slots.

    ``convs[s]`` reads decoder slot ``4 - s`` (s=0: 16 channels at full resolution, s=1: 32 at
    1/2, s=2: 64 at 1/4, s=3: 128 at 1/8). Each bias starts at +5 (sigmoid ≈ 0.993, i.e. a small
    initial depth), as in SGDepth.
    """

    def __init__(self, dec_channels: tuple[int, ...], scales: int = 4):
        super().__init__()
        if scales not in range(1, 5):
            raise ValueError(f"depth scales must be in 1..4, got {scales}")
        self.scales = scales
        self.convs = nn.ModuleList(nn.Conv2d(dec_channels[-1 - s], 1, 3) for s in range(scales))
        with torch.no_grad():
            for conv in self.convs:
                conv.bias += 5.0

    def forward(self, slots: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        """slots: decoder output → disparities in (0,1), index 0 at full resolution, [N,1,h_s,w_s]."""
        return tuple(torch.sigmoid(_pad_conv(conv, slots[-1 - s])) for s, conv in enumerate(self.convs))

    def forward_full(self, slots: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Only the full-resolution disparity [N,1,H,W] (inference skips the coarse scales)."""
        return torch.sigmoid(_pad_conv(self.convs[0], slots[-1]))


class MultiResSegmentation(nn.Module):
    """One 3×3 conv, 16 → 20 channels, on the full-resolution slot; raw logits [N,20,H,W]."""

    def __init__(self, dec_channels: tuple[int, ...], num_classes: int = NUM_SEG_CHANNELS):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(dec_channels[-1], num_classes, 3)])

    def forward(self, slots: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return _pad_conv(self.convs[0], slots[-1])


class PoseDecoder(nn.Module):
    """1×1 squeeze, two 3×3 convs, 1×1 to 6 values, spatial mean → (axis-angle [N,3], translation [N,3]).

    The 0.01 output scaling of monodepth2 is baked into ``conv_3``'s initial weights (SGDepth's
    choice), so no runtime factor is applied.
    """

    def __init__(self, ch_in: int):
        super().__init__()
        self.squeeze = nn.Conv2d(ch_in, 256, 1)
        self.conv_1 = nn.Conv2d(256, 256, 3, 1, 1)
        self.conv_2 = nn.Conv2d(256, 256, 3, 1, 1)
        self.conv_3 = nn.Conv2d(256, 6, 1)
        with torch.no_grad():
            self.conv_3.weight *= 0.01
            self.conv_3.bias *= 0.01

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.relu(self.squeeze(x))
        x = F.relu(self.conv_1(x))
        x = F.relu(self.conv_2(x))
        x = self.conv_3(x).mean((3, 2))
        return x[:, :3], x[:, 3:]


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues: [N,3] axis·angle (radians) → [N,4,4] homogeneous rotation.

    R = cosθ·I + (1 − cosθ)·a·aᵀ + sinθ·[a]×, with a = v/(θ + 1e-7).
    """
    angle = axis_angle.norm(dim=1, keepdim=True)  # [N,1]
    axis = axis_angle / (angle + 1e-7)
    cos, sin = angle.cos()[..., None], angle.sin()
    x, y, z = axis.unbind(1)
    zero = torch.zeros_like(x)
    skew = torch.stack((zero, -z, y, z, zero, -x, -y, x, zero), 1).view(-1, 3, 3)
    eye = torch.eye(3, dtype=axis.dtype, device=axis.device)
    rot = (1 - cos) * (axis[:, :, None] * axis[:, None, :]) + cos * eye + sin[..., None] * skew
    out = torch.zeros(axis.shape[0], 4, 4, dtype=axis.dtype, device=axis.device)
    out[:, :3, :3] = rot
    out[:, 3, 3] = 1.0
    return out


def translation_to_matrix(translation: torch.Tensor) -> torch.Tensor:
    """[N,3] translation → [N,4,4] homogeneous translation."""
    out = torch.eye(4, dtype=translation.dtype, device=translation.device).repeat(translation.shape[0], 1, 1)
    out[:, :3, 3] = translation
    return out


def pose_vector_to_matrix(axis_angle: torch.Tensor, translation: torch.Tensor,
                          invert: bool = False) -> torch.Tensor:
    """Pose net output → [N,4,4]: T = Trans(t)·R, or its inverse Rᵀ·Trans(−t) when ``invert``."""
    rot = axis_angle_to_matrix(axis_angle)
    if not invert:
        return translation_to_matrix(translation) @ rot
    return rot.transpose(1, 2) @ translation_to_matrix(-translation)
