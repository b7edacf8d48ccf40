"""Gradual unfreezing (`trainer.unfreeze_at_epoch=N`): from epoch N on, the layers `model.freeze` froze train too.

They join the optimizer as a new parameter group at the rate the rest of the network trains at (the first
group's lr divided by its head multiplier), so their optimizer state starts at zero when they start moving.
"""

from __future__ import annotations

import logging

from dlrun.callbacks.base import Callback

log = logging.getLogger("dlrun")


class Unfreeze(Callback):
    all_ranks = True  # every DDP process must stop / unfreeze at the same epoch

    def __init__(self, epoch: int):
        self.epoch = epoch  # 1-based, as "epoch" in metrics.jsonl
        self.done = False

    def on_epoch_start(self, loop) -> None:
        if self.done or loop.epoch + 1 < self.epoch:
            return
        self.apply(loop)

    def apply(self, loop) -> None:
        """Unfreeze now (also called before a resume puts back an optimizer that already had the group)."""
        from dlrun.checkpoint import unwrap
        from dlrun.transfer import unfreeze

        self.done = True
        params = unfreeze(unwrap(loop.model))
        if not params:
            return
        opt = loop.optimizer
        first = opt.param_groups[0]
        mult = first.get("lr_mult", 1.0)
        group = {"params": params, "lr": first["lr"] / mult, "lr_mult": 1.0}
        if "initial_lr" in first:  # a scheduler scales every group from its initial lr
            group["initial_lr"] = first["initial_lr"] / mult
        opt.add_param_group(group)
        # a scheduler keeps one entry per group: the new group follows the first group's schedule
        scheduler = loop.scheduler
        if hasattr(scheduler, "base_lrs"):
            scheduler.base_lrs.append(group.get("initial_lr", group["lr"]))
        for per_group in ("lr_lambdas", "min_lrs"):  # LambdaLR's factors, ReduceLROnPlateau's floors
            if isinstance(getattr(scheduler, per_group, None), list):
                getattr(scheduler, per_group).append(getattr(scheduler, per_group)[0])
        log.info("epoch %d: unfroze %d parameter tensors (%s values), lr %.3g", loop.epoch + 1, len(params),
                 f"{sum(p.numel() for p in params):,}", group["lr"])

    def state_dict(self) -> dict:
        return {"done": self.done}

    def load_state_dict(self, state: dict) -> None:
        self.done = bool(state.get("done", False))
