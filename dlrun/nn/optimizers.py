"""Optimizers of the lecture notes. torch.optim computes gd, sgd, nesterov, adagrad, rmsprop, adam and adamw
(see conf/optimizer/*.yaml); the notes' momentum is written here, because torch.optim.SGD's
momentum differs from it: SGD keeps b = mu b + g (its first step sets b = g, undamped), the notes keep
an exponential average m_t = beta m_{t-1} + (1 - beta) g_t with m_0 = 0.

Adagrad, RMSProp and Adam divide by sqrt(v) + eps in torch; the notes write sqrt(v + eps). The factories
`adagrad`, `rmsprop` and `adam` give torch's optimizer by default and the notes' form with
`optimizer.eps_inside_sqrt=true` (the `RootEps*` classes below). The two differ only where v is near eps.
"""

from __future__ import annotations

import torch
from torch.optim import Optimizer

from dlrun.config.schema import is_number

# the optimizer group's keys, checked before anything is built (dlrun/config/schema.py validate): key -> (rule, allowed)
CONFIG_RULES = {
    "lr": (lambda v: is_number(v) and v > 0, "a number > 0"),
    "weight_decay": (lambda v: is_number(v) and v >= 0, "a number >= 0"),
    "beta": (lambda v: is_number(v) and 0 <= v < 1, "a number in [0, 1)"),  # Momentum
    "head_lr_mult": (lambda v: is_number(v) and v > 0, "a number > 0 (the head's lr = lr * mult)"),
}


class _EachParameter(Optimizer):
    """One step: every parameter's gradient g (+ weight_decay w: L2, coupled) handed to `_update`."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    g = p.grad if group["weight_decay"] == 0 else p.grad.add(p, alpha=group["weight_decay"])
                    self._update(p, g, self.state[p], group)
        return loss


class Momentum(_EachParameter):
    """m_t = beta m_{t-1} + (1 - beta) g_t;  w <- w - lr m_t;  m_0 = 0.

    The same iterates as torch.optim.SGD(momentum=beta, dampening=0) with lr (1 - beta) * lr, but with the
    lr the notes (and a schedule, and the log) speak of. weight_decay adds weight_decay * w to g (L2, coupled).
    """

    def __init__(self, params, lr: float = 0.01, beta: float = 0.9, weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, beta=beta, weight_decay=weight_decay))

    def _update(self, p, g, state, group):
        if "m" not in state:
            state["m"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["m"].mul_(group["beta"]).add_(g, alpha=1 - group["beta"])
        p.add_(state["m"], alpha=-group["lr"])


class _RootEps(_EachParameter):
    """The notes' adaptive optimizers: state m, v and the step count t per parameter."""

    def _update(self, p, g, state, group):
        if not state:
            state["step"] = 0
            state["v"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["m"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["step"] += 1
        self._rule(p, g, state, group)


class RootEpsAdagrad(_RootEps):
    """The notes' Adagrad: V_t = V_{t-1} + g^2;  w <- w - lr g / sqrt(V_t + eps)."""

    def __init__(self, params, lr: float = 0.01, eps: float = 1e-10, weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, eps=eps, weight_decay=weight_decay))

    def _rule(self, p, g, state, group):
        state["v"].addcmul_(g, g)
        p.addcdiv_(g, state["v"].add(group["eps"]).sqrt_(), value=-group["lr"])


class RootEpsRMSprop(_RootEps):
    """The notes' RMSProp: v_t = beta v_{t-1} + (1 - beta) g^2;  w <- w - lr g / sqrt(v_t + eps) (alpha = beta)."""

    def __init__(self, params, lr: float = 0.001, alpha: float = 0.9, eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay))

    def _rule(self, p, g, state, group):
        state["v"].mul_(group["alpha"]).addcmul_(g, g, value=1 - group["alpha"])
        p.addcdiv_(g, state["v"].add(group["eps"]).sqrt_(), value=-group["lr"])


class RootEpsAdam(_RootEps):
    """The notes' Adam: m_t, v_t as in Adam, m_hat = m_t/(1 - b1^t), v_hat = v_t/(1 - b2^t);
    w <- w - lr m_hat / sqrt(v_hat + eps)."""

    def __init__(self, params, lr: float = 0.001, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def _rule(self, p, g, state, group):
        b1, b2 = group["betas"]
        t = state["step"]
        state["m"].mul_(b1).add_(g, alpha=1 - b1)
        state["v"].mul_(b2).addcmul_(g, g, value=1 - b2)
        v_hat = state["v"].div(1 - b2**t)
        p.addcdiv_(state["m"], v_hat.add_(group["eps"]).sqrt_(), value=-group["lr"] / (1 - b1**t))


def adagrad(params, eps_inside_sqrt: bool = False, **kwargs) -> Optimizer:
    """torch.optim.Adagrad, or the notes' RootEpsAdagrad with eps_inside_sqrt=True."""
    return RootEpsAdagrad(params, **kwargs) if eps_inside_sqrt else torch.optim.Adagrad(params, **kwargs)


def rmsprop(params, eps_inside_sqrt: bool = False, **kwargs) -> Optimizer:
    """torch.optim.RMSprop, or the notes' RootEpsRMSprop with eps_inside_sqrt=True."""
    return RootEpsRMSprop(params, **kwargs) if eps_inside_sqrt else torch.optim.RMSprop(params, **kwargs)


def adam(params, eps_inside_sqrt: bool = False, fused: bool | None = None, **kwargs) -> Optimizer:
    """torch.optim.Adam, or the notes' RootEpsAdam with eps_inside_sqrt=True (one plain loop: `fused` is torch's)."""
    return RootEpsAdam(params, **kwargs) if eps_inside_sqrt else torch.optim.Adam(params, fused=fused, **kwargs)


# -- parameter groups: the head's lr and the layers unfrozen later ---------------------------------------------
def build_optimizer(node, model: torch.nn.Module) -> Optimizer:
    """The optimizer over the trainable parameters only (model.freeze); with `head_lr_mult` the model's head
    (its last parameterised layer, dlrun/models/transfer.py) is a group of its own at lr * mult."""
    from omegaconf import OmegaConf

    from dlrun.config.schema import build
    from dlrun.errors import ConfigError
    from dlrun.models.transfer import head

    mult = node.get("head_lr_mult")
    if "head_lr_mult" in node:
        plain = OmegaConf.to_container(node, resolve=True)
        plain.pop("head_lr_mult")
        node = OmegaConf.create(plain)
    make = build(node, "optimizer")
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ConfigError("model.freeze", "all", "leaves no trainable parameter")
    if mult is None or mult == 1:
        return make(trainable)
    lr = node.get("lr")
    if lr is None:
        raise ConfigError("optimizer.head_lr_mult", mult, "needs an optimizer with an lr key")
    head_ids = {id(p) for p in head(model)[1].parameters()}
    body = [p for p in trainable if id(p) not in head_ids]
    top = [p for p in trainable if id(p) in head_ids]
    # lr_mult is kept in each group so that add_unfrozen_group finds the body's rate again
    groups = ([{"params": body, "lr_mult": 1.0}] if body else []) + [{"params": top, "lr": lr * mult, "lr_mult": mult}]
    return make(groups)


def add_unfrozen_group(optimizer: Optimizer, params: list, scheduler=None) -> dict:
    """Hand layers that were frozen to the optimizer as a new group at the body's rate (the first group's lr
    divided by its head multiplier), its state starting at zero; a scheduler follows the first group's
    schedule for it. Returns the group."""
    first = optimizer.param_groups[0]
    mult = first.get("lr_mult", 1.0)
    group = {"params": params, "lr": first["lr"] / mult, "lr_mult": 1.0}
    if "initial_lr" in first:  # a scheduler scales every group from its initial lr
        group["initial_lr"] = first["initial_lr"] / mult
    optimizer.add_param_group(group)
    if hasattr(scheduler, "base_lrs"):  # a scheduler keeps one entry per group
        scheduler.base_lrs.append(group.get("initial_lr", group["lr"]))
    for per_group in ("lr_lambdas", "min_lrs"):  # LambdaLR's factors, ReduceLROnPlateau's floors
        if isinstance(getattr(scheduler, per_group, None), list):
            getattr(scheduler, per_group).append(getattr(scheduler, per_group)[0])
    return optimizer.param_groups[-1]


# the keyword arguments each factory passes on (**kwargs), so that a key none of them takes is refused
# before anything is built (dlrun/config/target_keys.py), as it is for a torch.optim class named directly
for _factory, _torch_class in ((adagrad, torch.optim.Adagrad), (rmsprop, torch.optim.RMSprop), (adam, torch.optim.Adam)):
    _factory.passes_kwargs_to = _torch_class
