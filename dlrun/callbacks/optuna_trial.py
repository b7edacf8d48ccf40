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


def make_pruner(name: str, warmup: int, startup: int):
    """`median` (the trial is worse than the median of earlier trials at the same epoch), `hyperband`, `none`."""
    import optuna

    from dlrun.errors import ConfigError

    pruners = optuna.pruners
    # steps are epochs (1, 2, ...); Optuna may prune from step n_warmup_steps / min_resource on
    if name == "median":
        return pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=warmup + 1)
    if name == "hyperband":
        return pruners.HyperbandPruner(min_resource=warmup + 1)
    if name in ("none", "None", None):
        return pruners.NopPruner()
    raise ConfigError("hydra.sweeper.pruner", name, "median, hyperband or none")


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

        from hydra.core.hydra_config import HydraConfig

        s = HydraConfig.get().sweeper  # the pruner is not in the storage: the job builds the sweeper's own
        pruner = make_pruner(s.get("pruner", "median"), s.get("pruner_warmup", 1), s.get("pruner_startup_trials", 3))
        study = optuna.load_study(study_name=self.study_name, storage=open_storage(self.storage_url), pruner=pruner)
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
