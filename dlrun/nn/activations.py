"""The activation registry every model uses: one name -> one nn.Module factory.

Models output raw scores (logits); a softmax or sigmoid belongs to the loss that wants
probabilities (torch's cross-entropy and BCE-with-logits apply them inside, stably), so no
output activation is listed here.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from dlrun.errors import ConfigError

ACTIVATIONS: dict[str, Callable[[float], nn.Module]] = {
    "sigmoid": lambda slope: nn.Sigmoid(),
    "tanh": lambda slope: nn.Tanh(),
    "relu": lambda slope: nn.ReLU(),
    "leaky_relu": lambda slope: nn.LeakyReLU(negative_slope=slope),  # the notes' 0.01 x for x < 0
    "prelu": lambda slope: nn.PReLU(init=0.25),  # one learned slope per layer (He et al.'s initial 0.25)
    "elu": lambda slope: nn.ELU(),
    "gelu": lambda slope: nn.GELU(),
    "linear": lambda slope: nn.Identity(),  # no activation: the notes' forward-propagation network N1, N2 -> y_hat
}


def activation_factory(name: str, negative_slope: float = 0.01) -> Callable[[], nn.Module]:
    """Check the name once and return a maker of fresh modules (a PReLU needs its own slope per layer)."""
    if name not in ACTIVATIONS:
        raise ConfigError("model.activation", name, f"one of {', '.join(ACTIVATIONS)}")
    if not 0.0 <= negative_slope < 1.0:
        raise ConfigError("model.negative_slope", negative_slope, "a number in [0, 1)")
    make = ACTIVATIONS[name]
    return lambda: make(negative_slope)
