"""Terminal progress: a rich bar on a terminal, one plain line per epoch otherwise (and in dlrun.log).

Both show the time since the run started and an estimate of the time to its end (not only the
epoch's), and keep every line within the terminal's width: labels get shorter, then the least
important parts go. dlrun.log always gets the whole line.
"""

from __future__ import annotations

import logging
import time

from dlrun.callbacks.base import Callback

log = logging.getLogger("dlrun")


def clock(seconds: float) -> str:
    """`0:42`, `12:05`, `1:02:03`."""
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def fit_parts(parts: list[tuple[str, str, int]], width: int | None) -> str:
    """Join (full text, short text, priority) parts into a line of at most `width` characters: the full
    texts, else the short ones, else the short ones without the lowest priorities (highest number first)."""
    line = " ".join(p[0] for p in parts)
    if width is None or len(line) <= width:
        return line
    kept = list(parts)
    while True:
        line = " ".join(p[1] for p in kept)
        droppable = [p for p in kept if p[2] > 0]
        if len(line) <= width or not droppable:
            return line
        kept.remove(max(droppable, key=lambda p: p[2]))


def _metric_part(key: str, value: float) -> tuple[str, str, int]:
    short = key.removeprefix("train/")
    priority = 2 if key.startswith("val/") else 3 if key.startswith("train/") else 8
    return f"{key}={value:.4f}", f"{short}={value:.4f}", priority


def epoch_parts(loop, metrics: dict, elapsed: float | None = None, eta: float | None = None) -> list:
    parts = [(f"epoch {metrics['epoch']}/{loop.max_epochs}",) * 2 + (0,)]
    parts += [_metric_part(k, v) for k, v in metrics.items() if "/" in k and isinstance(v, (int, float))]
    parts += [(f"lr={metrics['lr']:.3g}", f"lr={metrics['lr']:.3g}", 7),
              (f"{metrics['samples_per_s']:,.0f} samples/s", f"{metrics['samples_per_s']:,.0f}/s", 6),
              (f"{metrics['time_s']:.1f}s", f"{metrics['time_s']:.1f}s", 5)]
    if elapsed is not None:
        parts.append((f"elapsed {clock(elapsed)}",) * 2 + (4,))
    if eta is not None:
        parts.append((f"run eta {clock(eta)}", f"eta {clock(eta)}", 1))
    return parts


def epoch_line(loop, metrics: dict, elapsed: float | None = None, eta: float | None = None,
               width: int | None = None) -> str:
    return fit_parts(epoch_parts(loop, metrics, elapsed, eta), width)


class PlainProgress(Callback):
    """A line per epoch: metrics, lr, throughput, the epoch's time, the run's elapsed time and its ETA."""

    order = -100  # the epoch's line comes before what other callbacks log about that epoch

    def __init__(self):
        self._started = self._epoch_started = None
        self._epochs_done = 0  # in this process (a resumed run's earlier epochs were timed elsewhere)
        self._time_in_epochs = 0.0

    def on_fit_start(self, loop) -> None:
        self._started = self._epoch_started = time.monotonic()

    def on_epoch_start(self, loop) -> None:
        self._epoch_started = time.monotonic()

    def eta(self, loop, fraction_of_epoch: float, now: float) -> float | None:
        """Seconds to the end of the run: the mean epoch (validation included) times the epochs left; in the
        first epoch, from the training speed so far."""
        left = loop.max_epochs - loop.epoch - fraction_of_epoch
        if self._epochs_done:
            return left * self._time_in_epochs / self._epochs_done
        if fraction_of_epoch > 0 and self._epoch_started is not None:
            return left * (now - self._epoch_started) / fraction_of_epoch
        return None

    def on_epoch_end(self, loop, metrics: dict) -> None:
        from dlrun.console import console

        now = time.monotonic()
        if self._epoch_started is not None:
            self._time_in_epochs += now - self._epoch_started
            self._epochs_done += 1
        elapsed = now - self._started if self._started is not None else None
        eta = self.eta(loop, 0.0, now)
        width = console.width - 1 if console.is_terminal else None
        log.info(epoch_line(loop, metrics, elapsed, eta),
                 extra={"console_text": epoch_line(loop, metrics, elapsed, eta, width)})


class RichProgress(PlainProgress):
    """Bar per epoch: batch count, running loss, samples/s, the run's elapsed time and ETA.

    Drawn from the training thread twice a second, not by rich's refresh thread: that thread redraws
    10 times a second and competes with training for the GIL; it made a LeNet epoch 4 % slower
    (benchmarks/overhead.py with trainer.progress=rich).
    """

    REFRESH_SECONDS = 0.5  # between redraws, which also read the loss back (a GPU sync)
    MAX_BAR, MIN_BAR = 40, 10

    def __init__(self):
        super().__init__()
        self.progress = None
        self.bar = None
        self.task = None
        self._drawn = 0.0  # time.monotonic() of the last redraw

    def on_fit_start(self, loop) -> None:
        from rich.progress import BarColumn, Progress, TextColumn

        from dlrun.console import console

        super().on_fit_start(loop)
        self.bar = BarColumn(bar_width=self.MAX_BAR)
        self.progress = Progress(TextColumn("[bold]{task.fields[epoch]}"), self.bar, TextColumn("{task.fields[after]}"),
                                 console=console, transient=True, auto_refresh=False)
        self.progress.start()
        if loop.batch_in_epoch:  # resumed mid-epoch: the loop does not call on_epoch_start for this epoch
            self.on_epoch_start(loop)

    def _draw(self, loop, done: int, loss: str, rate: str, now: float) -> None:
        """Fit the text after the bar to the terminal, then give the bar what is left."""
        total = loop.batches_per_epoch
        epoch = f"epoch {loop.epoch + 1}/{loop.max_epochs}"
        eta = self.eta(loop, done / total if total else 0.0, now)
        parts = [(f"{done}/{total}",) * 2 + (1,), (f"loss {loss}",) * 2 + (3,)]
        if rate:
            parts.append((f"{rate} samples/s", f"{rate}/s", 5))
        parts.append((f"elapsed {clock(now - self._started)}",) * 2 + (4,))
        parts.append((f"run eta {clock(eta)}" if eta is not None else "run eta -", f"eta {clock(eta)}" if eta is not None else "", 2))
        width = self.progress.console.width - 1  # the last column would make some terminals wrap
        after = fit_parts([p for p in parts if p[1]], width - len(epoch) - 2 - self.MIN_BAR)
        self.bar.bar_width = max(self.MIN_BAR, min(self.MAX_BAR, width - len(epoch) - len(after) - 2))
        self.progress.update(self.task, completed=done, epoch=epoch, after=after)
        self.progress.refresh()

    def on_epoch_start(self, loop) -> None:
        super().on_epoch_start(loop)
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.task = self.progress.add_task("", total=loop.batches_per_epoch, completed=loop.batch_in_epoch, epoch="",
                                           after="")
        self._draw(loop, loop.batch_in_epoch, "-", "", self._epoch_started)

    def on_batch_end(self, loop, batch_index: int, loss) -> None:
        now = time.monotonic()
        if now - self._drawn < self.REFRESH_SECONDS:
            return
        self._drawn = now
        task = self.progress.tasks[-1]
        rate = f"{task.speed * loop.data.train.batch_size:,.0f}" if task.speed else ""
        self._draw(loop, batch_index + 1, f"{loss.item():.4f}", rate, now)

    def on_fit_end(self, loop, summary: dict) -> None:
        if self.progress is not None:
            self.progress.stop()


def make_progress(mode: str) -> Callback | None:
    """`auto` is rich on a terminal and plain otherwise (CI logs, files, pipes)."""
    from dlrun.console import console

    if mode == "auto":
        mode = "rich" if console.is_terminal else "plain"
    return {"rich": RichProgress, "plain": PlainProgress}.get(mode, lambda: None)()
