"""The activation registry every model uses: one name -> one nn.Module factory."""

from __future__ import annotations

from torch import nn

from dlrun.errors import ConfigError

ACTIVATIONS = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(negative_slope=0.01),
    "prelu": nn.PReLU,  # one learned slope, initialised at 0.25
    "elu": nn.ELU,
    "gelu": nn.GELU,
}


def make_activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ConfigError("model.activation", name, f"one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()
