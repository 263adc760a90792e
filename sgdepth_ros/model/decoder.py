"""The SGDepth partial decoder: ten steps that can be split between a shared head and task tails.

The decoder state is a 5-tuple of feature maps ("slots") that starts as the encoder output in
reverse order, ``(l4, l3, l2, l1, l0)``, and is rewritten step by step. Step ``k`` is

* even k, a *pre-conv*: reflection pad 1, 3×3 conv, ELU; reads slot ``max(k/2 - 1, 0)``,
  writes slot ``k/2``;
* odd k, an *up-skip*: nearest ×2 upsampling, concatenation with the encoder skip in slot
  ``k//2 + 1`` (none for the last step), reflection pad, 3×3 conv, ELU; reads and writes slot
  ``k//2``.

At 192×640 with ResNet-18 the final state is (256@1/16, 128@1/8, 64@1/4, 32@1/2, 16@1/1).
Blocks live in ``blocks['step_k']`` with their conv under ``.conv`` so the state_dict keys
match the reference checkpoints (``…decoder.blocks.step_k.conv.weight``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DECODER_CHANNELS = (256, 128, 64, 32, 16)
NUM_STEPS = 2 * len(DECODER_CHANNELS)


def split_step(split_pos: int) -> int:
    """Map the user-facing split position p ∈ 0..4 to the first step of the task tails.

    p=0 shares no decoder step, p=1 (default) shares step 0, p=2 steps 0–2, p=3 steps 0–4,
    p=4 steps 0–6.
    """
    if split_pos not in range(5):
        raise ValueError(f"split_pos must be in 0..4, got {split_pos}")
    return max(2 * split_pos - 1, 0)


class PreConvBlock(nn.Module):
    """Reflection pad + 3×3 conv + ELU; keeps the resolution. [N,c_in,h,w] → [N,c_out,h,w]."""

    def __init__(self, ch_in: int, ch_out: int):
        super().__init__()
        self.conv = nn.Conv2d(ch_in, ch_out, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.elu(self.conv(F.pad(x, (1, 1, 1, 1), mode="reflect")))


class UpSkipBlock(nn.Module):
    """Nearest ×2 upsampling, optional skip concatenation, reflection pad, 3×3 conv, ELU.

    [N,c_in,h,w] (+ skip [N,c_skip,2h,2w]) → [N,c_out,2h,2w].
    """

    def __init__(self, ch_in: int, ch_skip: int, ch_out: int):
        super().__init__()
        self.conv = nn.Conv2d(ch_in + ch_skip, ch_out, 3)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        if skip is not None:
            x = torch.cat((x, skip), 1)
        return F.elu(self.conv(F.pad(x, (1, 1, 1, 1), mode="reflect")))


class PartialDecoder(nn.Module):
    """Runs decoder steps ``start`` (inclusive) to ``end`` (exclusive) on the slot tuple.

    Args:
        chs_enc: encoder channels from the lowest resolution up, e.g. (512, 256, 128, 64, 64).
        start, end: step range within 0..10.
    """

    def __init__(self, chs_enc: tuple[int, ...], start: int = 0, end: int = NUM_STEPS):
        super().__init__()
        if not 0 <= start <= end <= NUM_STEPS:
            raise ValueError(f"decoder steps must satisfy 0 <= start <= end <= {NUM_STEPS}")
        self.start, self.end = start, end
        self.chs_enc = tuple(chs_enc)
        self.blocks = nn.ModuleDict()
        chs_dec = DECODER_CHANNELS
        for step in range(start, end):
            macro = step // 2
            if step % 2 == 0:
                ch_in = chs_dec[macro - 1] if macro > 0 else self.chs_enc[0]
                self.blocks[f"step_{step}"] = PreConvBlock(ch_in, chs_dec[macro])
            else:
                ch_skip = self.chs_enc[macro + 1] if macro + 1 < len(self.chs_enc) else 0
                self.blocks[f"step_{step}"] = UpSkipBlock(chs_dec[macro], ch_skip, chs_dec[macro])

    def forward(self, slots: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        """slots: 5 feature maps (lowest resolution first) → the rewritten 5 slots."""
        state = list(slots)
        for step in range(self.start, self.end):
            block = self.blocks[f"step_{step}"]
            macro = step // 2
            if step % 2 == 0:
                state[macro] = block(state[max(macro - 1, 0)])
            else:
                skip = state[macro + 1] if macro + 1 < len(state) else None
                state[macro] = block(state[macro], skip)
        return tuple(state)
