"""`dlrun --help`: the config groups, their options and the defaults, read straight from the YAML folders.

Plain `dlrun --help` imports neither Hydra nor torch and composes nothing: it prints the header and footer
of conf/hydra/help/dlrun.yaml, each group's options (dlrun's own and the project's, as Hydra's search path
would list them) and the default choice of each group. The composed config is `dlrun --cfg job`; a help
with overrides (`dlrun model=mlp --help`) is Hydra's own, which composes them, and lists its groups from one
config repository (`list_groups_from_one_repository`).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

CONF = Path(__file__).parents[1] / "conf"
WIDTH = 80


def wants_plain_help(argv: list[str]) -> bool:
    """`--help` or `-h` with no override: what the YAML folders alone can answer."""
    return any(a in ("--help", "-h") for a in argv) and all(a.startswith("-") for a in argv)


def config_groups(project: Path | None) -> dict[str, list[str]]:
    """GROUP -> its options: every folder of YAML files under conf/ but hydra/, and the project's
    conf/GROUP/ and experiments/ (the experiment group), as dlrun-project:// serves them."""
    roots = [(CONF, "")]
    if project is not None:
        roots += [(project / "conf", ""), (project / "experiments", "experiment")]
    groups: dict[str, set[str]] = {}
    for root, prefix in roots:
        if not root.is_dir():
            continue
        for path in root.rglob("*.yaml"):
            group = "/".join(filter(None, (prefix, path.parent.relative_to(root).as_posix().strip("."))))
            if group and group.split("/")[0] != "hydra":
                groups.setdefault(group, set()).add(path.stem)
    return {g: sorted(options) for g, options in sorted(groups.items())}


def default_choices() -> dict[str, str]:
    """GROUP -> the option conf/config.yaml's defaults list chooses (groups left null are not listed)."""
    import yaml

    defaults = yaml.safe_load((CONF / "config.yaml").read_text()).get("defaults", [])
    return {k: v for item in defaults if isinstance(item, dict) for k, v in item.items()
            if not k.startswith("override") and v is not None}


def plain_help(project: Path | None) -> str:
    import yaml

    text = yaml.safe_load((CONF / "hydra" / "help" / "dlrun.yaml").read_text())
    lines = [text["header"].rstrip(), "", "== Config groups (choose with GROUP=OPTION) =="]
    for group, options in config_groups(project).items():
        lines += textwrap.wrap(f"{group}: {', '.join(options)}", WIDTH, subsequent_indent="    ", break_on_hyphens=False)
    chosen = " ".join(f"{g}={o}" for g, o in default_choices().items())
    lines += ["", "== Defaults (dlrun --cfg job shows the whole composed config) =="]
    lines += textwrap.wrap(chosen, WIDTH, break_on_hyphens=False)
    return "\n".join(lines + ["", text["footer"].rstrip()])


def list_groups_from_one_repository() -> None:
    """Hydra's own help (with overrides) builds a fresh CachingConfigRepository, a deep copy of every loaded
    config, for each group it lists, twice over: 85 % of its time. Listing reads options only, so one
    repository per (config name, overrides) gives the same text: Hydra's ConfigLoaderImpl.get_group_options
    is patched to reuse it (help only: nothing composes)."""
    try:
        from hydra._internal.config_loader_impl import ConfigLoaderImpl
        from hydra.core.object_type import ObjectType
    except ImportError:  # another Hydra layout: its own (slower) listing still works
        return
    if not hasattr(ConfigLoaderImpl, "_parse_overrides_and_create_caching_repo"):
        return
    repos: dict = {}

    def get_group_options(self, group_name, results_filter=ObjectType.CONFIG, config_name=None, overrides=None):
        key = (id(self), config_name, tuple(overrides or []))
        if key not in repos:
            repos[key] = self._parse_overrides_and_create_caching_repo(config_name, list(overrides or []))[1]
        return repos[key].get_group_options(group_name, results_filter)

    ConfigLoaderImpl.get_group_options = get_group_options
