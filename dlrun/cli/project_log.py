"""The Hydra callback that, in every job's process, puts the project's code on sys.path and logs the project
files the run's config came from (hydra.callbacks.project_files in conf/config.yaml)."""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.experimental.callback import Callback as HydraCallback

from dlrun.cli.project import BUILTIN_CONF, active_project, project_file, use_project_code

log = logging.getLogger("dlrun")


def composed_from(config) -> list[str]:
    """The `GROUP/OPTION` files the job's config was composed from, nested defaults included (callbacks/default
    pulls in callbacks/model_checkpoint). Hydra's defaults list needs the app's loader; where there is none
    (a job unpickled on a cluster node) the recorded group choices stand in."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    from dlrun.config.schema import typed_overrides

    try:
        defaults = GlobalHydra.instance().config_loader().compute_defaults_list(
            config_name=config.hydra.job.config_name, overrides=typed_overrides(config.hydra), run_mode=RunMode.RUN)
        paths = [d.config_path for d in defaults.defaults if d.config_path]
    except Exception:  # not initialised, or a loader without the method
        paths = [f"{group}/{option}" for group, option in config.hydra.runtime.choices.items() if option]
    return [p for p in paths if "/" in p and not p.startswith("hydra/")]


def project_choices(config_paths: list[str], root: Path) -> list[str]:
    """One phrase per config file that comes from the project, saying when it replaces dlrun's own."""
    used = []
    for config_path in dict.fromkeys(config_paths):
        group, _, option = config_path.rpartition("/")
        path = project_file(root, group, option)
        if path is not None:
            shadows = (BUILTIN_CONF / f"{config_path}.yaml").is_file()
            used.append(f"{group}={option} from {path}" + (" (replaces dlrun's own)" if shadows else ""))
    return used


class ProjectLog(HydraCallback):
    """Hydra callback (conf/config.yaml): in every job's process, the project's code on sys.path and one log line
    naming the project files the run's config came from."""

    def on_job_start(self, config, **kwargs) -> None:
        root = use_project_code()
        if active_project() is None:  # no conf/ or experiments/: no project file can be in the config
            return  # (and Hydra's defaults list, composed again, costs 0.08 s of start-up)
        used = project_choices(composed_from(config), root)
        if used:
            log.info("project %s: %s", root, ", ".join(used))
