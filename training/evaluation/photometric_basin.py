"""The photometric loss around the true depth, on the synthetic world's exact ground truth (issue 17's diagnosis).

For frames t of a drive (t±1 its neighbours): warp the neighbours into t with the ground-truth depth times a
factor (1 = the truth) and the ground-truth camera poses, and take the per-pixel minimum photometric error over the
two neighbours — the reference's minimum reprojection without the auto-mask — at a given network size. Pooled per
kind of actor (and road scene), split into the right fifth of the image (where the camera passes parked cars
closely) and the rest:

- the mean error per factor: where the loss has its minimum and how deep it is;
- ``basin``: the share of pixels whose error rises monotonically from the truth out to 4× the depth — from anywhere
  in that range a descent on the loss leads back to the truth; elsewhere a prediction that is too far can sit in a
  local minimum, with no gradient back (the "holes");
- ``identity``: the share where an unwarped neighbour matches better than the truth's warp (the auto-mask drops them).

Run it at several sizes to see the basin widen as the images shrink (the idea behind ``photometric_resolution``
native)::

    python -m sgdepth_training.evaluation.photometric_basin --data data/synth20/kitti \\
        --folder 2030_01_08/2030_01_08_drive_0020_sync --sizes 320x96,160x48,80x24

``--sources`` picks other neighbours than t±1: ``--sources=-2,2`` is twice the image motion (a camera at half the frame
rate), ``--sources=-1`` or ``1`` one neighbour alone (where it is lost, a pixel leaves the view or is uncovered).
``--select 28,29`` pools those actors apart (e.g. the still cars queued ahead in ``synth --world queue``: near the
focus of expansion)."""
from __future__ import annotations

import argparse
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from sgdepth_ros.commands import arg_types
from sgdepth_ros.preprocess import resize_rgb

from .. import geometry, losses
from ..data._imaging import read_rgb, read_single_channel, resize_labels, rgb_to_tensor
from ..data.kitti import depth_png_path, read_poses
from ..data.kitti_calib import camera_intrinsics, read_calib_file
from .depth_gt import read_instance_ids, read_objects

FACTORS = (0.7, 0.85, 1.0, 1.15, 1.3, 1.5, 2.0, 3.0, 4.0, 1000.0)
BASIN_CHAIN = (1.0, 1.15, 1.3, 1.5, 2.0, 3.0, 4.0)  # the error must rise along these for a pixel to be "in the basin"
SHOWN = (1.0, 1.15, 2.0, 1000.0)                   # the factors the table shows
RIGHT_FIFTH = 0.8                                   # columns ≥ 0.8·W
SELECTED = "selected actors"                        # the kind of the actors given by --select


def error_profile(target: torch.Tensor, sources: list[torch.Tensor], transforms: list[torch.Tensor],
                  depth: torch.Tensor, K: torch.Tensor, inv_K: torch.Tensor | None = None,
                  factors=FACTORS) -> tuple[dict[float, torch.Tensor], torch.Tensor]:
    """target, sources [1,3,H,W] in [0,1]; transforms [1,4,4] target → each source camera; depth [1,1,H,W] metres
    (> 0); K [1,4,4] at H×W and its inverse (computed when not given). → ({factor: [H,W] minimum photometric error
    over the sources with depth·factor}, [H,W] the minimum identity error of the unwarped sources)."""
    inv_K = torch.linalg.inv(K) if inv_K is None else inv_K
    errors = {}
    for factor in factors:
        per_source = [losses.photometric_error(geometry.warp(s, geometry.sampling_grid(depth * factor, T, K, inv_K)),
                                               target) for s, T in zip(sources, transforms)]
        errors[factor] = torch.cat(per_source, 1).min(1)[0][0]
    identity = torch.cat([losses.photometric_error(s, target) for s in sources], 1).min(1)[0][0]
    return errors, identity


@dataclass
class Group:
    """Sums over the pixels of one (kind, zone) group."""

    pixels: int = 0
    error: dict[float, float] = field(default_factory=dict)
    basin: int = 0
    identity: int = 0

    def add(self, errors: dict[float, np.ndarray], identity: np.ndarray, mask: np.ndarray) -> None:
        self.pixels += int(mask.sum())
        for factor, e in errors.items():
            self.error[factor] = self.error.get(factor, 0.0) + float(e[mask].sum())
        rising = np.ones(int(mask.sum()), bool)
        for a, b in zip(BASIN_CHAIN[:-1], BASIN_CHAIN[1:]):
            rising &= errors[a][mask] <= errors[b][mask]
        self.basin += int(rising.sum())
        self.identity += int((identity[mask] < errors[1.0][mask]).sum())

    def summary(self) -> dict:
        n = max(self.pixels, 1)
        return {"pixels": self.pixels, "error": {f: e / n for f, e in self.error.items()},
                "basin": self.basin / n, "identity": self.identity / n}


def _kind(doc: dict) -> dict[int, str]:
    return {o["id"]: f"{o['class']}, {'moving' if o.get('moving') else 'still'}" for o in doc["objects"]}


def valid_sources(sources: tuple[int, ...]) -> bool:
    """Source frame offsets are usable when there is at least one, none is 0 (the target) and none repeats."""
    return bool(sources) and 0 not in sources and len(set(sources)) == len(sources)


def drive_profile(kitti_root: str | os.PathLike[str], folder: str, width: int, height: int,
                  every: int = 2, sources: tuple[int, ...] = (-1, 1),
                  selected: frozenset[int] = frozenset()) -> dict[tuple[str, str], dict]:
    """The synthetic drive ``<kitti_root>/<folder>`` (our exporter's KITTI layout: image_02, poses.txt, dense depth
    PNGs, instance ids, objects.json; the calibration one folder up) at width×height, every ``every``-th frame t that
    has all its source frames t+o (o in ``sources``: distinct non-zero frame offsets, default both neighbours).
    → {(kind, zone): :meth:`Group.summary`}; kind "car, still", … or "scene" (no actor), zone "right fifth" or
    "rest". ``selected``: instance ids (objects.json) pooled apart as the kind "selected actors" (e.g. the cars
    queued ahead of the ego in the queue world)."""
    if not valid_sources(sources):
        raise ValueError(f"sources must be distinct non-zero frame offsets, got {sources}")
    drive = Path(kitti_root) / folder
    poses = read_poses(drive / "poses.txt")
    kinds = _kind(read_objects(drive))
    unknown = sorted(set(selected) - set(kinds))
    if unknown:
        raise ValueError(f"{drive}: no actor with id {', '.join(map(str, unknown))} in synthetic/objects.json")
    kinds.update({i: SELECTED for i in selected})
    K3, (native_w, native_h) = camera_intrinsics(read_calib_file(drive.parent / "calib_cam_to_cam.txt"))
    K = torch.eye(4)[None]
    K[0, :3, :3] = torch.from_numpy(K3)
    K, inv_K = geometry.scale_intrinsics(K, torch.linalg.inv(K), width / native_w, height / native_h)
    zone_right = np.zeros((height, width), bool)
    zone_right[:, int(round(RIGHT_FIFTH * width)):] = True

    @functools.lru_cache(maxsize=2 * (max(map(abs, sources)) + 1))  # the frames t-|o| … t+|o| of the last two t
    def image(i: int) -> torch.Tensor:
        return rgb_to_tensor(resize_rgb(read_rgb(drive / "image_02" / "data" / f"{i:010d}.png"), (width, height)))[None]

    groups: dict[tuple[str, str], Group] = {}
    for t in range(max(0, -min(sources)), len(poses) - max(0, max(sources)), every):
        depth = read_single_channel(depth_png_path(kitti_root, folder, t, "l")).astype(np.float32) / 256.0
        ids = resize_labels(read_instance_ids(kitti_root, folder, t), width, height)
        depth = resize_labels(depth, width, height)
        valid = depth > 0
        transforms = [torch.from_numpy(np.linalg.inv(poses[t + o]) @ poses[t]).float()[None] for o in sources]
        errors, identity = error_profile(image(t), [image(t + o) for o in sources], transforms,
                                         torch.from_numpy(np.where(valid, depth, 1.0))[None, None], K, inv_K)
        errors_np = {f: e.numpy() for f, e in errors.items()}
        identity_np = identity.numpy()
        for actor in np.unique(ids):
            kind = "scene" if actor == 0 else kinds.get(int(actor), "unknown")
            pixels = (ids == actor) & valid
            for zone, in_zone in (("right fifth", zone_right), ("rest", ~zone_right)):
                mask = pixels & in_zone
                if mask.any():
                    groups.setdefault((kind, zone), Group()).add(errors_np, identity_np, mask)
    return {key: g.summary() for key, g in sorted(groups.items())}


def markdown(profiles: dict[tuple[int, int], dict]) -> str:
    """{(width, height): :func:`drive_profile` result} → a markdown table."""
    head = ("| size | pixels of | zone | pixels | " + " | ".join(f"error ×{f:g}" for f in SHOWN)
            + " | basin (rises out to ×4) | identity wins |")
    lines = [head, "|" + "---|" * 3 + "---:|" * (len(SHOWN) + 3)]
    for (w, h), groups in profiles.items():
        for (kind, zone), g in groups.items():
            errors = " | ".join(f"{g['error'][f]:.3f}" for f in SHOWN)
            lines.append(f"| {w}×{h} | {kind} | {zone} | {g['pixels']} | {errors} | {100 * g['basin']:.1f} % | "
                         f"{100 * g['identity']:.1f} % |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sgdepth_training.evaluation.photometric_basin",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, type=Path, help="the KITTI-format root of `sgdepth-ros synth`")
    p.add_argument("--folder", required=True,
                   help="a drive folder under it, e.g. 2030_01_08/2030_01_08_drive_0020_sync")
    p.add_argument("--sizes", default="320x96", help="comma-separated WIDTHxHEIGHT (default 320x96)")
    p.add_argument("--every", type=int, default=2, help="every N-th frame (default 2)")
    p.add_argument("--sources", default="-1,1",
                   help="comma-separated non-zero frame offsets of the source frames, written --sources=-2,2 (default "
                        "-1,1; -2,2 = twice the motion; -1 = the previous frame alone)")
    p.add_argument("--select", default="",
                   help="comma-separated actor ids of the drive's objects.json to pool apart as 'selected actors' "
                        "(e.g. the cars queued ahead in the queue world)")
    args = p.parse_args(argv)
    try:
        selected = frozenset(int(i) for i in args.select.split(",") if i.strip())
    except ValueError:
        p.error(f"--select must be comma-separated actor ids such as 28,29, got {args.select!r}")
    try:
        sizes = [arg_types.size(s) for s in args.sizes.split(",")]
    except argparse.ArgumentTypeError as exc:
        p.error(str(exc))
    if args.every < 1:
        p.error(f"--every must be ≥ 1, got {args.every}")
    try:
        sources = tuple(int(o) for o in args.sources.split(","))
    except ValueError:
        sources = ()
    if not valid_sources(sources):
        p.error(f"--sources must be distinct non-zero frame offsets such as -1,1 or -2,2, got {args.sources!r}")
    try:
        profiles = {size: drive_profile(args.data, args.folder, *size, every=args.every, sources=sources,
                                        selected=selected) for size in sizes}
    except ValueError as exc:
        p.error(str(exc))
    print(markdown(profiles))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
