"""Keys of the object-building groups checked against their `_target_`'s arguments before anything runs.

`optimizer.momentun=0.9` would otherwise surface only when the object is built, after the data was
read, as a TypeError text. Here it is one ConfigError naming the key and the arguments the target takes.
A target that takes `**kwargs`, or cannot be imported yet (build() reports that), is not checked.
"""

from __future__ import annotations

import inspect

from omegaconf import DictConfig

from dlrun.errors import ConfigError

_HYDRA_KEYS = {"_target_", "_partial_", "_convert_", "_recursive_", "_args_"}
# keys dlrun reads itself from a group's node (not passed to the target) ...
_DLRUN_KEYS = {"model": ("pretrained", "freeze"), "optimizer": ("head_lr_mult",)}
# ... and arguments dlrun passes itself (a user cannot set them in the node)
_PASSED = {"model": ("in_shape", "num_classes"), "optimizer": ("params",), "scheduler": ("optimizer",),
           "initializer": ("tensor",)}


def _nodes(cfg: DictConfig):
    for group in ("model", "loss", "optimizer", "scheduler", "initializer"):
        yield group, group, cfg.get(group)
    for name, node in (cfg.get("callbacks") or {}).items():
        yield "callbacks", f"callbacks.{name}", node
    for name, node in (cfg.get("regularizer") or {}).items():
        yield "regularizer", f"regularizer.{name}", node


def _arguments(target) -> list[str] | None:
    """The keyword arguments `target` accepts, or None when it accepts any (**kwargs) or cannot be read.

    A factory that hands its **kwargs to one class says so with `passes_kwargs_to` (dlrun/nn/optimizers.py):
    it accepts its own arguments and that class's."""
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return None
    named = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if any(p.kind is p.VAR_KEYWORD for p in params):
        passed_to = getattr(target, "passes_kwargs_to", None)
        further = _arguments(passed_to) if passed_to is not None else None
        return None if further is None else named + [a for a in further if a not in named]
    return named


def check_target_keys(cfg: DictConfig) -> None:
    from hydra.utils import get_object

    from dlrun.config.contracts import where

    for group, key, node in _nodes(cfg):
        if not isinstance(node, DictConfig) or not isinstance(node.get("_target_"), str):
            continue
        try:
            target = get_object(node._target_)
        except Exception:
            continue
        accepted = _arguments(target)
        if accepted is None:
            continue
        own = set(_DLRUN_KEYS.get(group, ())) | _HYDRA_KEYS
        settable = [a for a in accepted if a not in _PASSED.get(group, ())]
        for name in node:
            if name not in own and name not in settable:
                raise ConfigError(f"{key}.{name}", node.get(name), f"{where(node._target_)} has no argument {name!r}; "
                                  f"it takes {', '.join(settable + sorted(_DLRUN_KEYS.get(group, ()))) or 'none'}")
