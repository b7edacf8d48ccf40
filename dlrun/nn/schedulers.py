"""Learning-rate schedules, stepped once per epoch by the loop (ReduceLROnPlateau with the monitored metric).

torch.optim.lr_scheduler does step decay, one-cycle and reduce-on-plateau; only cosine decay with a linear
warmup is written here, as a LambdaLR factor (closed form, so it is easy to check and to resume).
"""

from __future__ import annotations

import math

from torch.optim.lr_scheduler import LambdaLR, ReduceLROnPlateau

from dlrun.errors import ConfigError
from dlrun.run_folder.metric_mode import mode_for


class WarmupCosine:
    """lr factor of epoch e: (e+1)/(w+1) for the w warmup epochs, then half a cosine from 1 down to
    min_factor at the end of `total` epochs. An object (not a lambda) so LambdaLR.state_dict keeps it."""

    def __init__(self, warmup: int, total: int, min_factor: float = 0.0):
        self.warmup, self.total, self.min_factor = warmup, total, min_factor

    def __call__(self, epoch: int) -> float:
        if epoch < self.warmup:
            return (epoch + 1) / (self.warmup + 1)
        progress = min(1.0, (epoch - self.warmup) / max(1, self.total - self.warmup))
        return self.min_factor + (1 - self.min_factor) * 0.5 * (1 + math.cos(math.pi * progress))


def warmup_cosine(optimizer, total_epochs: int, warmup_epochs: int = 0, min_factor: float = 0.0) -> LambdaLR:
    if warmup_epochs < 0 or not 0 <= min_factor <= 1:
        raise ConfigError("scheduler", f"warmup_epochs={warmup_epochs}, min_factor={min_factor}",
                          "warmup_epochs >= 0 and min_factor in [0, 1]")
    # a run shorter than the warmup (trainer.max_epochs=1 with the default schedule) warms up for what it has
    return LambdaLR(optimizer, WarmupCosine(min(warmup_epochs, total_epochs - 1), total_epochs, min_factor))


def reduce_on_plateau(optimizer, monitor: str, factor: float = 0.1, patience: int = 2, min_lr: float = 0.0,
                      threshold: float = 1e-4) -> ReduceLROnPlateau:
    """ReduceLROnPlateau whose mode (min for losses, max for accuracies) follows the monitored metric."""
    return ReduceLROnPlateau(optimizer, mode=mode_for(monitor), factor=factor, patience=patience, min_lr=min_lr,
                             threshold=threshold)
