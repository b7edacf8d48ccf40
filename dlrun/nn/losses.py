"""The losses of the lecture notes. Every model outputs raw scores; each loss applies its own output activation
(sigmoid for bce, softmax for the cross-entropies, none for the regression losses and hinge), in the
numerically stable fused form torch.nn.functional provides.

`bind(info)` pairs a loss with the data before anything trains: it rejects impossible pairings with a
message naming the losses that fit, fixes how many outputs the model needs, and how integer class
labels become the targets the loss compares with (integer -> one-hot -> +-1). Unbound, a loss takes its
targets as given (float tensors shaped like the output), which is what the unit tests use.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dlrun.config.schema import is_number
from dlrun.errors import ConfigError

REGRESSION = ("mse", "mae", "huber", "pseudo_huber")
# the loss group's keys, checked before anything is built (dlrun/config/schema.py validate): key -> (rule, allowed)
CONFIG_RULES = {"delta": (lambda v: is_number(v) and v > 0, "a number > 0")}  # huber, pseudo_huber


def fitting_losses(info) -> list[str]:
    """The loss= options that fit this data (for error messages)."""
    if info.task == "regression":
        return list(REGRESSION)
    multi = ["sparse_cce", "cce", "hinge", "bce (with loss.multi_label=true)", *REGRESSION]
    return ["bce", "sparse_cce", "cce", "hinge", *REGRESSION] if info.num_classes == 2 else multi


class Loss(nn.Module):
    """Mean loss of a batch of raw outputs against targets; `bind` adapts it to a dataset."""

    name = "loss"
    output_activation = "identity"  # what turns a raw output into the loss's prediction
    needs_labels = False  # classification-only losses

    def __init__(self):
        super().__init__()
        self.num_outputs: int | None = None  # the model's output width, set by bind
        self.target_form = "as_is"  # as_is | index | one_hot | binary | plus_minus_one

    def bind(self, info) -> "Loss":
        if info.task == "regression":
            if self.needs_labels:
                raise ConfigError("loss", self.name, f"needs class labels, but this data is regression (float targets); "
                                  f"losses that fit: {', '.join(fitting_losses(info))}")
            self.num_outputs, self.target_form = info.num_classes, "as_is"
        else:
            self.num_outputs, self.target_form = self._classification_form(info)
        return self

    def _classification_form(self, info) -> tuple[int, str]:
        """(outputs, target form) on integer labels of info.num_classes classes: one-hot by default."""
        return info.num_classes, "one_hot"

    def targets(self, target: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        form = self.target_form
        if form == "index":
            return target
        if form == "one_hot":
            return F.one_hot(target, output.shape[1]).to(output.dtype)
        if form == "binary":
            return target.view(-1, 1).to(output.dtype)
        if form == "plus_minus_one":
            t = F.one_hot(target, output.shape[1]) if output.shape[1] > 1 else target.view(-1, 1)
            return (2 * t - 1).to(output.dtype)
        return target.view_as(output) if target.numel() == output.numel() else target

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.compute(output, self.targets(target, output))

    def compute(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"outputs={self.num_outputs}, targets={self.target_form}"


# -- regression ------------------------------------------------------------------------------------------
class MSE(Loss):
    """(1/n) sum (y - y_hat)^2."""

    name = "mse"

    def compute(self, output, target):
        return F.mse_loss(output, target)


class MAE(Loss):
    """(1/n) sum |y - y_hat|."""

    name = "mae"

    def compute(self, output, target):
        return F.l1_loss(output, target)


class Huber(Loss):
    """1/2 r^2 where |r| <= delta, else delta (|r| - delta/2): quadratic near zero, linear for outliers."""

    name = "huber"

    def __init__(self, delta: float = 1.0):
        super().__init__()
        self.delta = delta

    def compute(self, output, target):
        return F.huber_loss(output, target, delta=self.delta)


class PseudoHuber(Huber):
    """delta^2 (sqrt(1 + (r/delta)^2) - 1): a smooth Huber (differentiable everywhere)."""

    name = "pseudo_huber"

    def compute(self, output, target):
        r = (output - target) / self.delta
        return (self.delta**2 * (torch.sqrt(1 + r * r) - 1)).mean()


# -- classification --------------------------------------------------------------------------------------
class BinaryCrossEntropy(Loss):
    """-[y log p + (1-y) log(1-p)], p = sigmoid(logit); one output for two classes, or one per class
    (one-vs-rest on one-hot targets) when multi_label is true."""

    name = "bce"
    output_activation = "sigmoid"
    needs_labels = True

    def __init__(self, multi_label: bool = False):
        super().__init__()
        self.multi_label = multi_label

    def _classification_form(self, info):
        if info.num_classes == 2 and not self.multi_label:
            return 1, "binary"
        if self.multi_label:
            return info.num_classes, "one_hot"
        raise ConfigError("loss", "bce", f"is binary but this data has {info.num_classes} classes; set "
                          f"loss.multi_label=true for one sigmoid per class, or use one of: {', '.join(fitting_losses(info))}")

    def compute(self, output, target):
        return F.binary_cross_entropy_with_logits(output, target)


class _SoftmaxLoss(Loss):
    """The cross-entropies over classes: a softmax output, labels, optional label smoothing."""

    output_activation = "softmax"
    needs_labels = True

    def __init__(self, label_smoothing: float = 0.0):
        super().__init__()
        self.label_smoothing = label_smoothing


class CategoricalCrossEntropy(_SoftmaxLoss):
    """-sum_j y_j log softmax(z)_j on one-hot (or, with label_smoothing, soft) targets."""

    name = "cce"

    def compute(self, output, target):
        if self.label_smoothing:
            target = target * (1 - self.label_smoothing) + self.label_smoothing / output.shape[1]
        return -(target * F.log_softmax(output, dim=1)).sum(dim=1).mean()


class SparseCategoricalCrossEntropy(_SoftmaxLoss):
    """Categorical cross-entropy on integer labels, without building the one-hot matrix."""

    name = "sparse_cce"

    def _classification_form(self, info):
        return info.num_classes, "index"

    def compute(self, output, target):
        return F.cross_entropy(output, target, label_smoothing=self.label_smoothing)


class Hinge(Loss):
    """max(0, 1 - y g) with y in {-1, +1}: one margin output for two classes; for more, one per class
    against +-1 one-hot targets (one-vs-rest, as Keras' `hinge`), averaged over classes."""

    name = "hinge"
    needs_labels = True

    def _classification_form(self, info):
        return (1 if info.num_classes == 2 else info.num_classes), "plus_minus_one"

    def compute(self, output, target):
        return F.relu(1 - target * output).mean()


def build_loss(node, info) -> nn.Module:
    """The loss of `node` (conf/loss/*.yaml), bound to the data when it is one of ours; any other
    criterion (a user's `_target_`, the perceptron's rule) is used as built."""
    from dlrun.config.schema import build

    loss = build(node, "loss")
    return loss.bind(info) if isinstance(loss, Loss) else loss


def model_info(loss, info):
    """The DataInfo to build the model from: num_classes becomes the output width the loss needs
    (one output for bce and hinge on two classes); any other loss keeps the data's class count."""
    import dataclasses

    n = getattr(loss, "num_outputs", None)
    return dataclasses.replace(info, num_classes=n) if n is not None else info
