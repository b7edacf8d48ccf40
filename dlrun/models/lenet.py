"""LeNet-5 as in the notes: conv 6@5x5 -> pool -> conv 16@5x5 -> pool -> 120 -> 84 -> classes.

Valid (no) padding, so a 1x28x28 input gives 6x24x24 after the first convolution (156 parameters).
"""

from __future__ import annotations

import torch
from torch import nn

from dlrun.errors import ConfigError
from dlrun.nn.activations import make_activation

MIN_SIZE = 16  # (16-4)//2 = 6, 6-4 = 2, 2//2 = 1: the smallest side that leaves a 1x1 map


def _conv_block(c_in: int, c_out: int, activation: str, pool: str, batchnorm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel_size=5)]
    if batchnorm:
        layers.append(nn.BatchNorm2d(c_out))
    layers += [make_activation(activation), nn.MaxPool2d(2) if pool == "max" else nn.AvgPool2d(2)]
    return layers


class LeNet5(nn.Module):
    def __init__(self, in_shape, num_classes: int, activation: str = "relu", pool: str = "max",
                 dropout: float = 0.0, batchnorm: bool = False):
        super().__init__()
        if len(in_shape) != 3:
            raise ConfigError("model", "lenet", f"needs image data [C, H, W]; this data has shape {list(in_shape)}")
        c, h, w = in_shape
        if min(h, w) < MIN_SIZE:
            raise ConfigError("model", "lenet", f"needs inputs of at least {MIN_SIZE}x{MIN_SIZE}; got {h}x{w}")
        if pool not in ("max", "avg"):
            raise ConfigError("model.pool", pool, "max or avg")
        self.features = nn.Sequential(
            *_conv_block(c, 6, activation, pool, batchnorm),
            *_conv_block(6, 16, activation, pool, batchnorm),
        )
        side = lambda n: ((n - 4) // 2 - 4) // 2  # two (conv 5x5 valid, pool 2) stages
        flat = 16 * side(h) * side(w)
        drop = [nn.Dropout(dropout)] if dropout else []
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, 120), make_activation(activation), *drop,
            nn.Linear(120, 84), make_activation(activation), *drop,
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
