"""In-memory batching: the whole dataset lives as tensors on the training device, batches are index slices.

No per-sample Python or PIL work in the hot path; the shuffle order depends only on (seed, epoch),
so a resumed run sees exactly the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import math

import torch


class TensorLoader:
    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle: bool = False, seed: int = 0,
                 augment=None):
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.augment = augment  # dlrun.data.augment.Augment (training loader only) or None

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    @property
    def num_samples(self) -> int:
        return len(self.x)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self, start: int = 0):
        """Yield (x, y) batches of this epoch, skipping the first `start` (for mid-epoch resume)."""
        n = len(self.x)
        order = None
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(n, generator=g).to(self.x.device, non_blocking=True)
        if self.augment is not None:
            yield from augmented(self._slices(order, start), self.augment, self.seed, self.epoch, start)
            return
        yield from self._slices(order, start)

    def _slices(self, order, start: int):
        n, bs = len(self.x), self.batch_size
        for i in range(start * bs, n, bs):
            if order is None:
                yield self.x[i : i + bs], self.y[i : i + bs]
            else:
                idx = order[i : i + bs]
                yield self.x[idx], self.y[idx]

    def __iter__(self):
        return self.batches()


def augmented(batches, augment, seed: int, epoch: int, start: int):
    """Apply `augment` to each (x, y) batch, seeded by (seed, epoch, batch index) so resumes draw the same."""
    from dlrun.data.augment import batch_seed

    for i, (x, y) in enumerate(batches, start=start):
        yield augment(x, y, batch_seed(seed, epoch, i))
