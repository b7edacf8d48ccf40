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

    def to_channels_last(self) -> None:
        """Images in NHWC (trainer.channels_last) from here on; tabular data is left as it is."""
        for loader in (self.train, self.val, self.test):
            if loader is not None:
                loader.to_channels_last()


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


class _ProjectSource:
    """`data.source` (a `_target_` node of the user's): built with its own keys, it returns the Source."""

    @staticmethod
    def from_config(cfg, seed: int) -> Source:
        from dlrun.config.schema import build
        from dlrun.config.contracts import check_type

        src = build(cfg.source, "data.source")
        check_type(src, Source, "data.source", cfg.source.get("_target_"), "dlrun.data.source.Source")
        return src


def source_module(cfg):
    import importlib

    if cfg.get("source") is not None:
        return _ProjectSource
    if cfg.name not in SOURCES:
        raise ConfigError("data.name", cfg.name, f"one of {', '.join(SOURCES)}")
    return importlib.import_module(SOURCES[cfg.name])


def _to_float(x: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.array(x))  # a writable copy (IDX arrays are read-only views of bytes)
    return t.float().div_(255.0) if t.dtype == torch.uint8 else t.float()


def _select_classes(classes, x, y, test_x, test_y, names):
    """Only the samples of `classes`, relabelled 0..k-1 in the given order, with their names."""
    classes = [int(c) for c in classes]
    if len(set(classes)) != len(classes) or not all(0 <= c < len(names) for c in classes):
        raise ConfigError("data.classes", classes, f"distinct class indices in 0..{len(names) - 1}")
    relabel = torch.full((len(names),), -1, dtype=torch.long)
    relabel[classes] = torch.arange(len(classes))
    keep, keep_test = relabel[y.long()] >= 0, relabel[test_y.long()] >= 0
    return (x[keep], relabel[y[keep].long()], test_x[keep_test], relabel[test_y[keep_test].long()],
            [names[c] for c in classes])


def _balanced_subset(y: torch.Tensor, limit: int, seed: int) -> torch.Tensor:
    """`limit` indices drawn at random (seeded), as equal a number from each class as the data allows."""
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    ys = y[order].long()
    # the rank of each sample within its class in the random order: taking the lowest ranks first
    # takes one sample of every class before a second one of any
    ranks = torch.empty_like(ys)
    for c in ys.unique():
        where = (ys == c).nonzero().squeeze(1)
        ranks[where] = torch.arange(len(where))
    pick = torch.argsort(ranks * len(ys) + torch.arange(len(ys)), stable=True)[:limit]
    return order[pick.sort().values]


def build_data(cfg, device: torch.device, seed: int) -> DataSplits:
    module = source_module(cfg)
    if cfg.get("features") and module.__name__ != "dlrun.data.tabular":
        raise ConfigError("data.features", list(cfg.features), "a column subset of tabular data (data=diabetes, iris, ...)")
    if hasattr(module, "build_splits"):  # too big for memory: the source streams its own loaders
        return module.build_splits(cfg, device, seed)
    src = module.from_config(cfg, seed)
    x, y = _to_float(src.train_x), torch.from_numpy(np.array(src.train_y))
    test_x, test_y = _to_float(src.test_x), torch.from_numpy(np.array(src.test_y))
    class_names = list(src.class_names)
    if cfg.classes:  # e.g. transfer learning: pretrain on some classes, fine-tune on the others
        x, y, test_x, test_y, class_names = _select_classes(cfg.classes, x, y, test_x, test_y, class_names)
    if cfg.limit:  # a few labelled samples: a seeded subset, balanced over the classes
        keep = _balanced_subset(y, cfg.limit, seed) if src.task == "classification" else \
            torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[: cfg.limit]
        x, y = x[keep], y[keep]

    # seeded split, independent of the training seed's other uses
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_val = int(round(cfg.val_fraction * len(x)))
    val_idx, train_idx = order[:n_val], order[n_val:]
    if len(train_idx) == 0:
        raise ConfigError("data.val_fraction", cfg.val_fraction, f"leaves no training samples out of {len(x)}")

    # normalise with statistics of the training split only (per channel for images)
    dims = [0] + list(range(2, x.dim()))
    x_train = x[train_idx]  # gathered once: statistics and normalisation are passes over 170 MB for Fashion-MNIST
    mean = x_train.mean(dim=dims, keepdim=True)
    std = x_train.std(dim=dims, keepdim=True)
    std = torch.where(std > 1e-8, std, torch.ones_like(std))  # a constant feature is centred, not blown up
    if not cfg.standardize:  # raw inputs (data.standardize=false), e.g. the notes' 0/1 logic-gate rows
        mean, std = torch.zeros_like(mean), torch.ones_like(std)
    norm = lambda t: t.sub_(mean).div_(std).to(device)  # in place: every t here is a fresh copy

    n_out = len(class_names) if src.task == "classification" else (y.shape[1] if y.dim() > 1 else 1)
    info = DataInfo(tuple(x.shape[1:]), n_out, class_names, src.task)
    if src.task == "regression":  # targets standardised with training statistics too: losses see unit scale
        y, test_y = y.float().view(len(y), -1), test_y.float().view(len(test_y), -1)
        y_mean, y_std = y[train_idx].mean(dim=0), y[train_idx].std(dim=0).clamp_min(1e-8)
        y, test_y = (y - y_mean) / y_std, (test_y - y_mean) / y_std
        info.target_mean, info.target_std = y_mean.tolist(), y_std.tolist()
    augment = build_augment(cfg, info.in_shape, info.num_classes, info.task)
    train = TensorLoader(norm(x_train), y[train_idx].to(device), cfg.batch_size, shuffle=True, seed=seed,
                         augment=augment)
    val = TensorLoader(norm(x[val_idx]), y[val_idx].to(device), cfg.eval_batch_size) if n_val else None
    test = TensorLoader(norm(test_x), test_y.to(device), cfg.eval_batch_size)
    return DataSplits(train, val, test, info, mean=mean, std=std)
