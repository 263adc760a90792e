"""The SGDepth network: shared ResNet encoder + partly shared decoder, depth and segmentation tails,
and a separate pose network (Klingner et al., ECCV 2020).

Module nesting (and so the state_dict key names) follows the reference implementation:
``common.encoder.encoder.*``, ``common.decoder.blocks.step_k.conv.*``,
``{depth,seg}.decoder.blocks.step_k.conv.*``, ``depth.multires.convs.s.*``,
``seg.multires.convs.0.*``, ``pose.encoder.encoder.*``, ``pose.decoder.{squeeze,conv_1,conv_2,conv_3}.*``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
from torch import nn

from .decoder import DECODER_CHANNELS, NUM_STEPS, PartialDecoder, split_step
from .encoder import ResnetEncoder
from .heads import MultiResDepth, MultiResSegmentation, PoseDecoder, pose_vector_to_matrix

TASKS = ("depth", "segmentation")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of an SGDepth network (what must match a checkpoint)."""

    num_layers: int = 18
    split_pos: int = 1
    depth_scales: int = 4
    pose_layers: int | None = 18  # None: no pose network (inference-only weights)

    def to_dict(self) -> dict:
        return asdict(self)


class SGDepthOutput(NamedTuple):
    """Network outputs. ``disparities[s]``: [N,1,H/2^s,W/2^s] in (0,1), s=0 full resolution;
    ``seg_logits``: [N,20,H,W] raw logits (channel 19 is the untrained void class).
    A field is ``None`` when its task was not requested."""

    disparities: tuple[torch.Tensor, ...] | None
    seg_logits: torch.Tensor | None


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; multiplies the gradient by ``scale`` on the way back."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


class ScaledSplit(nn.Module):
    """Returns one copy of the input tuple per task; in the backward pass the gradient
    flowing from task i into the shared layers is multiplied by ``scales[i]``."""

    def __init__(self, *scales: float):
        super().__init__()
        self.scales = tuple(float(s) for s in scales)

    def forward(self, xs: tuple[torch.Tensor, ...]) -> tuple[tuple[torch.Tensor, ...], ...]:
        if not torch.is_grad_enabled():
            return tuple(xs for _ in self.scales)
        return tuple(tuple(_ScaleGrad.apply(x, s) for x in xs) for s in self.scales)


class SGDepthCommon(nn.Module):
    """Shared part: encoder + decoder steps [0, split) + the gradient-scaling split."""

    def __init__(self, num_layers: int, split_pos: int, grad_scales=(0.9, 0.1)):
        super().__init__()
        self.encoder = ResnetEncoder(num_layers)
        self.decoder = PartialDecoder(tuple(reversed(self.encoder.num_ch_enc)), 0, split_step(split_pos))
        self.split = ScaledSplit(*grad_scales)

    def forward(self, x: torch.Tensor):
        """x: [N,3,H,W] → (depth slots, segmentation slots), each a 5-tuple of feature maps."""
        slots = self.decoder(tuple(reversed(self.encoder(x))))
        return self.split(slots)


class SGDepthDepth(nn.Module):
    """Depth tail: decoder steps [split, 10) + multi-resolution sigmoid disparity heads."""

    def __init__(self, common: SGDepthCommon, scales: int):
        super().__init__()
        self.decoder = PartialDecoder(common.decoder.chs_enc, common.decoder.end, NUM_STEPS)
        self.multires = MultiResDepth(DECODER_CHANNELS, scales)

    def forward(self, slots, all_scales: bool = True):
        """→ tuple of disparities (index 0 full resolution); only index 0 when not ``all_scales``."""
        slots = self.decoder(slots)
        if all_scales:
            return self.multires(slots)
        return (self.multires.forward_full(slots),)


class SGDepthSeg(nn.Module):
    """Segmentation tail: decoder steps [split, 10) + one 20-channel logit conv."""

    def __init__(self, common: SGDepthCommon):
        super().__init__()
        self.decoder = PartialDecoder(common.decoder.chs_enc, common.decoder.end, NUM_STEPS)
        self.multires = MultiResSegmentation(DECODER_CHANNELS)

    def forward(self, slots) -> torch.Tensor:
        return self.multires(self.decoder(slots))


class SGDepthPose(nn.Module):
    """Pose network: a 6-channel ResNet on two stacked frames + the pose decoder."""

    def __init__(self, num_layers: int):
        super().__init__()
        self.encoder = ResnetEncoder(num_layers, num_input_images=2)
        self.decoder = PoseDecoder(self.encoder.num_ch_enc[-1])

    def forward(self, frame_a: torch.Tensor, frame_b: torch.Tensor, invert: bool = False) -> torch.Tensor:
        """frame_a, frame_b: [N,3,H,W] normalised, in temporal order → [N,4,4].

        ``invert=False`` (a=current, b=next) gives T(cur←next) = Trans(t)·R; ``invert=True``
        (a=previous, b=current) gives its inverse Rᵀ·Trans(−t), as in SGDepth.
        """
        features = self.encoder(torch.cat((frame_a, frame_b), 1))[-1]
        axis_angle, translation = self.decoder(features)
        return pose_vector_to_matrix(axis_angle, translation, invert)


def check_input(x: torch.Tensor) -> None:
    """Raise ``ValueError`` unless x is [N,3,H,W] with H and W positive multiples of 32."""
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"expected an input of shape [N,3,H,W], got {list(x.shape)}")
    h, w = int(x.shape[2]), int(x.shape[3])
    if h % 32 or w % 32 or h == 0 or w == 0:
        raise ValueError(
            f"input height and width must be positive multiples of 32 (e.g. 192×640, 320×1024), got {h}×{w}")


class SGDepth(nn.Module):
    """SGDepth: one forward pass gives multi-scale disparity and 20-channel segmentation logits.

    Args:
        num_layers: ResNet depth of the shared encoder (18, 34, 50, 101, 152).
        split_pos: where the decoder splits into task tails (0..4; 1 shares step 0 only).
        depth_scales: number of disparity outputs (1..4).
        pose_layers: ResNet depth of the pose encoder, or None for an inference-only network.
        grad_scales: gradient factors (depth, segmentation) into the shared layers in training.
    """

    def __init__(self, num_layers: int = 18, split_pos: int = 1, depth_scales: int = 4,
                 pose_layers: int | None = 18, grad_scales: tuple[float, float] = (0.9, 0.1)):
        super().__init__()
        self.config = ModelConfig(num_layers, split_pos, depth_scales, pose_layers)
        self.common = SGDepthCommon(num_layers, split_pos, grad_scales)
        self.depth = SGDepthDepth(self.common, depth_scales)
        self.seg = SGDepthSeg(self.common)
        self.pose = SGDepthPose(pose_layers) if pose_layers else None
        self.metadata: dict = {}

    @classmethod
    def from_config(cls, config: ModelConfig) -> "SGDepth":
        return cls(config.num_layers, config.split_pos, config.depth_scales, config.pose_layers)

    def forward(self, x: torch.Tensor, tasks: tuple[str, ...] = TASKS,
                all_scales: bool = True) -> SGDepthOutput:
        """x: [N,3,H,W] ImageNet-normalised, H and W multiples of 32.

        ``tasks`` selects the tails to run ("depth", "segmentation"); the other is skipped.
        ``all_scales=False`` computes only the full-resolution disparity.
        """
        unknown = set(tasks) - set(TASKS)
        if unknown:
            raise ValueError(f"unknown task(s) {sorted(unknown)}; valid: {TASKS}")
        if not torch.jit.is_tracing():
            check_input(x)
        depth_slots, seg_slots = self.common(x)
        disparities = self.depth(depth_slots, all_scales) if "depth" in tasks else None
        seg_logits = self.seg(seg_slots) if "segmentation" in tasks else None
        return SGDepthOutput(disparities, seg_logits)

    def inference_state_dict(self) -> dict[str, torch.Tensor]:
        """The state_dict without the pose network (what inference needs)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("pose.")}
