"""`dlrun init [DIR]`: a working project folder (a model, a data source on a numpy file, a sweep) to start from."""

from __future__ import annotations

import sys
from pathlib import Path

FILES = {
    "conf/model/my_model.yaml": """\
# `dlrun model=my_model`: the class below, built as MyModel(in_shape, num_classes, **these keys).
_target_: models.MyModel
hidden: 64           # width of the hidden layer
dropout: 0.0
""",
    "models.py": '''\
"""This project's networks. dlrun builds a model as Model(in_shape, num_classes, **options): in_shape is one
sample's shape without the batch, e.g. (8,) or (1, 28, 28); the options are the keys of its conf/model/*.yaml.
forward(x) takes a batch and returns one raw score (logit) per class."""

import math

from torch import nn


class MyModel(nn.Sequential):
    def __init__(self, in_shape, num_classes, hidden=64, dropout=0.0):
        super().__init__(
            nn.Flatten(),
            nn.Linear(math.prod(in_shape), hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )
''',
    "conf/data/my_data.yaml": """\
# `dlrun data=my_data`: the arrays in data/my_data.npz. dlrun splits off validation samples, normalises with the
# training split's statistics and batches; the keys below `source` are the loader's own arguments.
name: my_data
source:
  _target_: my_data.load_numpy
  path: data/my_data.npz   # relative to this project's folder
  test_fraction: 0.2
batch_size: 32
val_fraction: 0.2
""",
    "my_data.py": '''\
"""This project's data. A data source returns a dlrun Source: numpy arrays train_x, train_y, test_x, test_y
(samples first; labels are integer class indices) and the class names."""

from pathlib import Path

import numpy as np

from dlrun.data.source import Source

PROJECT = Path(__file__).resolve().parent


def load_numpy(path, test_fraction=0.2, seed=0):
    """An .npz file with arrays x (samples x features, or samples x channels x height x width) and y (labels),
    and optionally class_names; a seeded share of the samples is held out as the test split."""
    data = np.load(PROJECT / path)
    x, y = data["x"].astype(np.float32), data["y"].astype(np.int64)
    names = [str(n) for n in data["class_names"]] if "class_names" in data else [str(c) for c in np.unique(y)]
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(test_fraction * len(x)))
    test, train = order[:n_test], order[n_test:]
    return Source(x[train], y[train], x[test], y[test], names)
''',
    "experiments/my_experiment.yaml": """\
# @package _global_
# `dlrun experiment=my_experiment`: my_model on my_data, a sweep over two options (4 runs).
# Compare the runs afterwards: dlrun-compare outputs/experiments/my_experiment
defaults:
  - override /model: my_model
  - override /data: my_data

monitor: val/acc

hydra:
  mode: MULTIRUN
  sweep:
    dir: outputs/experiments/my_experiment/${dlrun_stamp:}
  sweeper:
    params:
      model.hidden: 16,64
      optimizer.lr: 0.01,0.001
""",
    "README.md": """\
# My dlrun project

A dlrun project: dlrun finds the configs here before its own when it runs in this folder (or with
`dlrun --project PATH`, or `DLRUN_PROJECT=PATH`), and imports `models.py` and `my_data.py` from here.

    dlrun experiment=my_experiment                 the sweep: 2 widths x 2 learning rates
    dlrun experiment=my_experiment trainer=smoke   the same in seconds (2 epochs each)
    dlrun model=my_model data=my_data              one run
    dlrun --help                                   this project's options beside dlrun's own

| file | what it is |
|---|---|
| `conf/model/my_model.yaml`, `models.py` | the network: `MyModel(in_shape, num_classes, **options)` |
| `conf/data/my_data.yaml`, `my_data.py` | the data: `data/my_data.npz` (arrays `x`, `y`) read into a dlrun `Source` |
| `experiments/my_experiment.yaml` | a sweep over `model.hidden` and `optimizer.lr` |
| `outputs/` | the runs (one folder each: metrics.jsonl, summary.json, checkpoints, TensorBoard) |

Any dlrun group takes files here: `conf/loss/`, `conf/optimizer/`, `conf/scheduler/`, `conf/callbacks/`, ...;
a file with a built-in option's name replaces it, and the run's log says which file was used.
Put your own arrays in `data/my_data.npz` (`np.savez("data/my_data.npz", x=x, y=y)`).
""",
    ".gitignore": "outputs/\n",
}
DATA_FILE = "data/my_data.npz"


class ProjectExists(Exception):
    """Some of the scaffold's files are there already (their paths, comma-separated)."""


def write_example_data(path: Path, seed: int = 0) -> None:
    """Three classes of 8 features, 300 samples: each class a Gaussian blob around its own centre."""
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=0.7, size=(3, 8))
    y = rng.integers(0, 3, size=300)
    x = (centres[y] + rng.normal(size=(300, 8))).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=x, y=y, class_names=np.array(["a", "b", "c"]))


def init_project(folder: Path) -> list[Path]:
    """Write the scaffold into `folder`; nothing is written when any of its files already exists."""
    targets = [folder / name for name in [*FILES, DATA_FILE]]
    existing = [p for p in targets if p.exists()]
    if existing:
        raise ProjectExists(", ".join(str(p) for p in existing))
    for name, text in FILES.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    write_example_data(folder / DATA_FILE)
    return targets


def init_main(args: list[str]) -> int:
    usage = "usage: dlrun init [DIR]   (a new project in DIR, default: this folder; existing files are kept)"
    if args in (["-h"], ["--help"]):
        print(usage)
        return 0
    if len(args) > 1 or any(a.startswith("-") for a in args):
        print(usage, file=sys.stderr)
        return 2
    folder = Path(args[0] if args else ".")
    try:
        written = init_project(folder)
    except ProjectExists as e:
        print(f"error: dlrun init writes nothing over existing files ({e}); name a new folder: dlrun init DIR",
              file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: cannot write the project into {folder}: {e.strerror} ({e.filename})", file=sys.stderr)
        return 2
    print(f"A dlrun project in {folder.resolve()}:")
    for path in written:
        print(f"  {path.relative_to(folder)}")
    where = "" if not args else f"cd {args[0]} && "
    print(f"Try it: {where}dlrun experiment=my_experiment trainer=smoke")
    return 0
