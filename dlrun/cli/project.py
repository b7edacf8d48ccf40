"""A user's project folder: its `conf/` and `experiments/` are searched before dlrun's own configs, and its
code is importable for `_target_`.

The project is `--project PATH`, else `$DLRUN_PROJECT`, else the working directory. Hydra finds its configs
through the search-path plugin in `hydra_plugins/dlrun_project` (a config source with the scheme below).
This module imports neither torch nor Hydra: `dlrun --help` and Hydra's plugin scan import it; the Hydra
callback that logs the project files a run used is dlrun/cli/project_log.py.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

PROJECT_ENV = "DLRUN_PROJECT"
SCHEME = "dlrun-project"
BUILTIN_CONF = Path(__file__).parents[1] / "conf"
# groups whose nodes dlrun calls with arguments of its own later (parameters, the optimizer, a tensor):
# a `_target_` swapped on the command line keeps `_partial_: true`
PARTIAL_GROUPS = ("optimizer", "scheduler", "initializer")


def project_dir() -> Path:
    env = os.environ.get(PROJECT_ENV)
    return Path(env).expanduser().resolve() if env else Path.cwd()


def active_project() -> Path | None:
    """The project folder when it has configs of its own (conf/ or experiments/), else None."""
    root = project_dir()
    return root if (root / "conf").is_dir() or (root / "experiments").is_dir() else None


def config_candidates(root: Path, config_path: str) -> list[Path]:
    """Where the project keeps `GROUP/NAME(.yaml)`: `experiments/` for the experiment group (or conf/experiment/),
    `conf/GROUP/` for every other group. Top-level names (config.yaml) are never the project's: dlrun's root
    config stays dlrun's."""
    group, _, rest = config_path.strip("/").partition("/")
    if group == "experiment":
        return [root / "experiments" / rest, root / "conf" / "experiment" / rest]
    return [root / "conf" / config_path.strip("/")]


def project_file(root: Path, group: str, option: str) -> Path | None:
    for path in config_candidates(root, f"{group}/{option}.yaml"):
        if path.is_file():
            return path
    return None


def use_project_code(root: Path | None = None) -> Path:
    """The project folder first on sys.path, as `python -m` puts the working directory: `_target_: models.Net`."""
    root = str(root or project_dir())
    if root not in sys.path:
        sys.path.insert(0, root)
    return Path(root)


# -- the command line, before Hydra sees it ---------------------------------------------------------------
_TARGET = re.compile(r"^(\+\+)?([A-Za-z_][\w.]*)\._target_=(.*)$")


def swap_targets(args: list[str]) -> list[str]:
    """`GROUP._target_=pkg.Cls` replaces the whole node: the old class's keys do not come along.

    Hydra would merge the new `_target_` into the chosen option's keys (LeNet's `activation` handed to the
    user's class); here the node is deleted first (`~GROUP`) and every `GROUP.key=value` given becomes a
    forced add. A `+GROUP._target_=...` (a new node) and a node whose option is also chosen are left alone.
    """
    swapped = []
    for arg in args:
        m = _TARGET.match(arg)
        if m and not any(a.split("=", 1)[0].lstrip("+~") == m[2] for a in args):
            swapped.append(m[2])
    if not swapped:
        return args
    out = [f"~{path}" for path in swapped]
    for arg in args:
        key = arg.split("=", 1)[0].lstrip("+")
        if "=" in arg and not arg.startswith("-") and any(key.startswith(p + ".") for p in swapped):
            arg = "++" + arg.lstrip("+")
        out.append(arg)
    for path in swapped:
        if path in PARTIAL_GROUPS and not any(a.lstrip("+").startswith(f"{path}._partial_=") for a in args):
            out.append(f"++{path}._partial_=true")
    return out


def project_argv(args: list[str]) -> list[str]:
    """`dlrun init [DIR]` runs here and exits; `--project PATH` becomes $DLRUN_PROJECT (child processes of the run,
    DDP ranks and sweep jobs, inherit it); target swaps are rewritten. Returns the arguments for Hydra."""
    if args[:1] == ["init"]:
        from dlrun.cli.scaffold import init_main

        sys.exit(init_main(args[1:]))
    out, i, given = [], 0, None
    while i < len(args):
        arg = args[i]
        if arg == "--project" or arg.startswith("--project="):
            value = arg.partition("=")[2] if "=" in arg else (args[i + 1] if i + 1 < len(args) else "")
            i += 1 if "=" in arg else 2
            if not value:
                _usage_error("--project needs a folder: dlrun --project PATH ...")
            os.environ[PROJECT_ENV] = given = value
            continue
        out.append(arg)
        i += 1
    env = os.environ.get(PROJECT_ENV)
    if env:
        if not Path(env).expanduser().is_dir():
            _usage_error(f"the project folder {env} ({'--project' if given else PROJECT_ENV}) does not exist")
        os.environ[PROJECT_ENV] = str(Path(env).expanduser().resolve())  # the same folder from a job's own cwd
    return swap_targets(out)


def _usage_error(message: str) -> None:
    from dlrun.errors import EXIT_USAGE

    print(f"error: {message}", file=sys.stderr)
    sys.exit(EXIT_USAGE)
