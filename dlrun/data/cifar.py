"""CIFAR-10 and CIFAR-100 from the python-pickle batch files torchvision uses, found in data.root,
else downloaded by torchvision, else one clear error naming both ways.

The files are read directly (a few pickle loads), so the images go straight into uint8 N x 3 x 32 x 32
arrays without torchvision's per-sample PIL dataset in between.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from dlrun.data.source import Source, torchvision_download
from dlrun.errors import DataError

DATASETS = {
    # name: (torchvision class, folder under root, train files, test file, meta file, label key, names key)
    "cifar10": ("CIFAR10", "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], "test_batch",
                "batches.meta", b"labels", b"label_names"),
    "cifar100": ("CIFAR100", "cifar-100-python", ["train"], "test", "meta", b"fine_labels", b"fine_label_names"),
}
NUM_CLASSES = {"cifar10": 10, "cifar100": 100}


def _files(name: str, folder: Path) -> list[Path] | None:
    _, _, train, test, meta, *_ = DATASETS[name]
    paths = [folder / f for f in (*train, test, meta)]
    return paths if all(p.is_file() for p in paths) else None


def _download(name: str, root: Path) -> None:
    torchvision_download(DATASETS[name][0], root)


def locate(name: str, root: str | Path) -> Path:
    """The folder holding the batch files: root/<folder>, root itself, or where torchvision downloads them."""
    root = Path(root)
    folder = DATASETS[name][1]
    for candidate in (root / folder, root):
        if _files(name, candidate):
            return candidate
    try:
        _download(name, root)
        if _files(name, root / folder):
            return root / folder
        reason = "the download left no batch files"
    except Exception as e:  # no network, a proxy, a checksum mismatch: all the same to the user
        reason = f"{type(e).__name__}: {e}".splitlines()[0][:200]
    raise DataError(f"{name} not found: (1) put torchvision's python batch files in {root / folder}/ "
                    f"(data.root={root}); (2) let torchvision download them (failed: {reason})")


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="bytes")
    except Exception as e:
        raise DataError(f"{path}: not a CIFAR python batch file ({type(e).__name__}: {e})") from None


def _batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    d = _unpickle(path)
    if b"data" not in d or label_key not in d:
        raise DataError(f"{path}: a CIFAR batch needs the keys data and {label_key.decode()}")
    x = np.asarray(d[b"data"], dtype=np.uint8)
    y = np.asarray(d[label_key], dtype=np.int64)
    if x.ndim != 2 or x.shape[1] != 3 * 32 * 32 or len(x) != len(y):
        raise DataError(f"{path}: data {x.shape} and labels {y.shape} are not N x 3072 images with N labels")
    return x.reshape(-1, 3, 32, 32), y  # rows are 1024 red, 1024 green, 1024 blue values


def load(name: str, root: str | Path) -> Source:
    """uint8 N x 3 x 32 x 32 images and int64 labels of both splits, with the class names of the meta file."""
    folder = locate(name, root)
    _, _, train, test, meta, label_key, names_key = DATASETS[name]
    parts = [_batch(folder / f, label_key) for f in train]
    train_x, train_y = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    test_x, test_y = _batch(folder / test, label_key)
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in _unpickle(folder / meta).get(names_key, [])]
    if len(names) != NUM_CLASSES[name]:
        raise DataError(f"{folder / meta}: expected {NUM_CLASSES[name]} class names under {names_key.decode()}")
    for y in (train_y, test_y):
        if y.size and (y.min() < 0 or y.max() >= len(names)):
            raise DataError(f"{folder}: labels outside 0..{len(names) - 1}")
    return Source(train_x, train_y, test_x, test_y, names)


def from_config(cfg, seed: int) -> Source:
    return load(cfg.name, cfg.root)


def info(cfg):
    """The shape task=summary needs, without reading the files."""
    from dlrun.data import DataInfo

    n = NUM_CLASSES[cfg.name]
    return DataInfo((3, 32, 32), n, [str(i) for i in range(n)])
