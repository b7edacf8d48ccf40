"""Optimizers of the notes. torch.optim computes gd, sgd, nesterov, adagrad, rmsprop, adam and adamw
(see conf/optimizer/*.yaml); only the notes' momentum is written here, because torch.optim.SGD's
momentum differs from it: SGD keeps b = mu b + g (its first step sets b = g, undamped), the notes keep
an exponential average m_t = beta m_{t-1} + (1 - beta) g_t with m_0 = 0.
"""

from __future__ import annotations

import torch
from torch.optim import Optimizer


class Momentum(Optimizer):
    """m_t = beta m_{t-1} + (1 - beta) g_t;  w <- w - lr m_t;  m_0 = 0.

    The same iterates as torch.optim.SGD(momentum=beta, dampening=0) with lr (1 - beta) * lr, but with the
    lr the notes (and a schedule, and the log) speak of. weight_decay adds weight_decay * w to g (L2, coupled).
    """

    def __init__(self, params, lr: float = 0.01, beta: float = 0.9, weight_decay: float = 0.0):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"beta must be in [0, 1), got {beta}")
        super().__init__(params, dict(lr=lr, beta=beta, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, beta, wd = group["lr"], group["beta"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad if wd == 0 else p.grad.add(p, alpha=wd)
                state = self.state[p]
                if "m" not in state:
                    state["m"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                m = state["m"]
                m.mul_(beta).add_(g, alpha=1 - beta)
                p.add_(m, alpha=-lr)
        return loss
