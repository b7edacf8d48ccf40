"""Per-layer signal scale at initialisation (the lecture notes' vanishing and exploding signal), in summary.json.

Before the first step, one forward and backward pass over up to 512 training samples (eval mode, no update)
records for every Linear/Conv layer the standard deviation of its output and the L2 norm of its weight
gradient. Too small a fixed init shrinks both layer after layer, too large a one multiplies them; Xavier and
He keep them level. Measured at the start, so a run that blows up in its first steps still reports them.
"""

from __future__ import annotations

import torch

from dlrun.callbacks.base import Callback
from dlrun.run_folder.checkpoint import unwrap
from dlrun.models.common import eval_mode
from dlrun.nn.initializers import weight_layers


class ActivationScales(Callback):
    def __init__(self, samples: int = 512):
        self.samples = samples
        self.scales: dict | None = None

    def on_fit_start(self, loop) -> None:
        if loop.epoch > 0:  # resumed: the start is long gone
            return
        model = unwrap(loop.model)
        names = {m: n for n, m in model.named_modules()}
        layers = weight_layers(model)
        x, y = loop.data.train.x[: self.samples], loop.data.train.y[: self.samples]
        outputs = []
        hooks = [m.register_forward_hook(lambda m, args, out: outputs.append(out)) for m in layers]
        try:
            with eval_mode(model), torch.enable_grad():
                loss = loop.loss_fn(model(x), y)
                grads = torch.autograd.grad(loss, [m.weight for m in layers], allow_unused=True)
        finally:
            for h in hooks:
                h.remove()
        self.scales = {
            "layers": [names[m] for m in layers],
            "activation_std": [o.detach().float().std().item() for o in outputs],
            "grad_norm": [0.0 if g is None else g.float().norm().item() for g in grads],
        }

    def on_fit_end(self, loop, summary: dict) -> None:
        if self.scales is not None:
            summary["init_scales"] = self.scales
