"""The network as the trainer runs it: one joint forward through the shared encoder (what DDP wraps), ImageNet
initialisation from torchvision's local cache, and the eval-mode segmentation the masking needs."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from sgdepth_ros.backends import InferenceGraph
from sgdepth_ros.model import SGDepth
from sgdepth_ros.postprocess import disparity_to_depth
from sgdepth_ros.preprocess import IMAGENET_MEAN, IMAGENET_STD

LOG = logging.getLogger(__name__)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """[N,3,H,W] RGB in [0,1] → ImageNet-normalised (what the encoder expects; it does not normalise itself)."""
    mean = torch.as_tensor(IMAGENET_MEAN, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    std = torch.as_tensor(IMAGENET_STD, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    return (images - mean) / std


class JointOutput(NamedTuple):
    """disparities[s]: [B,1,H/2^s,W/2^s]; seg_logits: [S,20,H,W] or None; poses[f]: [B,4,4] target → frame f."""

    disparities: tuple[torch.Tensor, ...]
    seg_logits: torch.Tensor | None
    poses: dict[int, torch.Tensor]


class JointNetwork(nn.Module):
    """Runs SGDepth as in training: the depth batch's current frames and the segmentation batch are concatenated
    through the shared part (batch norm sees both), split again for the task tails; the pose net runs on the
    depth batch's frame pairs in temporal order (prev, cur) and (cur, next)."""

    def __init__(self, model: SGDepth):
        super().__init__()
        self.model = model

    def forward(self, frames: dict[int, torch.Tensor], seg_images: torch.Tensor | None = None) -> JointOutput:
        """frames: {offset: [B,3,H,W] normalised}, offset 0 the target; seg_images: [S,3,H,W] normalised or None."""
        current = frames[0]
        b = current.shape[0]
        x = current if seg_images is None else torch.cat((current, seg_images), 0)
        depth_slots, seg_slots = self.model.common(x)
        disparities = self.model.depth(tuple(s[:b] for s in depth_slots))
        seg_logits = None if seg_images is None else self.model.seg(tuple(s[b:] for s in seg_slots))
        poses = {}
        for offset, frame in frames.items():
            if offset < 0:
                poses[offset] = self.model.pose(frame, current, invert=True)
            elif offset > 0:
                poses[offset] = self.model.pose(current, frame, invert=False)
        return JointOutput(tuple(disparities), seg_logits, poses)


@torch.no_grad()
def segment(model: SGDepth, images: torch.Tensor) -> torch.Tensor:
    """Eval-mode, no-grad trainIds [N,H,W] (argmax over the 19 trained classes; the void channel never wins) of
    normalised images [N,3,H,W]; the model's train/eval mode is restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        (labels,) = InferenceGraph(model, ("segmentation",))(images)  # the node's own void-channel rule
    finally:
        model.train(was_training)
    return labels


def _cached_resnet_weights(num_layers: int) -> Path | None:
    """torchvision's ImageNet weights for ResNet-{num_layers} in the local torch hub cache, if present."""
    from torchvision import models

    weights = getattr(models, f"ResNet{num_layers}_Weights").IMAGENET1K_V1
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    legacy = {18: "resnet18-5c106cde.pth", 34: "resnet34-333f7ec4.pth", 50: "resnet50-19c8e357.pth"}
    for name in (Path(weights.url).name, legacy.get(num_layers, "")):
        if name and (folder / name).is_file():
            return folder / name
    return None


def load_imagenet_encoders(model: SGDepth, num_layers: int) -> Path | None:
    """Initialise the shared encoder and the pose encoder from cached ImageNet weights (pose conv1 tiled over the
    two frames and halved, spec §1.2). Returns the file used, or None (nothing changed) when none is cached."""
    path = _cached_resnet_weights(num_layers)
    if path is None:
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    model.common.encoder.encoder.load_state_dict(state, strict=True)
    if model.pose is not None:
        pose_state = dict(state)
        pose_state["conv1.weight"] = state["conv1.weight"].repeat(1, 2, 1, 1) / 2
        model.pose.encoder.encoder.load_state_dict(pose_state, strict=True)
    return path


def _disparity(depth: np.ndarray, depth_range: tuple[float, float]) -> np.ndarray:
    """Depth in model units → the normalised disparity in (0,1) whose :func:`disparity_to_depth` it is."""
    lo, hi = depth_range
    return (1.0 / depth - 1.0 / hi) / (1.0 / lo - 1.0 / hi)


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


def refit_depth_heads(model: SGDepth, old: tuple[float, float], new: tuple[float, float],
                      span: float = 20.0) -> float:
    """Move a trained network to another depth range (min_depth, max_depth) keeping its depth nearly unchanged.

    The depth heads end in a sigmoid, so the network can never predict nearer than its ``min_depth``: a model whose
    scale put that floor at 5.9 m cannot see a car 3 m away. A smaller ``min_depth`` lowers the floor, but the same
    sigmoid output then means another depth; no change of the heads' weights undoes that exactly. This one is the
    best affine change of the heads' logits (weights·a, bias·a + b: least squares on the logits over depths
    log-spaced from the old floor to ``span``× it, clipped to both ranges); the fine-tune that follows repairs the
    rest. → the mean |log(new depth / old depth)| over those depths (0 = exact)."""
    lo = max(old[0], new[0]) * 1.02
    hi = min(old[1], new[1], span * old[0]) * 0.98
    if not lo < hi:
        raise ValueError(f"depth ranges {old} and {new} do not overlap near the old floor")
    depth = np.geomspace(lo, hi, 256)
    z_old, z_new = _logit(_disparity(depth, old)), _logit(_disparity(depth, new))
    (a, b), *_ = np.linalg.lstsq(np.stack([z_old, np.ones_like(z_old)], 1), z_new, rcond=None)
    with torch.no_grad():
        for conv in model.depth.multires.convs:
            conv.weight.mul_(float(a))
            conv.bias.mul_(float(a)).add_(float(b))
    refit = disparity_to_depth(1.0 / (1.0 + np.exp(-(a * z_old + b))), *new)
    return float(np.mean(np.abs(np.log(refit / depth))))


def load_initial_weights(model: SGDepth, path: str | Path,
                         depth_range: tuple[float, float] | None = None) -> str:
    """Start ``model`` from a trained network: a released SGDepth ``model.pth`` or an sgdepth_ros ``.safetensors``
    (read without executing code; fp16 files are widened to fp32). The depth and segmentation network (shared
    encoder, decoders, heads) must match the run's architecture exactly; the pose network is taken when the file
    holds one of the run's depth, else it keeps its own initialisation (exported inference files carry no pose
    network). ``depth_range``: the run's (min_depth, max_depth); when the file's differs, the depth heads are moved
    to the run's (:func:`refit_depth_heads`). Raises ``CheckpointError`` naming the file. → a line saying what was
    loaded."""
    from sgdepth_ros.model.checkpoint import CheckpointError, file_sha256, load_checkpoint

    trained = load_checkpoint(path)  # read once, strictly: every key the file holds fits the network it describes
    have, mine = trained.config, model.config
    if (have.num_layers, have.split_pos, have.depth_scales) != (mine.num_layers, mine.split_pos, mine.depth_scales):
        raise CheckpointError(f"{path}: holds {have.to_dict()}, but the run trains {mine.to_dict()}")
    take_pose = have.pose_layers is not None and have.pose_layers == mine.pose_layers
    model.load_state_dict({k: v for k, v in trained.state_dict().items() if take_pose or not k.startswith("pose.")},
                          strict=False)  # the depth/segmentation keys are all there: same architecture
    if take_pose:
        pose_note = "pose network too"
    else:
        pose_note = ("no pose network in the file: pose from its own initialisation" if have.pose_layers is None
                     else f"pose network of ResNet-{have.pose_layers} not taken (the run's is "
                          f"ResNet-{mine.pose_layers})")
    note = f"weights from {path} (sha256 {file_sha256(path)[:12]}…; {pose_note})"
    have_range = (float(trained.metadata["min_depth"]), float(trained.metadata["max_depth"]))
    if depth_range is not None and tuple(map(float, depth_range)) != have_range:
        error = refit_depth_heads(model, have_range, depth_range)
        note += (f"; depth heads refit from its depth range {have_range[0]:g}–{have_range[1]:g} to the run's "
                 f"{depth_range[0]:g}–{depth_range[1]:g} (mean |log depth change| {error:.3f})")
    return note


def build_model(num_layers: int, split_pos: int, depth_scales: int, grad_scales: tuple[float, float],
                pretrained: str, init_weights: str | None = None,
                depth_range: tuple[float, float] | None = None) -> tuple[SGDepth, str]:
    """A fresh training network and a line saying how its encoders were initialised.

    pretrained: "auto" (ImageNet if cached, else scratch with a loud warning), "imagenet" (error when not cached),
    "scratch". ``init_weights``: a trained network's file, loaded over that initialisation
    (:func:`load_initial_weights`, with the run's ``depth_range``); the line then names both."""
    model, note = _initialised_model(num_layers, split_pos, depth_scales, grad_scales, pretrained)
    if init_weights is None:
        return model, note
    return model, f"{note}; then {load_initial_weights(model, init_weights, depth_range)}"


def _initialised_model(num_layers: int, split_pos: int, depth_scales: int, grad_scales: tuple[float, float],
                       pretrained: str) -> tuple[SGDepth, str]:
    model = SGDepth(num_layers, split_pos, depth_scales, pose_layers=num_layers, grad_scales=grad_scales)
    if pretrained == "scratch":
        return model, "encoders from scratch (as requested)"
    path = load_imagenet_encoders(model, num_layers)
    if path is not None:
        return model, f"encoders initialised from ImageNet weights {path}"
    where = Path(torch.hub.get_dir()) / "checkpoints"
    if pretrained == "imagenet":
        raise FileNotFoundError(f"ImageNet weights for ResNet-{num_layers} are not in {where}; put torchvision's "
                                "file there, or use --pretrained scratch")
    LOG.warning("!" * 100)
    LOG.warning("NO ImageNet weights for ResNet-%d in %s: training the encoders FROM SCRATCH. Expect clearly worse "
                "depth (monodepth2 reports AbsRel 0.132 vs 0.115 on KITTI). Copy torchvision's file there to fix.",
                num_layers, where)
    LOG.warning("!" * 100)
    return model, f"encoders from scratch: no ImageNet weights in {where}"
