"""ResNet feature extractor with skip outputs (SGDepth ``ResnetEncoder`` layout).

The torchvision ResNet lives in the attribute ``encoder`` so that state_dict keys read
``<prefix>.encoder.conv1.weight`` exactly as in the reference checkpoints. The classifier
(``fc``) is removed, so no ``fc.*`` keys exist. No input normalisation happens here: inputs
must already be ImageNet-normalised (see ``sgdepth_ros.preprocess``).
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision import models

RESNET_BUILDERS = {
    18: models.resnet18,
    34: models.resnet34,
    50: models.resnet50,
    101: models.resnet101,
    152: models.resnet152,
}


def encoder_channels(num_layers: int) -> tuple[int, int, int, int, int]:
    """Channel counts of the five encoder outputs (1/2, 1/4, 1/8, 1/16, 1/32 resolution)."""
    return (64, 64, 128, 256, 512) if num_layers <= 34 else (64, 256, 512, 1024, 2048)


class ResnetEncoder(nn.Module):
    """ResNet-{18,34,50,101,152} returning the five feature maps used by the decoders.

    Args:
        num_layers: ResNet depth.
        num_input_images: 1 for the depth/segmentation encoder, 2 for the pose encoder
            (frames concatenated on channels, ``conv1`` then takes 6 channels; its initial
            weights are the 3-channel ones tiled and divided by the number of images).

    Weights start random; checkpoints or the trainer's ImageNet initialisation fill them.
    """

    def __init__(self, num_layers: int = 18, num_input_images: int = 1):
        super().__init__()
        if num_layers not in RESNET_BUILDERS:
            raise ValueError(f"num_layers must be one of {sorted(RESNET_BUILDERS)}, got {num_layers}")
        self.encoder = RESNET_BUILDERS[num_layers](weights=None)
        if num_input_images != 1:
            # widen conv1 in place (no new module: the random-number sequence stays the reference's)
            conv1 = self.encoder.conv1
            conv1.weight = nn.Parameter(conv1.weight.detach().repeat(1, num_input_images, 1, 1) / num_input_images)
            conv1.in_channels = 3 * num_input_images
        self.encoder.fc = None
        self.num_ch_enc = encoder_channels(num_layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """x: [N, 3·k, H, W] normalised → (l0 @1/2, l1 @1/4, l2 @1/8, l3 @1/16, l4 @1/32)."""
        e = self.encoder
        l0 = e.relu(e.bn1(e.conv1(x)))
        l1 = e.layer1(e.maxpool(l0))
        l2 = e.layer2(l1)
        l3 = e.layer3(l2)
        l4 = e.layer4(l3)
        return l0, l1, l2, l3, l4
