"""dlrun from Python: `dlrun.run([...])` and `dlrun.sweep([...])` compose and run exactly what the command would.

Hydra composes the config from the same files (initialize_config_dir + Hydra's run/multirun), so the
validation, the run folder and its files are those of `dlrun ARGS` / `dlrun -m ARGS`. A user mistake
raises dlrun's own error (DlrunError and its subclasses) with the one-line message.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from dlrun.errors import EXIT_INTERRUPTED, DlrunError

log = logging.getLogger("dlrun")
CONF_DIR = str(Path(__file__).parent / "conf")
_calls = 0  # dlrun.run / dlrun.sweep calls in progress


def in_python() -> bool:
    """True inside dlrun.run / dlrun.sweep: errors are raised to the caller, not printed as an exit."""
    return _calls > 0


def _hydra_run(overrides, multirun: bool):
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException

    from dlrun.config import schema as config

    config.register_configs()
    config._STAMP = None  # each call is a new run (or sweep) folder, as each command would be
    os.environ.pop("DLRUN_RUN_STAMP", None)  # left by an earlier sweep in this process
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    global _calls
    _calls += 1
    try:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3", job_name="dlrun"):
            hydra = GlobalHydra.instance().hydra
            if multirun:
                from dlrun.training.tasks import run_task

                return hydra.multirun(config_name="config", task_function=run_task, overrides=list(overrides))
            return hydra.run(config_name="config", task_function=_run_one, overrides=list(overrides))
    except HydraException as e:  # a bad override or option: the message Hydra would print, as one line
        raise DlrunError(str(e).strip().splitlines()[0]) from None
    finally:
        _calls -= 1
        from hydra.core.hydra_config import HydraConfig

        HydraConfig.instance().cfg = None  # Hydra leaves its job's config set: the caller's next code is no job
        os.environ.pop("DLRUN_RUN_STAMP", None)  # a sweep's stamp for its jobs; the next call is a new folder


def _run_one(cfg):
    """Hydra's task function for dlrun.run: the CLI's, but a failure raises instead of exiting."""
    from hydra.core.hydra_config import HydraConfig

    from dlrun.training.tasks import execute

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        code, result = execute(cfg, run_dir, reraise=True)
    except SystemExit as e:  # the run was interrupted (Ctrl-C): it saved last.pt
        error = DlrunError(f"interrupted; continue with trainer.resume=true hydra.run.dir={run_dir}")
        error.exit_code = e.code or EXIT_INTERRUPTED
        raise error from None
    return result


def run(overrides=()) -> dict:
    """Train (or run `task=...`) as `dlrun OVERRIDES` does; returns the run's summary.json as a dict.

    >>> summary = dlrun.run(["model=mlp", "optimizer=sgd", "trainer.max_epochs=2"])
    >>> summary["test"]["test/acc"]
    """
    from dlrun.run_folder.run_record import read_summary

    ret = _hydra_run(overrides, multirun=False)
    run_dir = Path(ret.hydra_cfg.hydra.runtime.output_dir)
    record = read_summary(run_dir)
    summary = record.to_dict() if record is not None else {"result": ret.return_value}
    summary.setdefault("run_dir", str(run_dir))
    return summary


def sweep(overrides=()) -> list[dict]:
    """A multirun as `dlrun -m OVERRIDES` does; returns the rows of its summary.csv (best first) as dicts."""
    from dlrun.results.compare import sort_rows
    from dlrun.sweeps.sweep import sweep_rows

    # the mode `dlrun -m` sets: its jobs know they are a sweep's (skip or resume on a rerun, jobs.jsonl)
    returns = _hydra_run([*overrides, "hydra.mode=MULTIRUN"], multirun=True)
    jobs = [r for batch in returns for r in batch] if returns and isinstance(returns[0], list) else (returns or [])
    if not jobs:
        return []
    sweep_dir = Path(jobs[0].hydra_cfg.hydra.sweep.dir)
    return sort_rows(sweep_rows(sweep_dir))
