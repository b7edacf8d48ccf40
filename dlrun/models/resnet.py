"""ResNet (He et al. 2015) as in the lecture notes: y = act(F(x) + shortcut(x)).

F is a basic block (3x3 conv -> BN -> act -> 3x3 conv -> BN) or a bottleneck (1x1 -> 3x3 -> 1x1,
four times wider out). The shortcut is the identity when the shape is kept, and a 1x1 convolution
(+ BN) when a stage downsamples with stride 2 or changes the width (the notes' downsample=True).

- ImageNet style, depth 18, 34 (basic) and 50, 101, 152 (bottleneck): 7x7/2 stem + 3x3/2 max pool,
  stages of 64, 128, 256, 512 channels. On 3x224x224 the counts equal torchvision's resnet*.
  Inputs below 64x64 get the small stem instead (one 3x3/1 convolution, no pool).
- CIFAR style, depth 8, 14, 20, 32, 44, 56, 110 (6n+2): 3x3 stem, three stages of n basic blocks with
  16, 32, 64 channels.
Both end with global average pooling and one dense layer. `model.shortcut=false` drops every shortcut:
the same layers as a plain deep network (He et al.'s "plain" baseline), y = act(F(x)).
"""

from __future__ import annotations

import torch
from torch import nn

from dlrun.errors import ConfigError
from dlrun.models.common import check_depth, choose_stem, image_shape, norms, require_size, scaled
from dlrun.nn.activations import activation_factory


def _conv(c_in: int, c_out: int, k: int, stride: int, batchnorm: bool) -> list[nn.Module]:
    # no conv bias before batch norm (it would be cancelled by the mean subtraction)
    return [nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=not batchnorm), *norms(c_out, batchnorm)]


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, c_in: int, width: int, stride: int, act, batchnorm: bool, shortcut: bool = True):
        super().__init__()
        c_out = width * self.expansion
        self.residual = nn.Sequential(*_conv(c_in, width, 3, stride, batchnorm), act(),
                                      *_conv(width, c_out, 3, 1, batchnorm))
        self.shortcut = _shortcut(c_in, c_out, stride, batchnorm) if shortcut else None
        self.act = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.residual(x)
        return self.act(y if self.shortcut is None else y + self.shortcut(x))


class Bottleneck(BasicBlock):
    expansion = 4

    def __init__(self, c_in: int, width: int, stride: int, act, batchnorm: bool, shortcut: bool = True):
        nn.Module.__init__(self)
        c_out = width * self.expansion
        # stride on the 3x3 convolution, as torchvision's "ResNet v1.5"
        self.residual = nn.Sequential(*_conv(c_in, width, 1, 1, batchnorm), act(),
                                      *_conv(width, width, 3, stride, batchnorm), act(),
                                      *_conv(width, c_out, 1, 1, batchnorm))
        self.shortcut = _shortcut(c_in, c_out, stride, batchnorm) if shortcut else None
        self.act = act()


def _shortcut(c_in: int, c_out: int, stride: int, batchnorm: bool) -> nn.Module:
    if stride == 1 and c_in == c_out:
        return nn.Identity()
    return nn.Sequential(*_conv(c_in, c_out, 1, stride, batchnorm))  # 1x1 projection


IMAGENET = {18: (BasicBlock, (2, 2, 2, 2)), 34: (BasicBlock, (3, 4, 6, 3)), 50: (Bottleneck, (3, 4, 6, 3)),
            101: (Bottleneck, (3, 4, 23, 3)), 152: (Bottleneck, (3, 8, 36, 3))}
CIFAR = {8: 1, 14: 2, 20: 3, 32: 5, 44: 7, 56: 9, 110: 18}  # depth = 6n + 2


class ResNet(nn.Module):
    def __init__(self, in_shape, num_classes: int, depth: int = 20, activation: str = "relu",
                 negative_slope: float = 0.01, dropout: float = 0.0, batchnorm: bool = True, stem: str = "auto",
                 width_mult: float = 1.0, shortcut: bool = True):
        super().__init__()
        c, h, w = image_shape(in_shape, "resnet")
        check_depth(depth, [*IMAGENET, *CIFAR])
        act = activation_factory(activation, negative_slope)
        self.stem_kind = choose_stem(stem, min(h, w), imagenet_min=32)
        if depth in CIFAR:
            if stem == "imagenet":
                raise ConfigError("model.stem", stem, f"auto or small: depth {depth} is a CIFAR-style ResNet")
            self.stem_kind = "small"
            block, counts, widths = BasicBlock, (CIFAR[depth],) * 3, (16, 32, 64)
        else:
            block, counts = IMAGENET[depth]
            widths = (64, 128, 256, 512)
        widths = [scaled(n, width_mult) for n in widths]
        if self.stem_kind == "imagenet":
            stem_layers = [*_conv(c, widths[0], 7, 2, batchnorm), act(), nn.MaxPool2d(3, stride=2, padding=1)]
            downsamplings = 2 + len(widths) - 1
        else:
            stem_layers = [*_conv(c, widths[0], 3, 1, batchnorm), act()]
            downsamplings = len(widths) - 1
        minimum = 2**downsamplings
        require_size("resnet", h, w, minimum, f"each of its {downsamplings} stride-2 steps halves the side")
        self.stem = nn.Sequential(*stem_layers)

        stages, c_in = [], widths[0]
        for i, (n_blocks, width) in enumerate(zip(counts, widths)):
            blocks = []
            for j in range(n_blocks):
                blocks.append(block(c_in, width, 2 if (i > 0 and j == 0) else 1, act, batchnorm, shortcut))
                c_in = width * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        drop = [nn.Dropout(dropout)] if dropout else []
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), *drop, nn.Linear(c_in, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))
