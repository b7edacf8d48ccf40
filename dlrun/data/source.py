"""What a dataset source hands to the shared pipeline (split, normalise, place on the device)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Source:
    train_x: np.ndarray  # N×C×H×W images (uint8 or float) or N×F features
    train_y: np.ndarray  # int64 class labels, or float32 N×T targets for regression
    test_x: np.ndarray
    test_y: np.ndarray
    class_names: list  # empty for regression
    task: str = "classification"  # classification | regression


def torchvision_download(tv_class: str, root) -> None:
    """Both splits of a torchvision dataset class (FashionMNIST, MNIST, CIFAR10, ...) downloaded into root."""
    import torchvision.datasets as tvd

    cls = getattr(tvd, tv_class)
    for train in (True, False):
        cls(str(root), train=train, download=True)
