"""The Hydra Sweeper class; the work is in dlrun.sweeps.search.sweeper (imported when a search starts)."""

import sys
from typing import Any, List

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class DlrunOptunaSweeper(Sweeper):
    def __init__(self, **settings: Any) -> None:
        self.settings = settings

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from dlrun.sweeps.search.sweeper import OptunaSearch

        self.search = OptunaSearch(self.settings, hydra_context=hydra_context, task_function=task_function,
                                   config=config)

    def sweep(self, arguments: List[str]) -> Any:
        from dlrun import api
        from dlrun.errors import DlrunError

        try:
            return self.search.run(arguments)
        except DlrunError as e:  # a user mistake in the search settings: one line, not Hydra's traceback
            if api.in_python():
                raise
            print(f"error: {e}", file=sys.stderr)
            sys.exit(e.exit_code)
