"""`dlrun task=lr_find`: the learning-rate range test (Smith 2017; fastai's and Lightning's lr finder).

The lr grows exponentially from lr_find.min_lr to lr_find.max_lr, one optimizer step per batch;
the loss is smoothed (an exponential moving average) and the test stops when the smoothed loss
has grown to lr_find.diverge times its lowest value. The suggestion is a tenth of the lr at
the lowest smoothed loss. The model and optimizer are thrown away: the run folder keeps
lr_find.png and lr_find.json.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

log = logging.getLogger("dlrun")


def _batches(loader):
    """Training batches for as long as they are asked for (a new shuffled epoch when one ends)."""
    epoch = 0
    while True:
        loader.set_epoch(epoch)
        yield from loader.batches(start=0)
        epoch += 1


def range_test(loop, min_lr: float, max_lr: float, num_steps: int, smoothing: float, diverge: float) -> dict:
    """Train `num_steps` steps at exponentially growing lr; the curve (lr, loss, smoothed) up to divergence."""
    from dlrun.training.device import autocast

    model, opt = loop.model, loop.optimizer
    model.train()
    factor = (max_lr / min_lr) ** (1 / max(1, num_steps - 1))
    lrs, losses, smoothed = [], [], []
    avg, lowest = 0.0, math.inf
    for step, (x, y) in zip(range(num_steps), _batches(loop.data.train)):
        lr = min_lr * factor**step
        for group in opt.param_groups:
            group["lr"] = lr
        with autocast(loop.device, loop.amp_dtype):
            loss = loop.loss_fn(model(x), y)
        objective = loss if loop.penalty is None else loss + loop.penalty()
        value = objective.item()
        if not math.isfinite(value):
            break
        opt.zero_grad(set_to_none=True)
        loop.scaler.scale(objective).backward()
        loop.scaler.step(opt)
        loop.scaler.update()
        avg = (1 - smoothing) * avg + smoothing * value
        debiased = avg / (1 - (1 - smoothing) ** (step + 1))  # the average starts at 0: undo its pull
        lrs.append(lr)
        losses.append(value)
        smoothed.append(debiased)
        lowest = min(lowest, debiased)
        if debiased > diverge * lowest:
            break
    return {"lr": lrs, "loss": losses, "smoothed": smoothed, "suggested_lr": suggest(lrs, smoothed)}


def suggest(lrs: list[float], smoothed: list[float]) -> float | None:
    """A tenth of the lr at the lowest smoothed loss (fastai's lr_min/10): the loss is lowest just before
    the lr is too large, so a tenth of it still trains fast and stays clear of divergence."""
    if len(lrs) < 3:
        return None
    lowest = int(np.argmin(smoothed))
    if lowest == 0:  # the loss never fell
        return None
    return float(lrs[lowest]) / 10


def plot(curve: dict, path: Path) -> None:
    from dlrun.results.plots import plt, save_figure

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    ax.plot(curve["lr"], curve["loss"], color="0.75", lw=0.8, label="loss")
    ax.plot(curve["lr"], curve["smoothed"], color="C0", label="smoothed loss")
    if (lr := curve["suggested_lr"]) is not None:
        ax.axvline(lr, color="C3", ls="--", lw=1, label=f"suggested optimizer.lr={lr:.3g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    low, start = min(curve["smoothed"] + curve["loss"]), curve["smoothed"][0]
    margin = 0.1 * max(start - low, abs(low), 1e-8)
    ax.set_ylim(low - margin, max(curve["smoothed"][: int(np.argmin(curve["smoothed"])) + 1]) + 3 * margin)
    ax.set_title("learning-rate range test")
    ax.legend(loc="lower left")
    fig.tight_layout()
    save_figure(fig, path)


def run(cfg, run_dir: Path) -> float | None:
    from dlrun.console import console
    from dlrun.run_folder.records import write_json
    from dlrun.run_folder.run_record import COMPLETED, FAILED, RunSummary, write_summary
    from dlrun.training.tasks import build_loop

    f = cfg.lr_find  # its ranges: dlrun/config/schema.py LrFindConfig
    run_dir.mkdir(parents=True, exist_ok=True)
    loop = build_loop(cfg, run_dir)
    curve = range_test(loop, f.min_lr, f.max_lr, f.num_steps, f.smoothing, f.diverge)
    curve.update(min_lr=f.min_lr, max_lr=f.max_lr, steps=len(curve["lr"]))
    write_json(run_dir / "lr_find.json", curve)
    if curve["lr"]:
        plot(curve, run_dir / "lr_find.png")
    lr = curve["suggested_lr"]
    write_summary(run_dir, RunSummary(status=COMPLETED if lr else FAILED, duration_s=None,
                                      error=None if lr else "the loss never decreased", run_dir=str(run_dir),
                                      extra={"lr_find": {"suggested_lr": lr, "steps": curve["steps"]}}))
    if lr is None:
        console.print(f"no suggestion: the loss did not fall over {curve['steps']} steps; see {run_dir / 'lr_find.png'}")
        return None
    console.print(f"suggested learning rate: optimizer.lr={lr:.3g}  (curve: {run_dir / 'lr_find.png'})")
    return lr
