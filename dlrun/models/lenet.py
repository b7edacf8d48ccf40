"""LeNet-5 as in the lecture notes: conv 6@5x5 -> pool -> conv 16@5x5 -> pool -> 120 -> 84 -> classes.

Valid (no) padding, so a 1x28x28 input gives 6x24x24 after the first convolution (156 parameters):
the notes' H' = (H + 2P - f)/s + 1 with P = 0. `model.padding=same` pads P = (f - 1)/2 = 2 and keeps 28x28.
"""

from __future__ import annotations

import torch
from torch import nn

from dlrun.errors import ConfigError
from dlrun.models.common import image_shape, require_size
from dlrun.nn.activations import activation_factory

MIN_SIZE = {"valid": 16, "same": 4}  # valid: (16-4)//2 = 6, 6-4 = 2, 2//2 = 1; same: 4//2//2 = 1
PADDING = {"valid": 0, "same": 2}  # P of the 5x5 convolutions: none, or (f - 1)/2 so that H' = H


def _conv_block(c_in: int, c_out: int, act, pool: str, batchnorm: bool, padding: int) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel_size=5, padding=padding)]
    if batchnorm:
        layers.append(nn.BatchNorm2d(c_out))
    layers += [act(), nn.MaxPool2d(2) if pool == "max" else nn.AvgPool2d(2)]
    return layers


class LeNet5(nn.Module):
    def __init__(self, in_shape, num_classes: int, activation: str = "relu", negative_slope: float = 0.01,
                 pool: str = "max", dropout: float = 0.0, batchnorm: bool = False, padding: str = "valid"):
        super().__init__()
        c, h, w = image_shape(in_shape, "lenet")
        if padding not in PADDING:
            raise ConfigError("model.padding", padding, "valid (no padding, the notes' LeNet) or same")
        require_size("lenet", h, w, MIN_SIZE[padding], f"two 5x5 {padding} convolutions and two 2x2 pools")
        if pool not in ("max", "avg"):
            raise ConfigError("model.pool", pool, "max or avg")
        act = activation_factory(activation, negative_slope)
        pad = PADDING[padding]
        self.features = nn.Sequential(
            *_conv_block(c, 6, act, pool, batchnorm, pad),
            *_conv_block(6, 16, act, pool, batchnorm, pad),
        )
        conv = lambda n: n + 2 * pad - 5 + 1  # (H + 2P - f)/s + 1, s = 1
        side = lambda n: conv(conv(n) // 2) // 2  # two (conv 5x5, pool 2) stages
        flat = 16 * side(h) * side(w)
        drop = [nn.Dropout(dropout)] if dropout else []
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, 120), act(), *drop,
            nn.Linear(120, 84), act(), *drop,
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
