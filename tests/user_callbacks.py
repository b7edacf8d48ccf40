"""Callbacks a user would write in their own module; loaded from config with +callbacks.NAME._target_=...

Tests put this folder on PYTHONPATH and run `dlrun +callbacks.mine._target_=user_callbacks.Recorder ...`.
"""

import json
import time
from pathlib import Path

from dlrun.callbacks import Callback


class Recorder(Callback):
    """Appends one JSON line per hook call to `path` (the proof that dlrun called it)."""

    def __init__(self, path: str):
        self.path = Path(path)

    def _write(self, **record):
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def on_fit_start(self, loop):
        self._write(hook="on_fit_start", epoch=loop.epoch)

    def on_epoch_end(self, loop, metrics):
        self._write(hook="on_epoch_end", epoch=loop.epoch, val_acc=metrics.get("val/acc"))

    def on_train_end(self, loop):
        self._write(hook="on_train_end", epoch=loop.epoch)

    def on_fit_end(self, loop, summary):
        self._write(hook="on_fit_end", status=summary["status"])


class PauseAt(Callback):
    """Holds the run still after batch `batch` of the epoch that follows `epochs_done` completed ones, and
    writes `progress` ("<epochs done> <batch>") when it gets there, so that a test can kill the run at
    exactly that point. The pause ends early when the run is asked to stop (SIGINT/SIGTERM). It pauses once:
    a resumed run (its saved config keeps this callback) passes the point without stopping."""

    def __init__(self, epochs_done: int, batch: int, progress: str, seconds: float = 120.0):
        self.at, self.progress, self.seconds = (epochs_done, batch), Path(progress), seconds

    def on_batch_end(self, loop, batch_index, loss):
        if (loop.epoch, batch_index + 1) != self.at or self.progress.exists():
            return
        self.progress.write_text(f"{loop.epoch} {batch_index + 1}\n")
        end = time.monotonic() + self.seconds
        while time.monotonic() < end and loop.stop_reason is None:
            time.sleep(0.01)


class CollectorState(Callback):
    """Records whether Python's cyclic collector is on, and how many objects are frozen, when dlrun builds this
    callback (start-up) and when the first epoch starts (training)."""

    seen: dict = {}

    def __init__(self):
        import gc

        CollectorState.seen = {"start-up": (gc.isenabled(), gc.get_freeze_count())}

    def on_epoch_start(self, loop):
        import gc

        CollectorState.seen.setdefault("training", (gc.isenabled(), gc.get_freeze_count()))
