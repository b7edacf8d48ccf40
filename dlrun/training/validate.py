"""The checks a run makes on its composed config before anything is built: unknown keys, each typed
group's ranges (its dataclass in dlrun/config/schema.py), each component group's `CONFIG_RULES` (next to
the component) and the rules that tie two groups together, which live here. One ConfigError names the key,
its value and what is allowed."""

from __future__ import annotations

from omegaconf import DictConfig, ListConfig, OmegaConf

from dlrun.config.schema import DataConfig, DlrunConfig, EvalConfig, LrFindConfig, PredictConfig, TrainerConfig, require
from dlrun.errors import ConfigError


class UnknownKeyError(ConfigError):
    def __init__(self, key: str, known: list[str]):
        import difflib

        close = difflib.get_close_matches(key.rsplit(".", 1)[-1], known, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        group = key.rsplit(".", 1)[0] if "." in key else "the top level"
        super().__init__(key, "...", f"there is no such key ({hint}{group} has: {', '.join(known)})")
        self.args = (f"unknown key {key}: {hint}{group} has {', '.join(known)}",)


# the typed parts of the config: Hydra refuses an unknown key there, except when it is added with
# `+key=value` (force-add bypasses the schema), so the keys are checked again here
_TYPED = {"": DlrunConfig, "data": DataConfig, "trainer": TrainerConfig, "eval": EvalConfig,
          "predict": PredictConfig, "lr_find": LrFindConfig}


def _validate_known_keys(cfg: DictConfig) -> None:
    from dataclasses import fields

    for path, schema in _TYPED.items():
        node = cfg if not path else cfg.get(path)
        known = [f.name for f in fields(schema)]
        for key in (node.keys() if isinstance(node, DictConfig) else ()):
            if key not in known:
                raise UnknownKeyError(f"{path}.{key}" if path else str(key), known)


def _check_typed_groups(cfg: DictConfig) -> None:
    """Each typed group's values through its dataclass, whose `__post_init__` checks their ranges.

    Nested nodes (the object-building groups, data.source) are left at their defaults here: their rules
    live next to the components."""
    from dataclasses import fields

    for path, schema in _TYPED.items():
        node = cfg if not path else cfg.get(path)
        if not isinstance(node, DictConfig):
            continue
        names = {f.name for f in fields(schema)}
        values = {k: node.get(k) for k in node if k in names and not isinstance(node.get(k), DictConfig)}
        schema(**{k: OmegaConf.to_container(v, resolve=True) if isinstance(v, ListConfig) else v
                  for k, v in values.items()})


def _check_component_groups(cfg: DictConfig) -> None:
    """The keys of the object-building groups, by the CONFIG_RULES written next to each component."""
    from dlrun.models import CONFIG_RULES as MODEL
    from dlrun.nn.losses import CONFIG_RULES as LOSS
    from dlrun.nn.optimizers import CONFIG_RULES as OPTIMIZER
    from dlrun.nn.regularizers import CONFIG_RULES as REGULARIZER

    nodes = [("model", cfg.get("model"), MODEL), ("loss", cfg.get("loss"), LOSS),
             ("optimizer", cfg.get("optimizer"), OPTIMIZER)]
    nodes += [(f"regularizer.{name}", node, REGULARIZER) for name, node in (cfg.get("regularizer") or {}).items()]
    for prefix, node, rules in nodes:
        if not isinstance(node, DictConfig):
            continue
        for name, (ok, allowed) in rules.items():
            value = node.get(name)
            if value is not None:
                require(ok(value), f"{prefix}.{name}", value, allowed)


def validate(cfg: DictConfig) -> None:
    """Reject unknown keys and out-of-range values before anything is built; one ConfigError names key,
    value, rule. The rules of one group live with the group (see the module's docstring); those that
    tie two groups together are here."""
    _validate_known_keys(cfg)
    _check_typed_groups(cfg)
    _check_component_groups(cfg)
    from dlrun.config.target_keys import check_target_keys

    check_target_keys(cfg)
    n, freeze = cfg.trainer.unfreeze_at_epoch, OmegaConf.select(cfg, "model.freeze")
    if n:
        require(freeze not in (None, "none", 0), "trainer.unfreeze_at_epoch", n,
                "needs frozen layers: model.freeze=backbone or N")
        require(cfg.trainer.devices == 1, "trainer.unfreeze_at_epoch", n,
                "a single process (DistributedDataParallel fixes its parameters when it starts)")
    if cfg.task == "predict":
        require(bool(cfg.predict.inputs), "predict.inputs", cfg.predict.inputs,
                "task=predict needs predict.inputs=PATH (an image, a folder, a glob or a .npy file)")
    if cfg.task == "landscape":
        if cfg.landscape is None:
            from pathlib import Path

            names = sorted(p.stem for p in (Path(__file__).parents[1] / "conf" / "landscape").glob("*.yaml"))
            raise ConfigError("landscape", None, f"task=landscape needs landscape=NAME, one of {', '.join(names)}")
        from dlrun.landscape.task import check_config

        check_config(cfg.landscape)
    elif cfg.landscape is not None:  # `dlrun landscape=bowl` alone would silently train the default network
        raise ConfigError("task", cfg.task, "landscape=... is chosen: add task=landscape (or drop landscape=)")
