"""TensorBoard: every numeric metric as a scalar per epoch, and the run's hparams with its real results."""

from __future__ import annotations

import numbers

from omegaconf import OmegaConf

from dlrun.callbacks.base import Callback

_NOT_SCALARS = ("epoch", "step")


def flat_hparams(cfg) -> dict:
    """The run's config flattened to `group.key: value` with scalar values (TensorBoard's HPARAMS tab)."""
    flat = {}

    def walk(node, prefix):
        for key, value in node.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(value, f"{name}.")
            elif isinstance(value, (bool, int, float, str)):
                flat[name] = value
            elif isinstance(value, list):
                flat[name] = str(value)

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return {k: v for k, v in flat.items() if not k.startswith("hydra")}


class TensorBoardLogger(Callback):
    def __init__(self, dirname: str = "tb"):
        self.dirname = dirname
        self.writer = None

    def on_fit_start(self, loop) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # purge_step drops events a resumed run is about to write again, so the curve stays one line
        self.writer = SummaryWriter(str(loop.run_dir / self.dirname), purge_step=loop.epoch + 1 if loop.resumed_from else None)

    def on_epoch_end(self, loop, metrics: dict) -> None:
        for key, value in metrics.items():
            if key not in _NOT_SCALARS and isinstance(value, numbers.Number):
                self.writer.add_scalar(key, value, loop.epoch)
        self.writer.flush()

    def on_fit_end(self, loop, summary: dict) -> None:
        if self.writer is None:
            return
        results = {f"hparam/{k}": v for k, v in (summary.get("test") or {}).items()}
        if summary.get("best"):
            results.update({f"hparam/best_{k}": v for k, v in summary["best"].items() if k != "epoch"})
        if results:
            self.writer.add_hparams(flat_hparams(loop.cfg), results, run_name=".")
        self.writer.close()
