"""`data=image_folder data.root=PATH`: a user's own images, one sub-folder per class, streamed from disk.

Layouts: root/train/<class>/*.png (+ root/test/<class>/*.png when there is a test set), or one tree
root/<class>/*.png from which a seeded test split (data.test_fraction) is held out. The validation split
(data.val_fraction) always comes out of the training images, seeded.

Images are decoded by torchvision's ImageFolder in DataLoader workers (data.num_workers; persistent
across epochs; pinned memory on CUDA), resized to data.image_size and normalised with per-channel
statistics estimated from a seeded sample of the training images (data.stats_sample). Batches go to the
device with non-blocking copies; data.augment then runs on the device, batched, as for in-memory data.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader, Sampler, Subset

from dlrun.data.augment import build_augment
from dlrun.data.loader import augmented
from dlrun.errors import DataError


def _layout(root: Path) -> tuple[Path, Path | None]:
    """(training tree, test tree or None): root/train + root/test, or root alone."""
    if not root.is_dir():
        raise DataError(f"data.root={root} is not a folder; data=image_folder needs root/<class>/<images> "
                        f"or root/train/<class>/<images> (+ root/test/<class>/<images>)")
    if (root / "train").is_dir():
        return root / "train", (root / "test") if (root / "test").is_dir() else None
    return root, None


def _classes(tree: Path) -> list[str]:
    from torchvision.datasets.folder import find_classes

    try:
        return find_classes(str(tree))[0]
    except FileNotFoundError as e:
        raise DataError(f"{tree}: {e}; put each class's images in a sub-folder named after the class") from None


def _image_folder(tree: Path, transform):
    from torchvision.datasets import ImageFolder

    try:
        return ImageFolder(str(tree), transform=transform)
    except FileNotFoundError as e:  # no class folders, or a class folder without readable images
        raise DataError(f"{tree}: {str(e).splitlines()[0][:200]}") from None


def _base_transform(size: int):
    from torchvision.transforms import v2

    return [v2.Resize((size, size), antialias=True), v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]


def estimate_stats(dataset, indices: list[int], n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std (1 x C x 1 x 1) of a seeded sample of at most n of the given images."""
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(indices), generator=g)[:n].tolist()
    images = torch.stack([dataset[indices[i]][0] for i in pick])
    mean = images.mean(dim=(0, 2, 3), keepdim=True)
    std = images.std(dim=(0, 2, 3), keepdim=True)
    return mean, torch.where(std > 1e-8, std, torch.ones_like(std))


class EpochSampler(Sampler):
    """Indices of one epoch: a permutation drawn from (seed, epoch) like TensorLoader's, from batch `start` on."""

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int):
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.epoch, self.start = 0, 0

    def __iter__(self):
        if self.shuffle:
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 100_003 + self.epoch))
        else:
            order = torch.arange(self.n)
        return iter(order[self.start * self.batch_size :].tolist())

    def __len__(self) -> int:
        return max(self.n - self.start * self.batch_size, 0)


class StreamLoader:
    """A DataLoader behind the interface the loop uses on TensorLoader: batches(start), set_epoch, len, ..."""

    def __init__(self, dataset, batch_size: int, device: torch.device, *, shuffle: bool = False, seed: int = 0,
                 num_workers: int = 0, augment=None):
        self.batch_size, self.device, self.seed, self.epoch = batch_size, device, seed, 0
        self.augment = augment
        self.memory_format = torch.contiguous_format  # see to_channels_last
        self.sampler = EpochSampler(len(dataset), batch_size, shuffle, seed)
        self.loader = DataLoader(dataset, batch_size=batch_size, sampler=self.sampler, num_workers=num_workers,
                                 pin_memory=device.type == "cuda", persistent_workers=num_workers > 0)
        self._example = None

    def __len__(self) -> int:
        return -(-self.sampler.n // self.batch_size)

    @property
    def num_samples(self) -> int:
        return self.sampler.n

    def set_epoch(self, epoch: int) -> None:
        self.epoch = self.sampler.epoch = epoch

    def to_channels_last(self) -> None:
        self.memory_format = torch.channels_last  # each batch is converted as it is moved to the device

    def _on_device(self):
        for x, y in self.loader:
            yield (x.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format),
                   y.to(self.device, non_blocking=True))

    def batches(self, start: int = 0):
        """Yield (x, y) batches of this epoch on the device, skipping the first `start` (mid-epoch resume)."""
        self.sampler.start = start
        if self.augment is not None:
            yield from augmented(self._on_device(), self.augment, self.seed, self.epoch, start)
        else:
            yield from self._on_device()

    def __iter__(self):
        return self.batches()

    @property
    def x(self) -> torch.Tensor:
        """A few example inputs (the first unshuffled batch), for callbacks that show one (TensorBoard)."""
        if self._example is None:
            ds = self.loader.dataset
            self._example = torch.stack([ds[i][0] for i in range(min(len(ds), 8))]).to(self.device)
        return self._example


def _splits(n: int, fractions: list[float], seed: int) -> list[list[int]]:
    """Seeded disjoint index lists: one per fraction (rounded), then the rest."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    out, at = [], 0
    for f in fractions:
        k = int(round(f * n))
        out.append(order[at : at + k])
        at += k
    return [*out, order[at:]]


def build_splits(cfg, device: torch.device, seed: int):
    from torchvision.transforms import v2

    from dlrun.data import DataInfo, DataSplits

    train_tree, test_tree = _layout(Path(cfg.root).expanduser())
    plain = _image_folder(train_tree, v2.Compose(_base_transform(cfg.image_size)))
    if test_tree is None:  # one tree: hold a seeded test split out first
        test_idx, rest = _splits(len(plain), [cfg.test_fraction], seed)
    else:
        test_idx, rest = None, list(range(len(plain)))
    if cfg.limit:
        rest = rest[: cfg.limit]
    val_pos, train_pos = _splits(len(rest), [cfg.val_fraction], seed + 1)
    train_idx, val_idx = [rest[i] for i in train_pos], [rest[i] for i in val_pos]
    if not train_idx:
        raise DataError(f"{train_tree}: no training images left after the validation/test splits")

    mean, std = estimate_stats(plain, train_idx, cfg.stats_sample, seed)
    transform = v2.Compose([*_base_transform(cfg.image_size), v2.Normalize(mean.flatten().tolist(), std.flatten().tolist())])
    full = _image_folder(train_tree, transform)
    if test_tree is not None:
        test_set = _image_folder(test_tree, transform)
        if test_set.classes != full.classes:
            raise DataError(f"{test_tree} has classes {test_set.classes}, but {train_tree} has {full.classes}")
    else:
        test_set = Subset(full, test_idx)

    info = DataInfo((3, cfg.image_size, cfg.image_size), len(full.classes), list(full.classes))
    common = dict(device=device, num_workers=cfg.num_workers)
    train = StreamLoader(Subset(full, train_idx), cfg.batch_size, shuffle=True, seed=seed,
                         augment=build_augment(cfg, info.in_shape, info.num_classes), **common)
    val = StreamLoader(Subset(full, val_idx), cfg.eval_batch_size, **common) if val_idx else None
    test = StreamLoader(test_set, cfg.eval_batch_size, **common)
    return DataSplits(train, val, test, info, mean=mean, std=std)


def from_config(cfg, seed: int):
    raise DataError("data=image_folder is streamed from disk; it has no in-memory arrays (use build_splits)")


def info(cfg):
    """Classes and input shape for task=summary, from the folder names alone."""
    from dlrun.data import DataInfo

    train_tree, _ = _layout(Path(cfg.root).expanduser())
    classes = _classes(train_tree)
    return DataInfo((3, cfg.image_size, cfg.image_size), len(classes), classes)
