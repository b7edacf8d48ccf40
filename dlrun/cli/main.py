"""`dlrun` entry point: Hydra composes the config, `dlrun.training.tasks` validates it and runs the task.

Heavy imports (torch, torchvision, tensorboard) happen inside the task, and Hydra's only once the command
line is known: a plain `dlrun --help` needs neither (dlrun/cli/help.py).
Before Hydra sees the command line, `prepare_argv` puts it in the order Hydra's parser needs and
refuses flag combinations Hydra would answer with a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Hydra's flags (hydra/_internal/utils.py get_args_parser): those that take a value, and --info's topics
_FLAGS_WITH_VALUE = {"-c", "--cfg", "-p", "--package", "-cp", "--config-path", "-cn", "--config-name",
                     "-cd", "--config-dir", "--experimental-rerun"}
_INFO = {"-i", "--info"}
_INFO_TOPICS = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}
_MULTIRUN = {"-m", "--multirun"}
_SHOW_ONLY = {"-c", "--cfg", "-i", "--info", "-sc", "--shell-completion"}


class UsageError(Exception):
    """A command line Hydra cannot run: printed as one line, exit code 2."""


def _flag(token: str) -> str:
    return token.split("=", 1)[0]


def prepare_argv(argv: list[str]) -> list[str]:
    """Flags first, then overrides: `dlrun a=1 -m b=1,2` means the same as `dlrun -m a=1 b=1,2`.

    Hydra's argparse takes the overrides as one positional list, so overrides on both sides of a
    flag fail there with `unrecognized arguments`. A run folder that already holds a run keeps its
    `.hydra/` files (a resume, or a refused reuse, must not overwrite the run's own record).
    """
    flags, overrides, i = [], [], 0
    while i < len(argv):
        token = argv[i]
        if token.startswith("-"):
            flags.append(token)
            takes_value = _flag(token) in _FLAGS_WITH_VALUE and "=" not in token
            optional_value = token in _INFO and i + 1 < len(argv) and argv[i + 1] in _INFO_TOPICS
            if (takes_value or optional_value) and i + 1 < len(argv):
                flags.append(argv[i + 1])
                i += 1
        else:
            overrides.append(token)
        i += 1
    names = {_flag(f) for f in flags}
    if names & _MULTIRUN and names & _SHOW_ONLY:
        shown = sorted(names & _SHOW_ONLY)[0]
        raise UsageError(f"{shown} shows one composed config and cannot be combined with -m/--multirun: "
                         f"drop -m to see the config of one job (e.g. with the first value of each swept key)")
    if not names & _MULTIRUN:
        run_dir = next((o.split("=", 1)[1] for o in overrides if o.startswith("hydra.run.dir=")), None)
        if run_dir and _holds_a_run(Path(run_dir)) and not any(o.startswith("hydra.output_subdir=") for o in overrides):
            overrides.append("hydra.output_subdir=null")
    return flags + overrides


def _holds_a_run(run_dir: Path) -> bool:
    """A folder where training started (not one where only start-up or a refused config happened)."""
    return (run_dir / ".hydra" / "config.yaml").is_file() and (
        (run_dir / "metrics.jsonl").exists() or (run_dir / "checkpoints").is_dir())


# groups whose options are `@package _global_` presets that may set hydra.mode (experiment presets are sweeps)
_MODE_SETTERS = ("experiment", "hparams_search", "hydra.mode")


def mode_is_run(argv: list[str], project_active: bool) -> bool:
    """Whether the command line alone says this is one run: no flag, no preset that may set hydra.mode, no
    project (whose configs could), so Hydra's `get_mode` need not compose the whole config to read it."""
    if project_active or any(a.startswith("-") for a in argv):
        return False
    keys = [a.split("=", 1)[0].lstrip("+~") for a in argv]
    return not any(k == s or k.startswith(s + ".") or k.startswith(s + "/") for k in keys for s in _MODE_SETTERS)


def _skip_mode_compose(skip: bool) -> None:
    """Hydra composes the config once to read hydra.mode and again to run (hydra/_internal/utils.py
    _run_hydra): when `skip` (mode_is_run), get_mode answers None (mode unset: RUN) without the first
    compose. Set for each call of main(): a later command in the same process decides for itself."""
    from hydra._internal.hydra import Hydra

    if not hasattr(Hydra, "get_mode"):  # another Hydra layout: its own two composes still work
        return
    original = getattr(Hydra.get_mode, "__wrapped__", Hydra.get_mode)

    def get_mode(self, config_name, overrides):
        return None if skip else original(self, config_name, overrides)

    get_mode.__wrapped__ = original
    Hydra.get_mode = get_mode


def _task(cfg):
    from dlrun.training.tasks import run_task

    return run_task(cfg)


def main() -> None:
    from dlrun.cli.help import list_groups_from_one_repository, plain_help, wants_plain_help
    from dlrun.cli.project import active_project, project_argv
    from dlrun.training.distributed import agree_on_run_stamp

    try:  # `dlrun init`, --project PATH and GROUP._target_ swaps first: prepare_argv sees Hydra's arguments only
        sys.argv[1:] = prepare_argv(project_argv(sys.argv[1:]))
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    project = active_project()
    if wants_plain_help(sys.argv[1:]):
        print(plain_help(project))
        return
    import hydra

    from dlrun.config.schema import register_configs

    register_configs()
    agree_on_run_stamp()  # under torchrun: every rank resolves the same run folder
    if "--help" in sys.argv[1:] or "-h" in sys.argv[1:]:
        list_groups_from_one_repository()
    _skip_mode_compose(mode_is_run(sys.argv[1:], project_active=project is not None))
    try:
        hydra.main(version_base="1.3", config_path="pkg://dlrun.conf", config_name="config")(_task)()
    except KeyboardInterrupt:  # Ctrl-C before the loop took over SIGINT (start-up) or after it ended
        from dlrun.errors import EXIT_INTERRUPTED

        print("interrupted (Ctrl-C) outside training: nothing was trained since the last checkpoint",
              file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    main()
