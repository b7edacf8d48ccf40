"""Multi-layer perceptron: Flatten -> [Linear -> (BatchNorm) -> activation -> (Dropout)]* -> Linear."""

from __future__ import annotations

import math

from torch import nn

from dlrun.errors import ConfigError
from dlrun.nn.activations import activation_factory


class MLP(nn.Sequential):
    def __init__(self, in_shape, num_classes: int, hidden=(256, 128), activation: str = "relu",
                 negative_slope: float = 0.01, dropout: float = 0.0, batchnorm: bool = False):
        hidden = list(hidden or [])
        if not all(isinstance(h, int) and h >= 1 for h in hidden):
            raise ConfigError("model.hidden", hidden, "a list of layer widths, integers >= 1 (e.g. [256,128])")
        act = activation_factory(activation, negative_slope)
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(in_shape)
        for h in hidden:
            layers.append(nn.Linear(width, h))
            if batchnorm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(act())
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, num_classes))
        super().__init__(*layers)
