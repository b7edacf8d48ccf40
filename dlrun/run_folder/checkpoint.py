"""What a checkpoint holds and how it is written and read back.

Everything inside is tensors and plain Python containers, so `torch.load(weights_only=True)` reads
it: no pickled code is ever executed when a checkpoint is opened.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import numpy as np
import torch

from dlrun.config.schema import plain_config
from dlrun.errors import EXIT_FAILED, CheckpointError
from dlrun.run_folder.records import atomic_write

FORMAT = "dlrun-checkpoint/1"


class CheckpointSaveError(CheckpointError):
    """The run trained but could not save: a run failure (exit 1), not a usage error."""

    exit_code = EXIT_FAILED


def _rng_state() -> dict:
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _set_rng_state(state: dict) -> None:
    v, internal, gauss = state["python"]
    random.setstate((v, tuple(internal), gauss))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module under torch.compile / DistributedDataParallel wrappers."""
    model = getattr(model, "_orig_mod", model)
    return getattr(model, "module", model)


def capture(loop) -> dict:
    """The loop's complete state: enough to continue exactly where it stands."""
    return {
        "format": FORMAT,
        "model": unwrap(loop.model).state_dict(),
        "optimizer": loop.optimizer.state_dict(),
        "scheduler": loop.scheduler.state_dict() if loop.scheduler is not None else None,
        "scaler": loop.scaler.state_dict(),
        "epoch": loop.epoch,
        "step": loop.step,
        "batch_in_epoch": loop.batch_in_epoch,
        "train_sums": loop.train_sums.state_dict(),
        "history": loop.history,
        "best": loop.best,
        "callbacks": {name: cb.state_dict() for name, cb in loop.callbacks.items()},
        "rng": _rng_state(),
        "config": plain_config(loop.run_config),  # resolved, environment secrets replaced
        # what task=predict needs to rebuild the model and prepare inputs without loading the dataset
        "data_info": {**dataclasses.asdict(loop.data.info), "in_shape": list(loop.data.info.in_shape)},
        "data_stats": {"mean": loop.data.mean, "std": loop.data.std} if loop.data.mean is not None else None,
    }


def save(state: dict, path: Path) -> None:
    """Atomic: a crash, a full disk or a permission error during the write leaves the previous file
    under `path` intact, and is reported as one clear error."""
    try:
        atomic_write(Path(path), lambda f: torch.save(state, f))
    except OSError as e:
        raise CheckpointSaveError(f"could not write checkpoint {path}: {e.strerror or e}; "
                                  "the previous checkpoint under that name is kept") from None


def load(path: str | Path) -> dict:
    """Read a checkpoint safely (weights_only); any problem is one CheckpointError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"cannot read checkpoint {path}: truncated, corrupt or not a PyTorch file ({reason})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path} is not a dlrun checkpoint (no 'model' entry)")
    return state


def load_model_weights(model: torch.nn.Module, state: dict, path) -> None:
    try:
        unwrap(model).load_state_dict(state["model"])
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        detail = " ".join(line.strip() for line in first[1:3])[:300]
        raise CheckpointError(f"checkpoint {path} does not fit this model (another architecture?): {detail}") from None


def _load_schedule(scheduler, saved: dict) -> None:
    """The saved schedule's position, on the plan of this run's config.

    A resume may add epochs (trainer.max_epochs). LambdaLR's state carries its factor's settings (the
    cosine's total epochs); loaded as they are, a finished cosine run would train on at lr 0. Its
    settings come from this run's config instead, and the lr is set from the factor where the run stands.
    (OneCycleLR cannot be stretched: resume.check_schedule refuses that before anything is touched.)"""
    from torch.optim.lr_scheduler import LambdaLR

    planned = [dict(vars(f)) for f in scheduler.lr_lambdas] if isinstance(scheduler, LambdaLR) else []
    scheduler.load_state_dict(saved)
    if not planned or all(vars(f) == plan for f, plan in zip(scheduler.lr_lambdas, planned)):
        return  # the same plan: the optimizer's saved lr is already right (an exact resume)
    for f, plan in zip(scheduler.lr_lambdas, planned):
        vars(f).update(plan)
    lrs = [base * f(scheduler.last_epoch) for base, f in zip(scheduler.base_lrs, scheduler.lr_lambdas)]
    for group, lr in zip(scheduler.optimizer.param_groups, lrs):
        group["lr"] = lr
    scheduler._last_lr = lrs


def restore(loop, state: dict, path) -> None:
    """Put a captured state back into a freshly built loop."""
    load_model_weights(loop.model, state, path)
    try:
        loop.optimizer.load_state_dict(state["optimizer"])
        if loop.scheduler is not None and state.get("scheduler"):
            _load_schedule(loop.scheduler, state["scheduler"])
        loop.scaler.load_state_dict(state["scaler"])
    except (ValueError, KeyError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint {path}: optimizer state does not fit ({e}); was optimizer= changed?") from None
    loop.epoch, loop.step = state["epoch"], state["step"]
    loop.batch_in_epoch = state.get("batch_in_epoch", 0)
    if state.get("train_sums"):
        loop.train_sums.load_state_dict(state["train_sums"])
    loop.history = list(state.get("history", []))
    loop.best = state.get("best")
    for name, cb_state in state.get("callbacks", {}).items():
        if name in loop.callbacks:
            loop.callbacks[name].load_state_dict(cb_state)
    _set_rng_state(state["rng"])
    loop.resumed_from = str(path)
