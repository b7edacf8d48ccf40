"""The callback interface (Keras/Lightning style) and how the `callbacks` config becomes a list.

A callback reads the loop's state (`loop.model`, `loop.epoch`, `loop.step`, `loop.run_dir`,
`loop.history`, ...) and may ask it to stop with `loop.request_stop(reason)`.
A user's own class is added from config with `callbacks.NAME._target_=package.Class`.
"""

from __future__ import annotations


class Callback:
    # where the loop calls it among the others (stable sort): progress -100 (its epoch line comes first),
    # checkpoints 100 (they save the state after every other callback's update for the epoch)
    order: int = 0
    # under DDP only rank 0 runs callbacks (files, terminal); one that changes the training itself
    # (stopping, unfreezing, restoring weights) sets this so that every process does the same
    all_ranks: bool = False

    def on_fit_start(self, loop) -> None: ...

    def on_epoch_start(self, loop) -> None: ...

    def on_before_optimizer_step(self, loop) -> None:
        """Gradients are in `p.grad` (unscaled when clipping is on); called only on optimizer steps."""

    def on_batch_end(self, loop, batch_index: int, loss) -> None:
        """`loss` is a 0-dim tensor: call .item() only when needed (it syncs a GPU)."""

    def on_epoch_end(self, loop, metrics: dict) -> None:
        """`metrics` is the epoch's row of metrics.jsonl (train/…, val/…, lr, time_s, …)."""

    def on_train_end(self, loop) -> None:
        """After the last epoch, before the test split is evaluated (e.g. to restore the best weights)."""

    def on_fit_end(self, loop, summary: dict) -> None:
        """Called whatever the end; `summary` is what summary.json will hold (callbacks may add to it)."""

    def on_exception(self, loop, error: BaseException) -> None: ...

    # checkpoint support: a stateful callback (early stopping's counters) resumes exactly
    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None: ...


def build_callbacks(cfg) -> dict[str, Callback]:
    """Instantiate each entry of the `callbacks` dict that is not null; keys are the names."""
    from dlrun.config.schema import build
    from dlrun.errors import ConfigError

    callbacks = {}
    for name, node in (cfg or {}).items():
        if node is None:
            continue
        if "_target_" not in node:  # e.g. a preset's tensorboard settings after callbacks=none removed tensorboard
            raise ConfigError(f"callbacks.{name}", "{...}", f"settings for a callback that is not on: add it "
                              f"(callbacks=[default,...]) or drop them with ~callbacks.{name}")
        cb = build(node, f"callbacks.{name}")
        if not isinstance(cb, Callback):
            from dlrun.config.contracts import where

            raise ConfigError(f"callbacks.{name}", where(node.get("_target_")), "must be a dlrun.callbacks.Callback subclass")
        callbacks[name] = cb
    return callbacks


def order_callbacks(callbacks: dict) -> dict:
    """The loop's calling order: by `order`, otherwise as configured (Lightning also runs checkpoints last)."""
    return dict(sorted(callbacks.items(), key=lambda item: getattr(item[1], "order", 0)))
