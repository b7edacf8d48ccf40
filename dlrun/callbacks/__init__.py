"""Callbacks: objects the loop calls at fixed points. See base.Callback for the hooks."""

from dlrun.callbacks.base import Callback

__all__ = ["Callback"]
