"""In-memory batching: the whole dataset lives as tensors on the training device, batches are index slices.

No per-sample Python or PIL work in the hot path; the shuffle order depends only on (seed, epoch),
so a resumed run sees exactly the batches the uninterrupted run would have seen.
"""

from __future__ import annotations


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
        self.rank, self.world = 0, 1  # DDP: this process's share of every batch (see shard)
        self.batch_weight = 1.0  # DDP: the current batch's loss weight (see _slices)

    def shard(self, rank: int, world: int) -> None:
        """DistributedSampler semantics without a sampler: a training batch of `batch_size` (global) is
        split across the `world` processes, so N processes step exactly like one process on the same
        batches; an evaluation loader gives each process every `world`-th sample."""
        self.rank, self.world = rank, world

    def __len__(self) -> int:
        full, rest = divmod(len(self.x), self.batch_size)
        # training skips a last batch of ONE sample: batch norm cannot train on it (torch raises)
        skip_last = self.shuffle and full > 0 and rest == 1
        return full + (1 if rest and not skip_last else 0)

    @property
    def num_samples(self) -> int:
        return len(self.x)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def to_channels_last(self) -> None:
        """Store images in NHWC once; index slicing keeps the layout, so batches need no per-step conversion."""
        if self.x.dim() == 4:
            self.x = self.x.contiguous(memory_format=torch.channels_last)

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
        if order is None and self.world > 1:  # evaluation under DDP: every world-th sample, in order
            order = torch.arange(self.rank, n, self.world, device=self.x.device)
            n = len(order)
        for i in range(start * bs, n, bs):
            if self.shuffle and n - i == 1 and i > 0:
                return  # see __len__
            if order is None:
                yield self.x[i : i + bs], self.y[i : i + bs]
                continue
            idx = order[i : i + bs]
            if self.world > 1 and self.shuffle:  # training under DDP: this rank's share of the global batch
                if len(idx) < self.world:
                    return  # a last batch too small to give every process a sample
                share = idx[self.rank :: self.world]
                # DDP averages the processes' mean losses; weighting each by its share of the batch makes
                # that the mean over the global batch even when it does not split evenly (the last one)
                self.batch_weight = len(share) * self.world / len(idx)
                idx = share
            yield self.x[idx], self.y[idx]

    def __iter__(self):
        return self.batches()


def augmented(batches, augment, seed: int, epoch: int, start: int):
    """Apply `augment` to each (x, y) batch, seeded by (seed, epoch, batch index) so resumes draw the same."""
    from dlrun.data.augment import batch_seed

    for i, (x, y) in enumerate(batches, start=start):
        yield augment(x, y, batch_seed(seed, epoch, i))
