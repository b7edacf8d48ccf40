"""Which way a metric improves: torch-free, so that reading runs (dlrun-compare) does not import torch."""

from __future__ import annotations

_MIN_WORDS = ("loss", "err", "mae", "mse", "rmse", "penalty")


def mode_for(metric: str) -> str:
    """'min' for losses and errors, 'max' for accuracies and scores (Keras' `mode='auto'`)."""
    return "min" if any(w in metric.split("/")[-1] for w in _MIN_WORDS) else "max"


def improved(value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta
