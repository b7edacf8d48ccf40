"""Generated classification data: one random prototype per class plus Gaussian noise (learnable, seeded)."""

from __future__ import annotations

import numpy as np

from dlrun.data.source import Source


def from_config(cfg, seed: int) -> Source:
    return load(tuple(cfg.shape), cfg.num_classes, cfg.size, cfg.noise, seed)


def load(shape, num_classes: int, size: int, noise: float, seed: int):
    rng = np.random.default_rng(seed)
    prototypes = rng.normal(size=(num_classes, *shape)).astype(np.float32)

    def sample(n):
        y = rng.integers(0, num_classes, size=n)
        x = prototypes[y] + noise * rng.normal(size=(n, *shape)).astype(np.float32)
        return x.astype(np.float32), y.astype(np.int64)

    train_x, train_y = sample(size)
    test_x, test_y = sample(max(size // 4, num_classes))
    return Source(train_x, train_y, test_x, test_y, [f"class_{i}" for i in range(num_classes)])
