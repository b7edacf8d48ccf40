"""Multi-layer perceptron: Flatten -> [Linear -> (BatchNorm) -> activation -> (Dropout)]* -> Linear."""

from __future__ import annotations

import math

from torch import nn

from dlrun.nn.activations import make_activation


class MLP(nn.Sequential):
    def __init__(self, in_shape, num_classes: int, hidden=(256, 128), activation: str = "relu",
                 dropout: float = 0.0, batchnorm: bool = False):
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(in_shape)
        for h in hidden:
            layers.append(nn.Linear(width, h))
            if batchnorm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(make_activation(activation))
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, num_classes))
        super().__init__(*layers)
