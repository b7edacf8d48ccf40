"""Weight initialisation of the lecture notes, applied to every Linear and Conv layer of a model (biases zero).

The schemes themselves are torch.nn.init functions named in conf/initializer/*.yaml (`_partial_: true`,
so the config holds the scale and `init(weight)` fills a tensor); `initializer=default` leaves PyTorch's
own initialisation alone. The notes' vanilla Xavier (Var = 1/n_in) has no torch function: it is written here.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

# the layers that carry weights an initializer sets and a penalty regularizes
WEIGHT_LAYERS = (nn.Linear, nn.modules.conv._ConvNd)


def fan_in(weight: torch.Tensor) -> int:
    """Inputs feeding one output unit: in_features of a Linear, in_channels x kernel area of a Conv."""
    return weight.shape[1] * weight[0][0].numel() if weight.dim() > 1 else weight.shape[0]


@torch.no_grad()
def xavier_vanilla_(weight: torch.Tensor, gain: float = 1.0, distribution: str = "normal") -> torch.Tensor:
    """The notes' vanilla Xavier: Var(w) = gain^2 / n_in, as N(0, gain^2/n_in) or U(-r, r) with r = gain sqrt(3/n_in).

    Glorot's normalized form (torch's xavier_*_) averages fan_in and fan_out instead: Var = 2/(n_in + n_out).
    """
    std = gain / fan_in(weight) ** 0.5
    if distribution == "normal":
        return weight.normal_(0.0, std)
    if distribution == "uniform":
        return weight.uniform_(-(3**0.5) * std, (3**0.5) * std)
    from dlrun.errors import ConfigError

    raise ConfigError("initializer.distribution", distribution, "normal or uniform")


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
