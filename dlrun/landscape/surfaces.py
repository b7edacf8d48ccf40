"""The 2-D loss surfaces f(x, y) of `dlrun task=landscape landscape=NAME`.

Each is a plain function of two tensors that broadcast (a point, a path or a plotting grid), built
from torch operations so that autograd gives its gradient and Hessian. `landscape=custom` builds one
from `landscape.expr` (dlrun/landscape/expr.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from dlrun.errors import ConfigError


@dataclass(frozen=True)
class Surface:
    name: str
    f: Callable  # f(x, y) -> tensor, elementwise in x and y
    formula: str  # for titles and tables


def bowl(x, y):
    """An ill-conditioned quadratic: curvature 1 along x, 10 along y (condition number 10)."""
    return 0.5 * x**2 + 5.0 * y**2


def saddle(x, y):
    """Up along x, down along y: a saddle point at the origin, no minimum."""
    return x**2 - y**2


def rosenbrock(x, y):
    """A curved, flat-bottomed valley around the minimum (1, 1): easy to reach, slow to follow."""
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def himmelblau(x, y):
    """Four minima of value 0, one maximum and four saddle points."""
    return (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2


def bumpy(x, y):
    """A bowl with ripples (Rastrigin's function with amplitude 1): a local minimum near every integer point
    with |x|, |y| <= 2, the global one at (0, 0)."""
    return x**2 + y**2 + 2 - torch.cos(2 * math.pi * x) - torch.cos(2 * math.pi * y)


SURFACES = {
    "bowl": (bowl, "x²/2 + 5y²"),
    "saddle": (saddle, "x² − y²"),
    "rosenbrock": (rosenbrock, "(1 − x)² + 100(y − x²)²"),
    "himmelblau": (himmelblau, "(x² + y − 11)² + (x + y² − 7)²"),
    "bumpy": (bumpy, "x² + y² + 2 − cos 2πx − cos 2πy"),
}
NAMES = (*SURFACES, "custom")


def get_surface(name: str, expr: str | None = None) -> Surface:
    """The surface `landscape.surface` names; `custom` parses `landscape.expr` (ConfigError if unsafe)."""
    if name == "custom":
        from dlrun.landscape.expr import parse

        return Surface("custom", parse(expr), expr.strip())
    if name not in SURFACES:
        raise ConfigError("landscape.surface", name, f"one of {', '.join(NAMES)}")
    if expr:
        raise ConfigError("landscape.expr", expr, f"only used with landscape.surface=custom (this is {name})")
    f, formula = SURFACES[name]
    return Surface(name, f, formula)
