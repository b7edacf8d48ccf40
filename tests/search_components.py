"""Callbacks for the search tests, loaded from config with _target_: a scripted metric and a simulated kill."""

import os

from dlrun.callbacks import Callback
from dlrun.callbacks.optuna_trial import ENV_TRIAL


class ScriptedMetric(Callback):
    """Replaces the monitored metric of each epoch with a value scripted per trial number (before it is reported)."""

    order = 40  # before the trial reporter (50)

    def __init__(self, values: dict, default: list):
        self.values, self.default = values, default

    def on_epoch_end(self, loop, metrics):
        script = self.values.get(int(os.environ[ENV_TRIAL]), self.default)
        metrics[loop.monitor] = script[loop.epoch - 1]


class Killed(BaseException):
    """Not an Exception: like a SIGKILL, it ends the whole sweep before the trial is told anything."""


class KillTrial(Callback):
    """Ends the process (in effect) during the first epoch of trial `number`, once: a marker file remembers it."""

    def __init__(self, number: int, marker: str):
        self.number, self.marker = number, marker

    def on_epoch_end(self, loop, metrics):
        if int(os.environ[ENV_TRIAL]) == self.number and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            raise Killed()
