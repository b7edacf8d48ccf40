"""Fashion-MNIST and MNIST, found in this order: data.root, the system folder, download."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dlrun.data.cache import read_idx_cached
from dlrun.data.source import Source, torchvision_download
from dlrun.errors import DataError

FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
DATASETS = {
    # name: (torchvision class, system folder of a Debian package or None, class names)
    "fashion_mnist": (
        "FashionMNIST",
        "/usr/share/datasets/fashion-mnist",
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
    ),
    "mnist": ("MNIST", None, [str(i) for i in range(10)]),
}
APT_PACKAGE = {"fashion_mnist": "dataset-fashion-mnist"}


def _find_files(folder: Path) -> dict[str, Path] | None:
    """The four IDX files in `folder`, gzipped or not, or None if any is missing."""
    found = {}
    for key, stem in FILES.items():
        for candidate in (folder / stem, folder / f"{stem}.gz"):
            if candidate.is_file():
                found[key] = candidate
                break
        else:
            return None
    return found


def _download(tv_class: str, root: Path) -> Path:
    """torchvision's downloader; returns the folder that holds the raw IDX files."""
    torchvision_download(tv_class, root)
    return root / tv_class / "raw"


def locate(name: str, root: str | Path) -> dict[str, Path]:
    tv_class, system_dir, _ = DATASETS[name]
    root = Path(root)
    searched = [root / tv_class / "raw", root / name, root]
    for folder in searched:
        if files := _find_files(folder):
            return files
    if system_dir and (files := _find_files(Path(system_dir))):
        return files
    try:
        files = _find_files(_download(tv_class, root))
        if files:
            return files
        reason = "the download left no IDX files"
    except Exception as e:  # no network, a proxy, a checksum mismatch: all the same to the user
        reason = f"{type(e).__name__}: {e}".splitlines()[0][:200]
    ways = [f"(1) put the four IDX files in {searched[0]}/ (data.root={root})"]
    if system_dir:
        ways.append(f"(2) install {system_dir} with `apt-get install {APT_PACKAGE[name]}`")
    ways.append(f"({len(ways) + 1}) let torchvision download them (failed: {reason})")
    raise DataError(f"{name} not found: " + "; ".join(ways))


def from_config(cfg, seed: int) -> Source:
    return load(cfg.name, cfg.root)


def load(name: str, root: str | Path) -> Source:
    """uint8 N×1×28×28 images and int64 labels of both splits."""
    files = locate(name, root)
    cache_dir = Path(root) / "cache" / name  # decoded arrays: a second run does not gunzip
    arrays = {key: read_idx_cached(path, cache_dir) for key, path in files.items()}
    for split in ("train", "test"):
        x, y = arrays[f"{split}_x"], arrays[f"{split}_y"]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DataError(f"{files[f'{split}_x'].parent}: {split} images {x.shape} and labels {y.shape} do not match")
    expand = lambda a: a[:, None, :, :]  # N×H×W -> N×1×H×W
    return Source(expand(arrays["train_x"]), arrays["train_y"].astype(np.int64),
                  expand(arrays["test_x"]), arrays["test_y"].astype(np.int64), DATASETS[name][2])
