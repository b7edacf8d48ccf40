"""`hydra/sweeper=dlrun_optuna`: the settings of dlrun's Optuna search (Hydra imports this at start-up: no Optuna here)."""

from dataclasses import dataclass
from typing import Any, Dict, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class DlrunOptunaSweeperConf:
    _target_: str = "hydra_plugins.dlrun_optuna_sweeper.sweeper.DlrunOptunaSweeper"
    sampler: Any = "tpe"  # tpe | random | grid | cmaes, or {_target_: optuna.samplers.X, ...}
    seed: Optional[int] = "${seed}"  # type: ignore[assignment]  # the sampler's seed
    direction: Optional[str] = None  # maximize | minimize; null: from the monitor (val/acc up, val/loss down)
    storage: Optional[str] = None  # null: a journal file <sweep dir>/optuna.log; or any Optuna storage URL
    study_name: str = "dlrun"
    n_trials: int = 20  # trials in the study, counting those of earlier runs in the same sweep folder
    n_jobs: int = 1  # trials handed to the launcher at once (joblib/submitit run them in parallel)
    pruner: str = "median"  # median | hyperband | none
    pruner_warmup: int = 1  # epochs every trial gets before it may be pruned
    pruner_startup_trials: int = 3  # trials that finish unpruned before pruning starts
    params: Optional[Dict[str, Any]] = None  # the search space: key: choice(...) | range(...) | interval(...)


ConfigStore.instance().store(group="hydra/sweeper", name="dlrun_optuna", node=DlrunOptunaSweeperConf,
                             provider="dlrun")
