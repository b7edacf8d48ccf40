"""`dlrun` entry point: Hydra composes the config, `dlrun.tasks` validates it and runs the task.

Heavy imports (torch, torchvision, tensorboard) happen inside the task, so `dlrun --help` is fast.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from dlrun.config import register_configs

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def _hydra_main(cfg: DictConfig):
    from dlrun.tasks import run_task

    return run_task(cfg)


def main() -> None:
    from dlrun.distributed import agree_on_run_stamp

    agree_on_run_stamp()  # under torchrun: every rank resolves the same run folder
    if "--help" in sys.argv[1:] or "-h" in sys.argv[1:]:
        from dlrun.help import list_groups_from_one_repository

        list_groups_from_one_repository()
    _hydra_main()


if __name__ == "__main__":
    main()
