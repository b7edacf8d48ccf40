"""dlrun's Optuna search (`hydra/sweeper=dlrun_optuna`): ask a batch of trials, launch them, tell the results.

The study lives in a journal file in the sweep folder, so running the same command with
`hydra.sweep.dir=<that folder>` continues it: finished trials are kept and those a kill left
running are asked again (in their old folder, so a job with a last.pt resumes from it).
Job folders are numbered by trial number.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import optuna
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
from omegaconf import OmegaConf

from dlrun.errors import ConfigError
from dlrun.run_folder.metric_mode import mode_for
from dlrun.run_folder.run_record import FINISHED, INTERRUPTED, PRUNED, read_summary
from dlrun.sweeps.search import space as search_space
from dlrun.callbacks.optuna_trial import make_pruner, open_storage, trial_overrides

log = logging.getLogger("dlrun")

JOURNAL = "optuna.log"
RESULTS = "optimization_results.yaml"
TrialState = optuna.trial.TrialState
_DONE = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def make_sampler(spec: Any, seed: int | None, space: dict):
    """`tpe | random | grid | cmaes`, or what Hydra built from a `_target_` (a sampler, or a partial for a grid)."""
    samplers = optuna.samplers
    if isinstance(spec, samplers.BaseSampler):
        return spec
    if callable(spec):  # {_target_: optuna.samplers.GridSampler, _partial_: true}
        return spec(search_space.grid(space))
    name = str(spec).lower()
    if name == "tpe":
        return samplers.TPESampler(seed=seed)
    if name == "random":
        return samplers.RandomSampler(seed=seed)
    if name == "grid":
        return samplers.GridSampler(search_space.grid(space), seed=seed)
    if name == "cmaes":
        try:
            import cmaes  # noqa: F401  (Optuna's CMA-ES sampler needs it)
        except ImportError:
            raise ConfigError("hydra.sweeper.sampler", spec, "cmaes needs the cmaes package: pip install cmaes") from None
        return samplers.CmaEsSampler(seed=seed)
    raise ConfigError("hydra.sweeper.sampler", spec, "tpe, random, grid or cmaes (or a {_target_: ...} sampler)")


def _counts(study) -> int:
    """Trials that count toward n_trials: finished ones, except those that were interrupted and asked again."""
    return sum(1 for t in study.get_trials(deepcopy=False, states=_DONE) if "retried" not in t.user_attrs)


class OptunaSearch:
    def __init__(self, settings: dict, *, hydra_context, task_function, config):
        self.s = settings
        self.config = config
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # dlrun's own line names the study and its storage
        self.launcher = Plugins.instance().instantiate_launcher(config=config, hydra_context=hydra_context,
                                                                task_function=task_function)
        self.sweep_dir = Path(config.hydra.sweep.dir)

    def _direction(self) -> str:
        direction = self.s.get("direction")
        if direction is None:
            return "maximize" if mode_for(self.config.monitor) == "max" else "minimize"
        if direction not in ("maximize", "minimize"):
            raise ConfigError("hydra.sweeper.direction", direction, "maximize, minimize, or null (from the monitor)")
        return direction

    def _open_study(self, space: dict):
        s = self.s
        self.storage_url = s.get("storage") or str((self.sweep_dir / JOURNAL).resolve())
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        direction = self._direction()
        storage = open_storage(self.storage_url)
        seed = s.get("seed")
        if seed is not None:  # a continued search draws new points, not the first run's sequence again
            seed += sum(x.n_trials for x in optuna.get_all_study_summaries(storage) if x.study_name == s["study_name"])
        study = optuna.create_study(study_name=s["study_name"], storage=storage,
                                    sampler=make_sampler(s.get("sampler", "tpe"), seed, space),
                                    pruner=make_pruner(s.get("pruner", "median"), s.get("pruner_warmup", 1),
                                                       s.get("pruner_startup_trials", 3)),
                                    direction=direction, load_if_exists=True)
        if study.direction.name.lower() != direction:
            raise ConfigError("hydra.sweeper.direction", direction,
                              f"the study {s['study_name']} in {self.storage_url} already {study.direction.name.lower()}s")
        return study

    def _retry_interrupted(self, study) -> dict[int, str]:
        """Trials a kill left running: closed as failed and asked again with the same params, in the same folder."""
        folders = {}
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            study._storage.set_trial_user_attr(t._trial_id, "retried", True)
            study.tell(t.number, state=TrialState.FAIL)
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number}, skip_if_exists=False)
            if "run_dir" in t.user_attrs:
                folders[t.number] = t.user_attrs["run_dir"]
            log.info("trial %d was left running: asked again", t.number)
        return folders

    def _overrides(self, trial, fixed: dict, old_folder: str | None) -> list[str]:
        out = [f"{k}={v}" for k, v in trial.params.items()] + [f"{k}={v}" for k, v in fixed.items()]
        out += trial_overrides(self.storage_url, self.s["study_name"], trial.number)
        if old_folder:
            out.append(f"hydra.sweep.subdir={old_folder}")
        return out

    def _tell(self, study, trial, ret) -> bool:
        """Record a job's outcome in its trial; True when the job was interrupted (the search stops)."""
        run_dir = Path(ret.hydra_cfg.hydra.runtime.output_dir)
        summary = read_summary(run_dir)
        status = summary and summary.status
        if status == INTERRUPTED:
            return True  # left running: the next run of the command asks it again
        value = ret._return_value if ret.status == JobStatus.COMPLETED else None
        if status == PRUNED:
            outcome = {"state": TrialState.PRUNED}
        elif isinstance(value, (int, float)) and math.isfinite(value) and status in FINISHED:
            outcome = {"values": float(value)}
        else:
            outcome = {"state": TrialState.FAIL}
        try:
            study.tell(trial, **outcome)
        except RuntimeError as e:  # GridSampler stops the study when the grid is done: ask-and-tell has no loop to stop
            if "Study.stop" not in str(e):
                raise
        return False

    def _launch(self, trials, overrides) -> list:
        """One launch when trial numbers are consecutive (job folder number = trial number), else one each."""
        first = trials[0].number
        if [t.number for t in trials] == list(range(first, first + len(trials))):
            return list(self.launcher.launch(overrides, initial_job_idx=first))
        return [r for t, o in zip(trials, overrides) for r in self.launcher.launch([o], initial_job_idx=t.number)]

    def run(self, arguments: list[str]) -> list[list]:
        """The search; returns the launched jobs' JobReturns, a list per batch (as Hydra's basic sweeper does)."""
        params = [f"{k}={v}" for k, v in (self.s.get("params") or {}).items()]
        space, fixed = search_space.parse(params + list(arguments))
        if not space:
            raise ConfigError("hydra.sweeper.params", None, "nothing to search: give choice(...), range(...) or "
                              "interval(...) values (see dlrun/conf/hparams_search/)")
        study = self._open_study(space)
        n_trials = self.s["n_trials"]
        if isinstance(study.sampler, optuna.samplers.GridSampler):
            n_trials = min(n_trials, math.prod(len(v) for v in search_space.grid(space).values()))
        old_folders = self._retry_interrupted(study)
        done = _counts(study)
        log.info("Optuna study %s: %d of %d trials done, %s sampler, %s pruner, %s %s; dashboard: optuna-dashboard %s",
                 study.study_name, done, n_trials, type(study.sampler).__name__, type(study.pruner).__name__,
                 study.direction.name.lower(), self.config.monitor, self.storage_url)
        batches = []
        while (left := n_trials - _counts(study)) > 0:
            trials = [study.ask(space) for _ in range(min(left, max(1, self.s["n_jobs"])))]
            overrides = [self._overrides(t, fixed, old_folders.get(t.user_attrs.get("retry_of"))) for t in trials]
            returns = self._launch(trials, overrides)
            batches.append(returns)
            if any([self._tell(study, t, r) for t, r in zip(trials, returns)]):
                log.info("search interrupted: run the same command with hydra.sweep.dir=%s to continue", self.sweep_dir)
                return batches
        self._write_results(study)
        return batches

    def _write_results(self, study) -> None:
        try:
            best = study.best_trial
        except ValueError:
            log.warning("no trial of study %s completed", study.study_name)
            return
        states = [t.state.name.lower() for t in study.get_trials(deepcopy=False, states=_DONE)
                  if "retried" not in t.user_attrs]
        results = {"name": "dlrun_optuna", "study_name": study.study_name, "storage": self.storage_url,
                   "best_trial": best.number, "best_params": best.params, "best_value": best.value,
                   "trials": {s: states.count(s) for s in ("complete", "pruned", "fail")}}
        OmegaConf.save(OmegaConf.create(results), self.sweep_dir / RESULTS)
        try:  # before the sweep's end: report.html embeds every figure of the sweep folder
            from dlrun.results.figures import optuna_figures

            optuna_figures(study, self.sweep_dir)
        except Exception as e:  # noqa: BLE001 - a figure is a convenience; the study is saved
            log.warning("could not draw the study's figures: %s: %s", type(e).__name__, e)
        log.info("best trial %d: %s=%.4f with %s", best.number, self.config.monitor, best.value,
                 " ".join(f"{k}={v}" for k, v in best.params.items()))
