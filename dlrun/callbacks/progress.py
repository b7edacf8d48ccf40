"""Terminal progress: a rich bar on a terminal, one plain line per epoch otherwise (and in dlrun.log)."""

from __future__ import annotations

import logging
import time

from dlrun.callbacks.base import Callback

log = logging.getLogger("dlrun")


def epoch_line(loop, metrics: dict) -> str:
    shown = {k: v for k, v in metrics.items() if "/" in k}
    parts = " ".join(f"{k}={v:.4f}" for k, v in shown.items())
    return (f"epoch {metrics['epoch']}/{loop.cfg.trainer.max_epochs} {parts} "
            f"lr={metrics['lr']:.3g} {metrics['samples_per_s']:,.0f} samples/s {metrics['time_s']:.1f}s")


class PlainProgress(Callback):
    order = -100  # the epoch's line comes before what other callbacks log about that epoch
    def on_epoch_end(self, loop, metrics: dict) -> None:
        log.info(epoch_line(loop, metrics))


class RichProgress(PlainProgress):
    """Bar per epoch: batch count, running loss and accuracy, samples/s, ETA.

    Drawn from the training thread twice a second, not by rich's refresh thread: that thread redraws
    10 times a second and competes with training for the GIL; it made a LeNet epoch 4 % slower
    (benchmarks/overhead.py with trainer.progress=rich).
    """

    REFRESH_SECONDS = 0.5  # between redraws, which also read the loss back (a GPU sync)

    def __init__(self):
        self.progress = None
        self.task = None
        self._drawn = 0.0  # time.monotonic() of the last redraw

    def on_fit_start(self, loop) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from dlrun.console import console

        self.progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
            console=console, transient=True, auto_refresh=False,
        )
        self.progress.start()
        if loop.batch_in_epoch:  # resumed mid-epoch: the loop does not call on_epoch_start for this epoch
            self.on_epoch_start(loop)

    def on_epoch_start(self, loop) -> None:
        total = len(loop.data.train)
        if loop.cfg.trainer.limit_train_batches:
            total = min(total, loop.cfg.trainer.limit_train_batches)
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.task = self.progress.add_task("", total=total, completed=loop.batch_in_epoch,
                                           epoch=f"{loop.epoch + 1}/{loop.cfg.trainer.max_epochs}", loss="-", rate="")
        self.progress.refresh()

    def on_batch_end(self, loop, batch_index: int, loss) -> None:
        now = time.monotonic()
        if now - self._drawn < self.REFRESH_SECONDS:
            return
        self._drawn = now
        task = self.progress.tasks[-1]
        rate = f"{task.speed * loop.data.train.batch_size:,.0f} samples/s" if task.speed else ""
        self.progress.update(self.task, completed=batch_index + 1, loss=f"{loss.item():.4f}", rate=rate)
        self.progress.refresh()

    def on_fit_end(self, loop, summary: dict) -> None:
        if self.progress is not None:
            self.progress.stop()


def make_progress(mode: str) -> Callback | None:
    """`auto` is rich on a terminal and plain otherwise (CI logs, files, pipes)."""
    from dlrun.console import console

    if mode == "auto":
        mode = "rich" if console.is_terminal else "plain"
    return {"rich": RichProgress, "plain": PlainProgress}.get(mode, lambda: None)()
