"""Gradual unfreezing (`trainer.unfreeze_at_epoch=N`): from epoch N on, the layers `model.freeze` froze train too.

They join the optimizer as a new parameter group at the rate the rest of the network trains at
(dlrun/nn/optimizers.py add_unfrozen_group), so their optimizer state starts at zero when they start moving.
A resumed run that had unfrozen them gets the group when it is assembled (dlrun/training/assembly.py).
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
        from dlrun.run_folder.checkpoint import unwrap
        from dlrun.models.transfer import unfreeze
        from dlrun.nn.optimizers import add_unfrozen_group

        self.done = True
        params = unfreeze(unwrap(loop.model))
        if not params:
            return
        group = add_unfrozen_group(loop.optimizer, params, loop.scheduler)
        log.info("epoch %d: unfroze %d parameter tensors (%s values), lr %.3g", loop.epoch + 1, len(params),
                 f"{sum(p.numel() for p in params):,}", group["lr"])

    def state_dict(self) -> dict:
        return {"done": self.done}

    def load_state_dict(self, state: dict) -> None:
        self.done = bool(state.get("done", False))
