"""Running a checkpoint's pose net over an ordered image sequence (the evaluation side of spec §6.3)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sgdepth_ros.imageio import read_rgb
from sgdepth_ros.model import SGDepth
from sgdepth_ros.preprocess import as_rgb8, normalize, resize_rgb


@torch.no_grad()
def predict_relative_poses(model: SGDepth, images: list[Path], size: tuple[int, int], device: torch.device,
                           batch_size: int = 8, progress: bool = False) -> np.ndarray:
    """[N−1,4,4] float64: for each consecutive pair (i, i+1) the pose net's ``cam_T_cam`` with ``invert=False``
    (camera i+1 → camera i, translation in model units). images: N files in temporal order; size: (width, height)."""
    from tqdm import tqdm

    model.eval()
    frames = (normalize([resize_rgb(as_rgb8(read_rgb(p)), size)]) for p in images)
    previous = torch.from_numpy(next(frames)).to(device)
    out = []
    pairs_a, pairs_b = [], []
    bar = tqdm(total=len(images) - 1, desc="pose", unit="pair", disable=not progress)

    def flush() -> None:
        if pairs_a:
            T = model.pose(torch.cat(pairs_a), torch.cat(pairs_b), invert=False)
            out.append(T.double().cpu().numpy())
            bar.update(len(pairs_a))
            pairs_a.clear()
            pairs_b.clear()

    for batch in frames:
        current = torch.from_numpy(batch).to(device)
        pairs_a.append(previous)
        pairs_b.append(current)
        previous = current
        if len(pairs_a) == batch_size:
            flush()
    flush()
    bar.close()
    return np.concatenate(out) if out else np.zeros((0, 4, 4))
