"""AlexNet in the lecture notes' original design (Krizhevsky et al. 2012, on one device, no channel groups).

conv 96@11x11/4 -> pool 3/2 -> conv 256@5x5 (pad 2) -> pool 3/2 -> conv 384@3x3 -> conv 384@3x3
-> conv 256@3x3 -> pool 3/2 -> 4096 -> 4096 -> classes. On 3x227x227 input the maps are
55, 27, 27, 13, 13, 13, 13, 6 pixels wide and the network has 62,378,344 parameters.
(torchvision's AlexNet is the later 64-filter "one weird trick" variant, with other counts.)
The original's local response normalisation has no parameters and is left out; `batchnorm=true`
puts batch normalisation after each convolution instead.

Inputs below 67x67 (MNIST, CIFAR) get a small stem: the 11x11 stride-4 convolution becomes a 3x3
stride-1 one, so the three 3/2 poolings still leave at least a 1x1 map (down to 15x15 inputs).
"""

from __future__ import annotations

import torch
from torch import nn

from dlrun.models.common import choose_stem, image_shape, norms, require_size, scaled
from dlrun.nn.activations import activation_factory

IMAGENET_MIN = 67  # (67-11)//4+1 = 15 -> pools 7, 3, 1
SMALL_MIN = 15  # 15 -> pools 7, 3, 1


def _pool(n: int) -> int:  # max pooling 3x3, stride 2
    return (n - 3) // 2 + 1


class AlexNet(nn.Module):
    def __init__(self, in_shape, num_classes: int, activation: str = "relu", negative_slope: float = 0.01,
                 dropout: float = 0.5, batchnorm: bool = False, stem: str = "auto", width_mult: float = 1.0):
        super().__init__()
        c, h, w = image_shape(in_shape, "alexnet")
        self.stem_kind = choose_stem(stem, min(h, w), IMAGENET_MIN)
        if self.stem_kind == "imagenet":
            require_size("alexnet", h, w, IMAGENET_MIN, "the 11x11 stride-4 stem and three 3x3 stride-2 poolings")
            first = dict(kernel_size=11, stride=4)
            side = lambda n: _pool(_pool(_pool((n - 11) // 4 + 1)))
        else:
            require_size("alexnet", h, w, SMALL_MIN, "three 3x3 stride-2 poolings")
            first = dict(kernel_size=3, stride=1, padding=1)
            side = lambda n: _pool(_pool(_pool(n)))
        act = activation_factory(activation, negative_slope)
        n1, n2, n3, n4, n5 = (scaled(n, width_mult) for n in (96, 256, 384, 384, 256))
        bias = not batchnorm  # a bias before batch norm is cancelled by its mean subtraction

        def conv(c_in, c_out, **kw):
            return [nn.Conv2d(c_in, c_out, bias=bias, **kw), *norms(c_out, batchnorm), act()]

        self.features = nn.Sequential(
            *conv(c, n1, **first), nn.MaxPool2d(3, 2),
            *conv(n1, n2, kernel_size=5, padding=2), nn.MaxPool2d(3, 2),
            *conv(n2, n3, kernel_size=3, padding=1),
            *conv(n3, n4, kernel_size=3, padding=1),
            *conv(n4, n5, kernel_size=3, padding=1), nn.MaxPool2d(3, 2),
        )
        fc = scaled(4096, width_mult)
        drop = lambda: [nn.Dropout(dropout)] if dropout else []
        self.classifier = nn.Sequential(
            nn.Flatten(),
            *drop(), nn.Linear(n5 * side(h) * side(w), fc), act(),
            *drop(), nn.Linear(fc, fc), act(),
            nn.Linear(fc, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
