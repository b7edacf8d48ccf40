"""`dlrun task=landscape`: optimizers on 2-D loss surfaces, gradients and critical points (see task.py)."""

from dlrun.landscape.task import overlay, run

__all__ = ["overlay", "run"]
