"""VGG (Simonyan & Zisserman 2014): stacks of 3x3 'same' convolutions, a 2x2 max pool after each stage,
then 4096 -> 4096 -> classes. `depth` picks configuration A (11), B (13), D (16) or E (19).

On 3x224x224 input the five pools leave 512x7x7 and the counts equal torchvision's vgg11..vgg19
(and vgg*_bn with `batchnorm=true`). Inputs below 32x32 (MNIST's 28) drop the last pool, so that
the map stays at least 1x1; the smallest accepted input is 16x16.
"""

from __future__ import annotations

import torch
from torch import nn

from dlrun.models.common import check_depth, image_shape, norms, require_size, scaled
from dlrun.nn.activations import activation_factory

# convolutions per stage; stage widths are 64, 128, 256, 512, 512
STAGES = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
WIDTHS = (64, 128, 256, 512, 512)
MIN_SIZE = 16  # four 2x2 pools
FULL_SIZE = 32  # five 2x2 pools


class VGG(nn.Module):
    def __init__(self, in_shape, num_classes: int, depth: int = 16, activation: str = "relu",
                 negative_slope: float = 0.01, dropout: float = 0.5, batchnorm: bool = False,
                 width_mult: float = 1.0):
        super().__init__()
        c, h, w = image_shape(in_shape, "vgg")
        check_depth(depth, STAGES)
        require_size("vgg", h, w, MIN_SIZE, "four 2x2 poolings")
        act = activation_factory(activation, negative_slope)
        n_pools = 5 if min(h, w) >= FULL_SIZE else 4
        layers: list[nn.Module] = []
        c_in = c
        for stage, (n_convs, width) in enumerate(zip(STAGES[depth], WIDTHS)):
            c_out = scaled(width, width_mult)
            for _ in range(n_convs):
                # torchvision keeps the conv bias even before batch norm; so do we, for equal counts
                layers += [nn.Conv2d(c_in, c_out, kernel_size=3, padding=1), *norms(c_out, batchnorm), act()]
                c_in = c_out
            if stage < n_pools:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        fc = scaled(4096, width_mult)
        drop = lambda: [nn.Dropout(dropout)] if dropout else []
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c_in * (h >> n_pools) * (w >> n_pools), fc), act(), *drop(),
            nn.Linear(fc, fc), act(), *drop(),
            nn.Linear(fc, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
