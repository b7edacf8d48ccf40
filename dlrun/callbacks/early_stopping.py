"""EarlyStopping (the lecture notes' first callback): stop when the monitored metric stops improving.

Semantics follow Keras' EarlyStopping and Lightning's thresholds:
- an epoch *improves* when the value beats the best so far by more than `min_delta`
  (strictly: exactly `best + min_delta` is not an improvement);
- the `patience`-th epoch in a row without improvement stops the run (0 and 1: the first one does);
- `baseline`: an improvement resets the patience counter only if it also beats the baseline, so a
  run that never gets better than the baseline stops after `patience` epochs;
- epochs up to and including `start_from_epoch` are ignored (warm-up);
- reaching `stopping_threshold` stops at once (good enough), passing `divergence_threshold`
  stops at once (hopeless), and a NaN/inf value stops at once (`check_finite`);
- `restore_best_weights` puts the best epoch's weights back when training ends, whether it
  stopped early or ran out of epochs, before the test split is evaluated.
"""

from __future__ import annotations

import logging
import math

from dlrun.callbacks.base import Callback
from dlrun.run_folder.checkpoint import unwrap
from dlrun.errors import ConfigError
from dlrun.run_folder.metric_mode import improved, mode_for
from dlrun.run_folder.run_record import FINISHED

log = logging.getLogger("dlrun")
KEY = "callbacks.early_stopping"


class EarlyStopping(Callback):
    all_ranks = True  # every DDP process must stop / unfreeze at the same epoch

    def __init__(self, monitor: str | None = None, mode: str | None = None, min_delta: float = 0.0,
                 patience: int = 3, baseline: float | None = None, start_from_epoch: int = 0,
                 restore_best_weights: bool = False, stopping_threshold: float | None = None,
                 divergence_threshold: float | None = None, check_finite: bool = True):
        if mode not in (None, "auto", "min", "max"):
            raise ConfigError(f"{KEY}.mode", mode, "min, max or auto (from the metric's name)")
        if patience < 0:
            raise ConfigError(f"{KEY}.patience", patience, "an integer >= 0")
        if min_delta < 0:
            raise ConfigError(f"{KEY}.min_delta", min_delta, "a number >= 0 (the direction comes from mode)")
        if start_from_epoch < 0:
            raise ConfigError(f"{KEY}.start_from_epoch", start_from_epoch, "an integer >= 0")
        self.monitor, self.mode = monitor, None if mode == "auto" else mode
        self.min_delta, self.patience, self.baseline = min_delta, patience, baseline
        self.start_from_epoch, self.restore_best_weights = start_from_epoch, restore_best_weights
        self.stopping_threshold, self.divergence_threshold = stopping_threshold, divergence_threshold
        self.check_finite = check_finite
        self.wait = 0
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.best_weights: dict | None = None
        self.stopped_epoch: int | None = None
        self.reason: str | None = None

    def on_fit_start(self, loop) -> None:
        self.monitor = self.monitor or loop.monitor
        self.mode = self.mode or mode_for(self.monitor)
        if not self.monitor.startswith(("train/", "val/")):
            raise ConfigError(f"{KEY}.monitor", self.monitor, "a train/ or val/ metric (test/ is measured only at the end)")
        if self.monitor.startswith("val/") and loop.data.val is None:
            raise ConfigError(f"{KEY}.monitor", self.monitor, "a train/ metric: data.val_fraction=0 leaves no validation split")

    # -- the decision, one epoch at a time (also what the unit tests script) ----------------------
    def step(self, epoch: int, value: float, weights=None) -> str | None:
        """Update with this epoch's value; the reason to stop, or None to go on.

        `weights` is a callable returning the model's current state_dict copy (only called on an
        improvement when restore_best_weights is on).
        """
        if self.check_finite and not math.isfinite(value):
            return f"{self.monitor} = {value} is not finite"
        if epoch <= self.start_from_epoch:
            return None
        if improved(value, self.best, self.mode, self.min_delta):
            self.best, self.best_epoch = value, epoch
            if self.restore_best_weights and weights is not None:
                self.best_weights = weights()
            if self.baseline is None or improved(value, self.baseline, self.mode):
                self.wait = 0
            else:
                self.wait += 1
        else:
            self.wait += 1
        better = (lambda a, b: a <= b) if self.mode == "min" else (lambda a, b: a >= b)
        if self.stopping_threshold is not None and better(value, self.stopping_threshold):
            return f"{self.monitor} = {value:.6g} reached stopping_threshold {self.stopping_threshold}"
        if self.divergence_threshold is not None and not better(value, self.divergence_threshold):
            return f"{self.monitor} = {value:.6g} is past divergence_threshold {self.divergence_threshold}"
        if self.wait > 0 and self.wait >= self.patience:
            return (f"{self.monitor} did not improve by more than {self.min_delta} for {self.wait} epochs "
                    f"(best {self.best:.6g} at epoch {self.best_epoch})")
        return None

    def on_epoch_end(self, loop, metrics: dict) -> None:
        if self.monitor not in metrics:
            available = ", ".join(k for k in metrics if "/" in k)
            raise ConfigError(f"{KEY}.monitor", self.monitor, f"one of the logged metrics: {available}")
        value = metrics[self.monitor]
        value = float("nan") if value is None else float(value)
        model = unwrap(loop.model)
        reason = self.step(loop.epoch, value, lambda: {k: v.detach().clone() for k, v in model.state_dict().items()})
        if reason is not None:
            self.stopped_epoch, self.reason = loop.epoch, reason
            log.info("early stopping at epoch %d: %s", loop.epoch, reason)
            loop.request_stop("stopped_early")

    def on_train_end(self, loop) -> None:
        if self.restore_best_weights and self.best_weights is not None:
            unwrap(loop.model).load_state_dict(self.best_weights)
            log.info("restored the best weights (epoch %d, %s = %.6g)", self.best_epoch, self.monitor, self.best)

    def on_fit_end(self, loop, summary: dict) -> None:
        summary["early_stopping"] = {
            "monitor": self.monitor, "best": self.best, "best_epoch": self.best_epoch,
            "stopped_epoch": self.stopped_epoch, "reason": self.reason,
            "restored_best_weights": bool(self.restore_best_weights and self.best_weights is not None
                                          and summary["status"] in FINISHED),
        }

    # exact resume: the counters, and the best weights when they will be restored
    def state_dict(self) -> dict:
        state = {"wait": self.wait, "best": self.best, "best_epoch": self.best_epoch,
                 "stopped_epoch": self.stopped_epoch, "reason": self.reason}
        if self.best_weights is not None:
            state["best_weights"] = {k: v.cpu() for k, v in self.best_weights.items()}
        return state

    def load_state_dict(self, state: dict) -> None:
        self.wait, self.best, self.best_epoch = state["wait"], state["best"], state["best_epoch"]
        self.stopped_epoch, self.reason = state.get("stopped_epoch"), state.get("reason")
        self.best_weights = state.get("best_weights")
