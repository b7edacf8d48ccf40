"""Per-layer gradient norms (the lecture notes' vanishing gradient): `grad_norm/<layer>` in each epoch's row.

For every Linear/Conv layer, the L2 norm of its weight gradient at each optimizer step, averaged over the
epoch's steps. With a deep sigmoid MLP the first layers' norms are orders of magnitude below the last
layer's (each sigmoid multiplies the backward signal by at most 0.25); with ReLU they stay comparable.
The sums stay on the model's device (no per-step GPU sync) and are read once at the epoch's end. The keys
go into the epoch's row, so they land in metrics.jsonl and, the callback running before TensorBoard's,
among its scalars.
"""

from __future__ import annotations

import torch

from dlrun.callbacks.base import Callback
from dlrun.run_folder.checkpoint import unwrap
from dlrun.nn.initializers import weight_layers


class GradientNorms(Callback):
    order = -50  # before TensorBoard (0) and checkpoints (100), which read the row this adds to

    def __init__(self, prefix: str = "grad_norm"):
        self.prefix = prefix
        self._layers: list[tuple[str, torch.nn.Module]] = []
        self._sums: torch.Tensor | None = None
        self._steps = 0

    def on_fit_start(self, loop) -> None:
        model = unwrap(loop.model)
        names = {m: n for n, m in model.named_modules()}
        self._layers = [(names[m], m) for m in weight_layers(model)]

    def on_epoch_start(self, loop) -> None:
        self._sums, self._steps = None, 0

    @torch.no_grad()
    def on_before_optimizer_step(self, loop) -> None:
        if not self._layers:
            return
        norms = torch.stack([m.weight.grad.detach().float().norm() if m.weight.grad is not None  # frozen: 0
                             else torch.zeros((), device=m.weight.device) for _, m in self._layers])
        norms = norms / loop.gradient_scale  # AMP's loss scale, when still in the gradients
        self._sums = norms if self._sums is None else self._sums + norms
        self._steps += 1

    def on_epoch_end(self, loop, metrics: dict) -> None:
        if self._sums is None:
            return
        means = (self._sums / self._steps).tolist()  # the epoch's one device -> host copy
        for (name, _), value in zip(self._layers, means):
            metrics[f"{self.prefix}/{name}"] = value
