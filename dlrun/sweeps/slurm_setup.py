"""The Hydra callback that puts dlrun's SlurmLauncher (dlrun/sweeps/slurm.py) in place of hydra-submitit-launcher's.

Hydra instantiates every callback of `hydra.callbacks` for every run, so this module stays light: the
launcher (and submitit) are imported only when a SLURM sweep starts."""

from __future__ import annotations

from hydra.experimental.callback import Callback as HydraCallback

HYDRA_TARGET = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
# Hydra instantiates launchers only from the hydra_plugins package; this name maps to dlrun's class
TARGET = "hydra_plugins.hydra_submitit_launcher.dlrun.SlurmLauncher"


class SlurmSetup(HydraCallback):
    """Before the sweeper builds the launcher: use dlrun's SlurmLauncher instead of the plugin's."""

    def on_multirun_start(self, config, **kwargs) -> None:
        launcher = config.hydra.get("launcher")
        if launcher is None or launcher.get("_target_") != HYDRA_TARGET:
            return
        from hydra.core.plugins import Plugins

        from dlrun.sweeps.slurm import SlurmLauncher

        Plugins.instance().class_name_to_class[TARGET] = SlurmLauncher
        launcher._target_ = TARGET
