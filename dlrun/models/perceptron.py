"""Rosenblatt's perceptron, trained by the lecture notes' rule w_new = w_old + alpha (y - yhat) x inside the one loop.

The model is one linear unit z = w.x + b followed by a step: yhat = 1 if z > 0 else 0. The step passes
gradients straight through (the notes derive the rule as if d yhat / dz = 1), and the criterion is
L = 1/2 (y - yhat)^2, so dL/dw = -(y - yhat) x. Plain SGD with learning rate alpha and batch size 1
(`loss=perceptron optimizer=sgd data.batch_size=1`) therefore performs exactly the notes' update
(with a bigger batch: the mean of the per-row updates). No second trainer.
"""

from __future__ import annotations

import logging
import math

import torch
from torch import nn

from dlrun.callbacks.base import Callback
from dlrun.errors import ConfigError
from dlrun.run_folder.run_record import FAILED

log = logging.getLogger("dlrun")


class _StraightThroughStep(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z):
        return (z > 0).to(z.dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad


class Perceptron(nn.Module):
    """One linear unit with a 0/1 step output; a binary classifier (metrics read output > 0 as class 1)."""

    def __init__(self, in_shape, num_classes: int, init="zeros", threshold: float | None = None):
        super().__init__()
        if num_classes not in (1, 2):  # two classes, or one output already (a loss such as bce asked for it)
            raise ConfigError("model", "perceptron",
                              f"is a binary classifier (one unit, step output); this data has {num_classes} classes")
        n = math.prod(in_shape)
        given = isinstance(init, (list, tuple))
        if not given and init not in ("zeros", "default"):
            raise ConfigError("model.init", init, "zeros (Rosenblatt's start), default (PyTorch's uniform) "
                                                  f"or a list of {n} starting weights")
        if given and (len(init) != n or not all(isinstance(v, (int, float)) for v in init)):
            raise ConfigError("model.init", list(init), f"a list of {n} numbers (one weight per input)")
        self.linear = nn.Linear(n, 1)
        with torch.no_grad():
            if init != "default":
                self.linear.weight.copy_(torch.tensor([list(init)]) if given else torch.zeros(1, n))
                self.linear.bias.zero_()
            if threshold is not None:  # the notes' fixed threshold: yhat = 1 if w.x > threshold (not learned)
                self.linear.bias.fill_(-float(threshold))
                self.linear.bias.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _StraightThroughStep.apply(self.linear(x.flatten(1))).view(-1)


class PerceptronCriterion(nn.Module):
    """L = mean of 1/2 (y - yhat)^2 over the batch: half the error rate, and the perceptron rule's gradient."""

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if output.dim() > 1 and output.shape[-1] != 1:
            raise ConfigError("loss", "perceptron", f"needs model=perceptron (one step output); the model gives "
                              f"{output.shape[-1]} outputs per sample")
        return 0.5 * (target.view(-1).to(output.dtype) - output.view(-1)).pow(2).mean()


def linearly_separable(x: torch.Tensor, y: torch.Tensor) -> bool:
    """Whether some (w, b) puts every class-1 row at w.x + b >= 1 and every class-0 row at <= -1
    (a linear-programming feasibility problem; any strict separation can be scaled to that margin)."""
    import numpy as np
    from scipy.optimize import linprog

    x = x.flatten(1).double().cpu().numpy()
    t = np.where(y.view(-1).cpu().numpy() > 0, 1.0, -1.0)
    a_ub = -t[:, None] * np.hstack([x, np.ones((len(x), 1))])  # -t (w.x + b) <= -1
    res = linprog(np.zeros(x.shape[1] + 1), A_ub=a_ub, b_ub=-np.ones(len(x)), bounds=(None, None), method="highs")
    return res.status == 0


class PerceptronReport(Callback):
    """At the end: log the learned weights and bias; when the training rows are not all right, say why."""

    def on_fit_end(self, loop, summary: dict) -> None:
        linear = getattr(loop.model, "linear", None)
        if not isinstance(loop.model, Perceptron) or summary["status"] == FAILED:
            return
        x, y = loop.data.train.x, loop.data.train.y
        with torch.no_grad():
            acc = (loop.model(x) == y.view(-1).to(x.dtype)).double().mean().item()
        weights = [round(v, 6) for v in linear.weight.view(-1).tolist()]
        bias = round(linear.bias.item(), 6)
        report = {"weights": weights, "bias": bias, "train_acc": acc}
        inputs = "standardised" if loop.run_config.data.get("standardize", True) else "raw"
        log.info("perceptron: learned weights %s, bias %s (on the %s inputs); training accuracy %.2f",
                 weights, bias, inputs, acc)
        if acc < 1.0:
            separable = linearly_separable(x, y)
            report["linearly_separable"] = separable
            if separable:
                report["reason"] = ("the training data is linearly separable, so more epochs would reach 100% "
                                    "(perceptron convergence theorem)")
            else:
                report["reason"] = ("the training data is not linearly separable: no line w.x + b = 0 puts the "
                                    "two classes on its two sides, so a single perceptron cannot reach 100%")
            log.warning("perceptron: %s", report["reason"])
        summary["perceptron"] = report
