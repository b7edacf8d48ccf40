"""The notes' logic gates: the four rows of a two-input truth table, labels 0/1 (`data.gate=and|or|...`).

All four rows are the training set, and the test set is the same four rows (there is nothing else to
generalise to); `data.val_fraction` must stay 0 so that no row is taken away from training.
"""

from __future__ import annotations

import numpy as np

from dlrun.data.source import Source
from dlrun.errors import ConfigError

GATES = {
    "and": lambda a, b: a & b,
    "or": lambda a, b: a | b,
    "nand": lambda a, b: 1 - (a & b),
    "nor": lambda a, b: 1 - (a | b),
    "xor": lambda a, b: a ^ b,
    "xnor": lambda a, b: 1 - (a ^ b),
}
ROWS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.int64)


def info(cfg):
    """The data's shape without building it (task=summary)."""
    from dlrun.data import DataInfo

    return DataInfo((2,), 2, ["0", "1"])


def from_config(cfg, seed: int) -> Source:
    if cfg.gate not in GATES:
        raise ConfigError("data.gate", cfg.gate, f"one of {', '.join(GATES)}")
    if cfg.val_fraction:
        raise ConfigError("data.val_fraction", cfg.val_fraction,
                          "0 for data=logic_gate: all four truth-table rows are needed for training")
    y = GATES[cfg.gate](ROWS[:, 0], ROWS[:, 1]).astype(np.int64)
    x = ROWS.astype(np.float32)
    return Source(x, y, x.copy(), y.copy(), ["0", "1"])
