"""ModelCheckpoint: last.pt every epoch (and at any end), best.pt when the monitored metric improves."""

from __future__ import annotations

from dlrun import checkpoint
from dlrun.callbacks.base import Callback
from dlrun.metrics import improved, mode_for


class ModelCheckpoint(Callback):
    def __init__(self, monitor: str | None = None, mode: str | None = None, save_last: bool = True,
                 dirname: str = "checkpoints"):
        self.monitor, self.mode, self.save_last, self.dirname = monitor, mode, save_last, dirname
        self.best_value: float | None = None

    def _dir(self, loop):
        return loop.run_dir / self.dirname

    def on_fit_start(self, loop) -> None:
        self.monitor = self.monitor or loop.monitor
        self.mode = self.mode or mode_for(self.monitor)

    def on_epoch_end(self, loop, metrics: dict) -> None:
        value = metrics.get(self.monitor)
        state = None
        if value is not None and improved(value, self.best_value, self.mode):
            self.best_value = value
            state = checkpoint.capture(loop)
            checkpoint.save(state, self._dir(loop) / "best.pt")
        if self.save_last:
            checkpoint.save(state or checkpoint.capture(loop), self._dir(loop) / "last.pt")

    def on_fit_end(self, loop, summary: dict) -> None:
        # an interrupted run saves where it stands (mid-epoch included) so that it can resume exactly
        if self.save_last and summary["status"] == "interrupted":
            checkpoint.save(checkpoint.capture(loop), self._dir(loop) / "last.pt")

    def state_dict(self) -> dict:
        return {"best_value": self.best_value}

    def load_state_dict(self, state: dict) -> None:
        self.best_value = state.get("best_value")
