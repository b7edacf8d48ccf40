"""A small VGG-style CNN for fast training: stages of (3x3 conv, batch norm, activation) x convs, 2x2 max pool.

The shape the speed-run literature uses on small images (e.g. Keller Jordan's airbench): few, narrow
stages with batch norm after every convolution, halving the resolution each stage, then the dense layers
(`hidden`, none by default, and the output layer).
With widths [32, 64, 128] on 1x28x28 it has 104 k parameters and costs about 2.5x LeNet-5's time per batch.
"""

from __future__ import annotations

import torch
from torch import nn

from dlrun.errors import ConfigError
from dlrun.models.common import image_shape, norms, require_size
from dlrun.nn.activations import activation_factory


DOWNSAMPLE = ("pool", "stride")
PADDING = {"same": 1, "valid": 0}  # P for a 3x3 convolution: same keeps H, valid takes 2 off (H + 2P - 3 + 1)


class ConvNet(nn.Module):
    def __init__(self, in_shape, num_classes: int, widths=(32, 64, 128), convs_per_stage: int = 1,
                 activation: str = "relu", negative_slope: float = 0.01, batchnorm: bool = True, dropout: float = 0.0,
                 padding: str = "same", hidden=(), downsample: str = "pool"):
        super().__init__()
        c, h, w = image_shape(in_shape, "convnet")
        widths = [int(x) for x in widths]
        if not widths or min(widths) < 1:
            raise ConfigError("model.widths", widths, "a non-empty list of channel counts >= 1")
        if convs_per_stage < 1:
            raise ConfigError("model.convs_per_stage", convs_per_stage, "an integer >= 1")
        if downsample not in DOWNSAMPLE:
            raise ConfigError("model.downsample", downsample, "pool (convolutions, then a 2x2 max pool) or stride "
                              "(the stage's first convolution has stride 2: a quarter of the work, no pool)")
        if padding not in PADDING:
            raise ConfigError("model.padding", padding, "same (P = 1: a 3x3 convolution keeps the size) or valid (P = 0)")
        require_size("convnet", h, w, 2 ** len(widths), f"{len(widths)} stages that each halve it")
        pad, size = PADDING[padding], (h, w)
        act = activation_factory(activation, negative_slope)
        layers: list[nn.Module] = []
        for width in widths:
            for i in range(convs_per_stage):
                stride = 2 if downsample == "stride" and i == 0 else 1
                # no bias before batch norm: its shift would be subtracted again
                layers += [nn.Conv2d(c, width, 3, stride=stride, padding=pad, bias=not batchnorm), *norms(width, batchnorm), act()]
                c, h, w = width, (h + 2 * pad - 3) // stride + 1, (w + 2 * pad - 3) // stride + 1  # the notes' (H + 2P - f)/s + 1
            if downsample == "pool":
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            if min(h, w) < 1:
                raise ConfigError("model.padding", padding, f"a {size[0]}x{size[1]} input is too small for {len(widths)} "
                                  "stages of valid 3x3 convolutions and 2x2 pools; use same (or fewer model.widths)")
        self.features = nn.Sequential(*layers)
        hidden = [int(x) for x in hidden]
        if hidden and min(hidden) < 1:
            raise ConfigError("model.hidden", hidden, "a list of dense layer widths >= 1 (or [] for none)")
        head: list[nn.Module] = [nn.Flatten()]
        n = c * h * w
        for width in hidden:  # dense hidden layers: capacity at a cost per image far below a convolution's
            head += [nn.Linear(n, width), act()]
            n = width
        self.classifier = nn.Sequential(*head, *([nn.Dropout(dropout)] if dropout else []), nn.Linear(n, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
