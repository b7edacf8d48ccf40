"""Datasets as in-memory tensors on the training device: load, split, normalise, batch.

A source returns numpy arrays (train_x, train_y, test_x, test_y, class_names); everything after
that (seeded validation split, statistics from the training split only, device placement) is shared.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dlrun.data.augment import build_augment
from dlrun.data.loader import TensorLoader
from dlrun.data.source import Source
from dlrun.errors import ConfigError


@dataclass
class DataInfo:
    """What a model and a loss need to know about the data; nobody types in_features by hand."""

    in_shape: tuple
    num_classes: int  # classes, or regression targets
    class_names: list
    task: str = "classification"  # classification | regression
    # regression: targets are standardised with these training-split statistics (one per target);
    # a prediction in original units is output * target_std + target_mean
    target_mean: list | None = None
    target_std: list | None = None


@dataclass
class DataSplits:
    train: TensorLoader
    val: TensorLoader | None
    test: TensorLoader
    info: DataInfo
    # the training split's normalisation statistics, so task=predict prepares new inputs the same way
    mean: torch.Tensor | None = None
    std: torch.Tensor | None = None


# data.name -> module with `from_config(cfg, seed) -> Source`; imported only when chosen
SOURCES = {
    "fashion_mnist": "dlrun.data.mnist",
    "mnist": "dlrun.data.mnist",
    "synthetic": "dlrun.data.synthetic",
    "diabetes": "dlrun.data.tabular",
    "breast_cancer": "dlrun.data.tabular",
    "iris": "dlrun.data.tabular",
    "wine": "dlrun.data.tabular",
    "digits": "dlrun.data.tabular",
    "logic_gate": "dlrun.data.logic_gate",
    "cifar10": "dlrun.data.cifar",
    "cifar100": "dlrun.data.cifar",
    "image_folder": "dlrun.data.image_folder",  # streamed from disk: the module's build_splits
}


def source_module(cfg):
    import importlib

    if cfg.name not in SOURCES:
        raise ConfigError("data.name", cfg.name, f"one of {', '.join(SOURCES)}")
    return importlib.import_module(SOURCES[cfg.name])


def load_source(cfg, seed: int) -> Source:
    return source_module(cfg).from_config(cfg, seed)


def _to_float(x: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.array(x))  # a writable copy (IDX arrays are read-only views of bytes)
    return t.float().div_(255.0) if t.dtype == torch.uint8 else t.float()


def build_data(cfg, device: torch.device, seed: int, channels_last: bool = False) -> DataSplits:
    module = source_module(cfg)
    if hasattr(module, "build_splits"):  # too big for memory: the source streams its own loaders
        return module.build_splits(cfg, device, seed, channels_last=channels_last)
    src = module.from_config(cfg, seed)
    x, y = _to_float(src.train_x), torch.from_numpy(np.array(src.train_y))
    test_x, test_y = _to_float(src.test_x), torch.from_numpy(np.array(src.test_y))
    if cfg.limit:
        x, y = x[: cfg.limit], y[: cfg.limit]

    # seeded split, independent of the training seed's other uses
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_val = int(round(cfg.val_fraction * len(x)))
    val_idx, train_idx = order[:n_val], order[n_val:]
    if len(train_idx) == 0:
        raise ConfigError("data.val_fraction", cfg.val_fraction, f"leaves no training samples out of {len(x)}")

    # normalise with statistics of the training split only (per channel for images)
    dims = [0] + list(range(2, x.dim()))
    mean = x[train_idx].mean(dim=dims, keepdim=True)
    std = x[train_idx].std(dim=dims, keepdim=True)
    std = torch.where(std > 1e-8, std, torch.ones_like(std))  # a constant feature is centred, not blown up
    # channels_last (trainer.channels_last) is kept by index slicing: batches need no per-step conversion
    fmt = torch.channels_last if channels_last and x.dim() == 4 else torch.contiguous_format
    norm = lambda t: ((t - mean) / std).to(device).contiguous(memory_format=fmt)

    n_out = len(src.class_names) if src.task == "classification" else (y.shape[1] if y.dim() > 1 else 1)
    info = DataInfo(tuple(x.shape[1:]), n_out, list(src.class_names), src.task)
    if src.task == "regression":  # targets standardised with training statistics too: losses see unit scale
        y, test_y = y.float().view(len(y), -1), test_y.float().view(len(test_y), -1)
        y_mean, y_std = y[train_idx].mean(dim=0), y[train_idx].std(dim=0).clamp_min(1e-8)
        y, test_y = (y - y_mean) / y_std, (test_y - y_mean) / y_std
        info.target_mean, info.target_std = y_mean.tolist(), y_std.tolist()
    augment = build_augment(cfg, info.in_shape, info.num_classes, info.task)
    train = TensorLoader(norm(x[train_idx]), y[train_idx].to(device), cfg.batch_size, shuffle=True, seed=seed,
                         augment=augment)
    val = TensorLoader(norm(x[val_idx]), y[val_idx].to(device), cfg.eval_batch_size) if n_val else None
    test = TensorLoader(norm(test_x), test_y.to(device), cfg.eval_batch_size)
    return DataSplits(train, val, test, info, mean=mean, std=std)
