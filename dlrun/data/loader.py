"""In-memory batching: the whole dataset lives as tensors on the training device, batches are index slices.

No per-sample Python or PIL work in the hot path; the shuffle order depends only on (seed, epoch),
so a resumed run sees exactly the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import math

import torch


class TensorLoader:
    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle: bool = False, seed: int = 0):
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    @property
    def num_samples(self) -> int:
        return len(self.x)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self, start: int = 0):
        """Yield (x, y) batches of this epoch, skipping the first `start` (for mid-epoch resume)."""
        n, bs = len(self.x), self.batch_size
        order = None
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(n, generator=g).to(self.x.device, non_blocking=True)
        for i in range(start * bs, n, bs):
            if order is None:
                yield self.x[i : i + bs], self.y[i : i + bs]
            else:
                idx = order[i : i + bs]
                yield self.x[idx], self.y[idx]

    def __iter__(self):
        return self.batches()
