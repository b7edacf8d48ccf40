"""The job's side of a search: which trial it is, reporting each epoch to it, and stopping when it is pruned.

The sweeper hands each job its trial through three environment variables (set with Hydra's
`hydra.job.env_set`, so they reach jobs in other processes too: joblib, submitit); the job opens
the same storage (the journal file in the sweep folder) and reports to the trial there.
"""

from __future__ import annotations

import logging
import math
import os

from dlrun.callbacks.base import Callback

log = logging.getLogger("dlrun")

ENV_STORAGE, ENV_STUDY, ENV_TRIAL = "DLRUN_OPTUNA_STORAGE", "DLRUN_OPTUNA_STUDY", "DLRUN_OPTUNA_TRIAL"


def open_storage(url: str):
    """An Optuna storage URL (sqlite:///..., postgresql://...) as is; a plain path is a journal file."""
    import optuna

    if "://" in url:
        return url
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(url))


def trial_overrides(storage_url: str, study_name: str, number: int) -> list[str]:
    """The Hydra overrides that tell a job its trial (hydra.* overrides: not in the job's folder name)."""
    env = {ENV_STORAGE: storage_url, ENV_STUDY: study_name, ENV_TRIAL: str(number)}
    return [f"++hydra.job.env_set.{k}='{v}'" for k, v in env.items()]


def trial_callback() -> "TrialReporter | None":
    """The reporter when this job is a trial of a search, else None."""
    if os.environ.get(ENV_TRIAL) is None:
        return None
    return TrialReporter(os.environ[ENV_STORAGE], os.environ[ENV_STUDY], int(os.environ[ENV_TRIAL]))


class TrialReporter(Callback):
    """Reports the monitored metric to the trial every epoch; stops the run when the pruner says so."""

    order = 50  # before ModelCheckpoint (100): the epoch that asks to stop still saves last.pt
    all_ranks = True  # every DDP process stops at the same epoch

    def __init__(self, storage_url: str, study_name: str, number: int):
        self.storage_url, self.study_name, self.number = storage_url, study_name, number
        self.trial = None

    def on_fit_start(self, loop) -> None:
        import optuna

        study = optuna.load_study(study_name=self.study_name, storage=open_storage(self.storage_url))
        trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, self.number)
        self.trial = optuna.trial.Trial(study, trial_id)
        if loop.is_main:  # where the sweeper finds this trial's folder when it must be retried
            self.trial.set_user_attr("run_dir", loop.run_dir.name)

    def on_epoch_end(self, loop, metrics: dict) -> None:
        value = metrics.get(loop.monitor)
        if self.trial is None or value is None or not math.isfinite(value):
            return
        self.trial.report(value, loop.epoch)
        if self.trial.should_prune():
            log.info("trial %d pruned after epoch %d (%s=%.4f)", self.number, loop.epoch, loop.monitor, value)
            loop.request_stop("pruned")

    def on_fit_end(self, loop, summary: dict) -> None:
        summary["trial"] = self.number
