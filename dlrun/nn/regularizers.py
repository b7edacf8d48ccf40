"""Regularization: weight penalties added to the training loss, and the model options (dropout,
batch norm) that regularize by changing the network.

`regularizer=` composes one key per choice (`regularizer=[l2,dropout]` gives {l2: ..., dropout: ...}):
entries with a `_target_` are penalties built here, `dropout` and `batchnorm` set model.dropout and
model.batchnorm. Penalties apply to the weights of Linear and Conv layers only: biases and batch-norm
parameters are not shrunk.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from dlrun.config.schema import is_number
from dlrun.errors import ConfigError
from dlrun.nn.initializers import weight_layers

# the keys of each regularizer=... entry, checked before anything is built (dlrun/config/schema.py validate)
CONFIG_RULES = {
    "strength": (lambda v: is_number(v) and v >= 0, "a number >= 0 (lambda)"),
    "alpha": (lambda v: is_number(v) and 0 <= v <= 1, "a number in [0, 1] (the l1 share)"),
    "p": (lambda v: is_number(v) and 0 <= v < 1, "a probability in [0, 1)"),  # dropout
}


class L1:
    """lambda sum |w| (Lasso): drives weights to exactly zero."""

    def __init__(self, strength: float = 1e-4):
        self.strength = strength

    def __call__(self, weights: list[torch.Tensor]) -> torch.Tensor:
        return self.strength * sum(w.abs().sum() for w in weights)


FORMS = ("standard", "notes")


def _check_form(key: str, form: str) -> str:
    if form not in FORMS:
        raise ConfigError(f"regularizer.{key}.form", form, "standard or notes")
    return form


class L2:
    """lambda sum w^2 (Ridge, weight decay): shrinks large weights. form=notes: the notes' ridge,
    1/2 lambda sum w^2 (its gradient is lambda w, the classic weight decay)."""

    def __init__(self, strength: float = 1e-4, form: str = "standard"):
        self.strength, self.form = strength, _check_form("l2", form)

    def __call__(self, weights: list[torch.Tensor]) -> torch.Tensor:
        scale = 0.5 if self.form == "notes" else 1.0
        return scale * self.strength * sum(w.pow(2).sum() for w in weights)


class ElasticNet:
    """lambda [alpha sum |w| + (1 - alpha)/2 sum w^2]: glmnet's and scikit-learn's mix of Lasso and Ridge
    (alpha = 1: l1, alpha = 0: half of l2). form=notes: the notes' lambda sum |w| + (1 - alpha)/2 sum w^2,
    where lambda weighs the L1 term only and alpha only shrinks the L2 term."""

    def __init__(self, strength: float = 1e-4, alpha: float = 0.5, form: str = "standard"):
        self.strength, self.alpha, self.form = strength, alpha, _check_form("elastic_net", form)

    def __call__(self, weights: list[torch.Tensor]) -> torch.Tensor:
        l1 = sum(w.abs().sum() for w in weights)
        l2 = sum(w.pow(2).sum() for w in weights)
        if self.form == "notes":
            return self.strength * l1 + (1 - self.alpha) / 2 * l2
        return self.strength * (self.alpha * l1 + (1 - self.alpha) / 2 * l2)


class Penalty:
    """The sum of the chosen penalties over a model's Linear/Conv weights: `penalty()` -> scalar tensor."""

    def __init__(self, model: torch.nn.Module, terms: list):
        self.weights = [m.weight for m in weight_layers(model)]
        self.terms = terms

    def __call__(self) -> torch.Tensor:
        return sum(term(self.weights) for term in self.terms)


# regularizers that are model options: regularizer key -> (model option, value from its config node)
MODEL_OPTIONS = {
    "dropout": ("dropout", lambda node: node.p),
    "batchnorm": ("batchnorm", lambda node: True),
}


def with_model_options(cfg: DictConfig) -> DictConfig:
    """A copy of `cfg` whose model.dropout / model.batchnorm are set from the regularizer group (`cfg` itself
    when it sets none); a run stores that copy, so its checkpoint rebuilds the same network. Fails if the
    model has no such option."""
    import copy

    options = {}
    for key, node in (cfg.get("regularizer") or {}).items():
        if key not in MODEL_OPTIONS:
            continue
        option, value = MODEL_OPTIONS[key]
        if option not in cfg.model:
            target = str(cfg.model.get("_target_", "?")).rsplit(".", 1)[-1]
            raise ConfigError("regularizer", key, f"the model ({target}) has no model.{option} option; "
                              f"use a penalty (l1, l2, elastic_net) or a model with one (mlp, lenet, ...)")
        options[option] = value(node)
    if not options:
        return cfg
    cfg = copy.deepcopy(cfg)
    for option, value in options.items():
        cfg.model[option] = value
    return cfg


def build_penalty(cfg: DictConfig, model: torch.nn.Module) -> Penalty | None:
    """The weight penalty of the regularizer group, or None when it chooses none."""
    from dlrun.config.schema import build

    terms = [build(node, f"regularizer.{key}") for key, node in (cfg.get("regularizer") or {}).items()
             if key not in MODEL_OPTIONS]
    return Penalty(model, terms) if terms else None
