"""Callbacks: objects the loop calls at fixed points. See base.Callback for the hooks.

`from dlrun.callbacks import EarlyStopping` works too; those modules (torch, TensorBoard) load on first use.
"""

from dlrun.callbacks.base import Callback

_LAZY = {
    "EarlyStopping": "dlrun.callbacks.early_stopping",
    "ModelCheckpoint": "dlrun.callbacks.model_checkpoint",
    "TensorBoardLogger": "dlrun.callbacks.tensorboard",
}

__all__ = ["Callback", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
