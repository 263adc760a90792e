"""How much of the photometric loss the auto-mask already switches off, by region — issue 17's "why".

Monodepth2's auto-mask (on by default, as in SGDepth) takes per pixel the minimum over the identity errors (a source
frame, unwarped, against the target) and the reprojection errors (the source warped with the predicted depth and
pose). Where an identity error wins, the pixel pulls no depth. A car moving with the camera looks static in the
image, so its identity error is small and the auto-mask drops it: the very pixels SGDepth's semantic masking is meant
to take out of the loss. This measures, with a trained run's own depth and pose networks on test frames (−1, 0, +1),
the share of moving-object pixels and of static pixels where an identity error wins.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from sgdepth_ros.model import SGDepth
from sgdepth_ros.postprocess import disparity_to_depth

from .. import geometry
from ..data.kitti import KittiRawDepthDataset
from ..losses import identity_wins
from ..network import JointNetwork, normalize
from .depth_gt import moving_actor_mask

RULE = "the loss's minimum, ties to the identity error"  # recorded with each measurement: older ones are redone


def model_identity_wins(model: SGDepth, colors: dict[int, torch.Tensor], K: torch.Tensor, inv_K: torch.Tensor,
                        min_depth: float, max_depth: float) -> torch.Tensor:
    """Bool [B,H,W]: where the auto-mask picks an identity error at full resolution (scale 0), by the training
    loss's own rule (:func:`..losses.identity_wins`).

    colors: {offset: [B,3,H,W] RGB in [0,1]}, offset 0 the target, others its neighbours; K/inv_K [B,4,4] at H×W;
    model: a full SGDepth (with pose), in eval mode."""
    out = JointNetwork(model)({f: normalize(c) for f, c in colors.items()})
    depth = disparity_to_depth(out.disparities[0].float(), min_depth, max_depth)
    offsets = [f for f in colors if f != 0]
    warped = [geometry.warp(colors[f], geometry.sampling_grid(depth, out.poses[f].float(), K, inv_K))
              for f in offsets]
    return identity_wins(colors[0], warped, [colors[f] for f in offsets])[:, 0]


def automask_shares(model: SGDepth, kitti_root: str | Path, split_file: str | Path, width: int, height: int,
                    intrinsics: str, min_depth: float, max_depth: float, device: str | torch.device = "cpu",
                    batch_size: int = 4) -> dict:
    """Share of moving-object and of static pixels (synthetic world's actor flags, at network size) where the
    auto-mask picks an identity error, over the split's frames → ``{"moving": f, "static": f, "images": n,
    "moving_pixels": n, "static_pixels": n, "rule": RULE}``."""
    dataset = KittiRawDepthDataset(kitti_root, split_file, frame_offsets=(0, -1, 1), height=height, width=width,
                                   intrinsics=intrinsics, load_depth=False)
    model = model.to(device).eval()
    counts = {"moving": [0, 0], "static": [0, 0]}  # [auto-masked, all]
    cache: dict = {}
    with torch.inference_mode():
        for start in range(0, len(dataset), batch_size):
            samples = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
            colors = {f: torch.stack([s[("color", f)] for s in samples]).to(device) for f in (0, -1, 1)}
            K = torch.stack([torch.as_tensor(s["K"]) for s in samples]).to(device)
            inv_K = torch.stack([torch.as_tensor(s["inv_K"]) for s in samples]).to(device)
            wins = model_identity_wins(model, colors, K, inv_K, min_depth, max_depth).cpu().numpy()
            for s, win in zip(samples, wins):
                moving = moving_actor_mask(kitti_root, s["folder"], s["frame"], s["side"], cache)
                moving = cv2.resize(moving.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) > 0
                for region, where in (("moving", moving), ("static", ~moving)):
                    counts[region][0] += int(win[where].sum())
                    counts[region][1] += int(where.sum())
    return {"moving": counts["moving"][0] / max(counts["moving"][1], 1),
            "static": counts["static"][0] / max(counts["static"][1], 1),
            "images": len(dataset), "moving_pixels": counts["moving"][1], "static_pixels": counts["static"][1],
            "rule": RULE}
