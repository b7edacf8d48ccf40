"""One-line errors for a component that does not meet dlrun's contract (docs/extending.md): they name the
class or function, the file it lives in and what it accepts, so that the user's own code is easy to fix."""

from __future__ import annotations

import inspect
import re

from dlrun.errors import DlrunError


class ContractError(DlrunError):
    """A user's component that dlrun cannot call as its group's contract says."""


def _locate(target):
    from hydra.utils import get_object

    try:
        return get_object(target) if isinstance(target, str) else target
    except Exception:
        return None


def where(target) -> str:
    """`pkg.Class (path/to/file.py)`, or the bare name when it cannot be found."""
    obj = _locate(target)
    name = target if isinstance(target, str) else f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', obj)}"
    try:
        return f"{name} ({inspect.getsourcefile(obj)})"
    except TypeError:
        return str(name)


def accepted(target) -> list[str]:
    """The argument names a class or function takes (`**options` shown as such)."""
    obj = _locate(target)
    try:
        params = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):
        return []
    return [("**" if p.kind == p.VAR_KEYWORD else "*" if p.kind == p.VAR_POSITIONAL else "") + p.name
            for p in params if p.name != "self"]


def signature_error(key: str, node, cause) -> ContractError | None:
    """The class rejected a key of its config node, or missed one: which, and what it takes instead."""
    if not isinstance(cause, TypeError) or node is None:
        return None
    text = str(cause)
    target = node.get("_target_")
    takes = ", ".join(accepted(target)) or "?"
    if m := re.search(r"unexpected keyword argument '(\w+)'", text):
        return ContractError(f"{key}: {where(target)} does not take {key}.{m[1]}; it takes {takes}. Drop the key, "
                             f"or give the class a config of its own (conf/{key.split('.')[0]}/NAME.yaml)")
    if m := re.search(r"missing \d+ required (?:positional |keyword-only )?arguments?: (.+)$", text):
        return ContractError(f"{key}: {where(target)} needs {m[1]}, which {key} does not set; it takes {takes}")
    return None


def check_type(obj, kind: type, key: str, target, contract: str) -> None:
    """What a component's `_target_` returned must be a `kind`."""
    if not isinstance(obj, kind):
        raise ContractError(f"{key}: {where(target)} returned a {type(obj).__name__}, not a {contract}")
