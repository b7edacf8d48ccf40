"""ModelCheckpoint (the lecture notes' second callback): keep the run's state on disk.

Files, all in `<run>/checkpoints/` and all written atomically (dlrun.run_folder.checkpoint.save):
- `last.pt`  the resume point: every `every_n_epochs` epochs, at the last epoch (also one that
             early stopping ends), and at an interrupted end (mid-epoch position included);
- `best.pt`  whenever the monitored metric improves, checked every `every_n_epochs` epochs;
- `save_top_k` named files, e.g. `epoch=007-val_acc=0.9012.pt`, for the k best epochs
  (-1: every checked epoch; 0: none besides best.pt). The name comes from `filename`, a
  str.format template over `epoch`, `step`, `monitor`, `value` and every metric of the epoch
  (with `/` written `_`: `{val_loss:.3f}`).
"""

from __future__ import annotations

import logging
import math

from dlrun.run_folder import checkpoint
from dlrun.callbacks.base import Callback
from dlrun.errors import ConfigError
from dlrun.run_folder.metric_mode import improved, mode_for
from dlrun.run_folder.run_record import INTERRUPTED

log = logging.getLogger("dlrun")
KEY = "callbacks.model_checkpoint"


def continue_command(run_dir) -> str:
    """The command that continues this run as it was (its saved config is restored: dlrun/training/resume.py)."""
    import shlex

    from dlrun.config.job import in_multirun

    if in_multirun():  # a sweep's jobs resume when the same sweep runs again in the same folder
        return f"the same dlrun -m command with hydra.sweep.dir={shlex.quote(str(run_dir.parent))}"
    return f"dlrun trainer.resume=true hydra.run.dir={shlex.quote(str(run_dir))}"


class ModelCheckpoint(Callback):
    order = 100  # after the other callbacks: see on_epoch_end
    def __init__(self, monitor: str | None = None, mode: str | None = None, save_top_k: int = 0,
                 save_last: bool = True, save_best: bool = True, every_n_epochs: int = 1,
                 filename: str = "epoch={epoch:03d}-{monitor}={value:.4f}", dirname: str = "checkpoints"):
        if mode not in (None, "auto", "min", "max"):
            raise ConfigError(f"{KEY}.mode", mode, "min, max or auto (from the metric's name)")
        if save_top_k < -1:
            raise ConfigError(f"{KEY}.save_top_k", save_top_k, "-1 (all), 0 (none) or a number of files k >= 1")
        if every_n_epochs < 1:
            raise ConfigError(f"{KEY}.every_n_epochs", every_n_epochs, "an integer >= 1")
        self.monitor, self.mode = monitor, None if mode == "auto" else mode
        self.save_top_k, self.save_last, self.save_best = save_top_k, save_last, save_best
        self.every_n_epochs, self.filename, self.dirname = every_n_epochs, filename, dirname
        self.explicit_monitor = monitor is not None
        self._told_no_monitor = False
        self.best_value: float | None = None
        self.top_k: list[dict] = []  # {"name", "value", "epoch"}, best first; names relative to the folder
        self.last_saved_epoch: int | None = None

    def _dir(self, loop):
        return loop.run_dir / self.dirname

    def on_fit_start(self, loop) -> None:
        self.monitor = self.monitor or loop.monitor
        self.mode = self.mode or mode_for(self.monitor)

    def format_name(self, epoch: int, step: int, metrics: dict) -> str:
        fields = {k.replace("/", "_"): v for k, v in metrics.items() if isinstance(v, (int, float))}
        fields.update(epoch=epoch, step=step, monitor=self.monitor.replace("/", "_"), value=metrics.get(self.monitor))
        try:
            name = self.filename.format(**fields)
        except (KeyError, IndexError, ValueError, TypeError) as e:
            metric_fields = ", ".join("{%s}" % k for k in fields if k not in ("epoch", "step", "monitor", "value"))
            raise ConfigError(f"{KEY}.filename", self.filename, f"a str.format template over {{epoch}}, {{step}}, "
                              f"{{monitor}}, {{value}} and the metrics {metric_fields} ({type(e).__name__}: {e})") from None
        name = name.replace("/", "_")
        return name if name.endswith(".pt") else name + ".pt"

    def _rank(self, value: float) -> float:
        return value if self.mode == "min" else -value  # smaller rank = better

    def _enter_top_k(self, loop, value: float, metrics: dict) -> tuple[str | None, list[str]]:
        """Book this epoch into the top k: (file to write or None, files to delete)."""
        k = self.save_top_k
        if k == 0:
            return None, []
        if k != -1 and len(self.top_k) >= k and not self._rank(value) < self._rank(self.top_k[-1]["value"]):
            return None, []  # no better than the k-th best kept: a tie keeps the earlier file
        name = self.format_name(loop.epoch, loop.step, metrics)
        self.top_k = [e for e in self.top_k if e["name"] != name]
        self.top_k.append({"name": name, "value": value, "epoch": loop.epoch})
        self.top_k.sort(key=lambda e: (self._rank(e["value"]), e["epoch"]))
        dropped = [self.top_k.pop()["name"] for _ in range(len(self.top_k) - k)] if k != -1 else []
        return name, dropped

    def on_epoch_end(self, loop, metrics: dict) -> None:
        # runs after the other callbacks (order = 100), so the state it captures
        # holds their updates for this epoch, and a stop they asked for is known here
        last_epoch = loop.epoch >= loop.max_epochs or loop.stop_reason is not None
        if not (loop.epoch % self.every_n_epochs == 0 or last_epoch):
            return
        files, dropped = [], []
        if self.monitor not in metrics and (self.save_best or self.save_top_k):
            if self.explicit_monitor:  # a typo would otherwise silently never write best.pt
                available = ", ".join(k for k in metrics if "/" in k)
                raise ConfigError(f"{KEY}.monitor", self.monitor, f"one of the logged metrics: {available}")
            if not self._told_no_monitor:
                self._told_no_monitor = True
                log.info("no %s this run (no validation split?): checkpoints/best.pt is not written", self.monitor)
        value = metrics.get(self.monitor)
        if value is not None and math.isfinite(value):
            if self.save_best and improved(value, self.best_value, self.mode):
                self.best_value = value
                files.append("best.pt")
            name, dropped = self._enter_top_k(loop, value, metrics)
            files += [name] if name else []
        if self.save_last:
            self.last_saved_epoch = loop.epoch
            files.append("last.pt")
        if files:
            state = checkpoint.capture(loop)  # after the bookkeeping above, so a resume continues it
            for name in files:
                checkpoint.save(state, self._dir(loop) / name)
        for name in dropped:
            (self._dir(loop) / name).unlink(missing_ok=True)

    def on_fit_end(self, loop, summary: dict) -> None:
        # an interrupted run saves where it stands (mid-epoch included) so that it can resume exactly
        if self.save_last and summary["status"] == INTERRUPTED:
            self.last_saved_epoch = loop.epoch
            checkpoint.save(checkpoint.capture(loop), self._dir(loop) / "last.pt")
            log.info("saved %s (epoch %d, batch %d of the next); continue with:", self._dir(loop) / "last.pt",
                     loop.epoch, loop.batch_in_epoch)
            log.info("  %s", continue_command(loop.run_dir))  # a line of its own: copied whole
        if self.top_k:
            summary["top_k"] = [dict(e) for e in self.top_k]

    def state_dict(self) -> dict:
        return {"best_value": self.best_value, "top_k": [dict(e) for e in self.top_k],
                "last_saved_epoch": self.last_saved_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.best_value = state.get("best_value")
        self.top_k = [dict(e) for e in state.get("top_k", [])]
        self.last_saved_epoch = state.get("last_saved_epoch")
