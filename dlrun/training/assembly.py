"""The one place that assembles what a run trains: model, loss, optimizer, scheduler and weight penalty.

From the config and the built data, in dependency order: the loss (checked against the data), the model
(initializer, model.pretrained, model.freeze: dlrun/models), its place on the device (channels_last, sync
batch norm, DDP, torch.compile), then the optimizer over its trainable parameters (parameter groups and the
head's lr: dlrun/nn/optimizers.py), the scheduler and the penalty. The checks that need these built
objects (the data's task, the model's layers, the loss's targets) are here too; the config's own rules
ran before anything was built (dlrun/config/schema.py validate).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from omegaconf import DictConfig

from dlrun.errors import ConfigError


@dataclass
class Assembly:
    cfg: DictConfig  # the run's config with the model options the regularizer group set: what a checkpoint stores
    model: torch.nn.Module  # what the loop calls: on the device, maybe DDP-wrapped, compiled in place
    loss_fn: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object | None
    penalty: object | None


def _check_data(cfg: DictConfig, data) -> None:
    """Rules between the config and the built data (before the loss is matched with it)."""
    if data.info.task == "regression" and cfg.monitor.endswith("/acc"):
        raise ConfigError("monitor", cfg.monitor, "regression data has no accuracy: val/loss, val/mae or val/rmse")


def _check_built(cfg: DictConfig, data, model: torch.nn.Module, loss_fn) -> None:
    """Rules between the config and the built data, model and loss."""
    if cfg.data.batch_size < 2 and any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        raise ConfigError("data.batch_size", cfg.data.batch_size, "at least 2 for a model with batch norm "
                          "(it normalises over the batch)")
    augment = getattr(data.train, "augment", None)
    if augment is not None and augment.soft_targets and getattr(loss_fn, "target_form", None) != "index":
        raise ConfigError("data.augment", list(cfg.data.augment), "mixup and cutmix make class-probability targets, "
                          "which need loss=cross_entropy (or sparse_cce)")


def assemble(cfg: DictConfig, data, device: torch.device, amp_dtype, ddp: bool = False,
             unfrozen: bool = False) -> Assembly:
    """Model, loss, optimizer, scheduler and penalty for `data` on `device`.

    `unfrozen`: a resumed run whose frozen layers were already handed to the optimizer (trainer.unfreeze_at_epoch)
    gets that group now, so that the saved optimizer state fits."""
    from dlrun.training import distributed
    from dlrun.config.schema import build
    from dlrun.training.device import use_channels_last
    from dlrun.models import build_model_and_loss
    from dlrun.models.transfer import unfreeze
    from dlrun.nn.initializers import initialize
    from dlrun.nn.optimizers import add_unfrozen_group, build_optimizer
    from dlrun.nn.regularizers import build_penalty, with_model_options

    _check_data(cfg, data)
    cfg = with_model_options(cfg)
    # empty initializer: PyTorch's default initialisation; it runs before model.pretrained loads its weights
    init = (lambda m, f=build(cfg.initializer, "initializer"): initialize(m, f)) if cfg.initializer else None
    model, loss_fn = build_model_and_loss(cfg, data.info, init=init)
    model = model.to(device)
    _check_built(cfg, data, model, loss_fn)
    if use_channels_last(cfg.trainer.channels_last, device, amp_dtype, model):  # only 4-d tensors change
        model = model.to(memory_format=torch.channels_last)
        data.to_channels_last()
    if ddp and cfg.trainer.sync_batchnorm:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    core = model  # the plain module: optimizer groups and penalties are found on it, checkpoints save it
    if ddp:
        model = distributed.wrap(model, device)
    if cfg.trainer.compile:  # in place: the module, its parameter names and its checkpoints stay the plain ones
        model.compile()
    optimizer = build_optimizer(cfg.optimizer, core)  # trainable parameters only (model.freeze)
    if unfrozen:
        add_unfrozen_group(optimizer, unfreeze(core))
    scheduler = build(cfg.scheduler, "scheduler")(optimizer) if cfg.scheduler else None
    return Assembly(cfg=cfg, model=model, loss_fn=loss_fn, optimizer=optimizer, scheduler=scheduler,
                    penalty=build_penalty(cfg, core))
