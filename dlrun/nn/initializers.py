"""Weight initialisation of the notes, applied to every Linear and Conv layer of a model (biases zero).

The schemes themselves are torch.nn.init functions named in conf/initializer/*.yaml (`_partial_: true`,
so the config holds the scale and `init(weight)` fills a tensor); `initializer=default` leaves PyTorch's
own initialisation alone.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

# the layers that carry weights an initializer sets and a penalty regularizes
WEIGHT_LAYERS = (nn.Linear, nn.modules.conv._ConvNd)


def weight_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, WEIGHT_LAYERS)]


@torch.no_grad()
def initialize(model: nn.Module, init: Callable[[torch.Tensor], object]) -> int:
    """init(weight) for every Linear/Conv layer, biases to zero; returns how many layers it set."""
    layers = weight_layers(model)
    for m in layers:
        init(m.weight)
        if m.bias is not None:
            m.bias.zero_()
    return len(layers)
