"""Metric names, their direction, and the per-epoch accumulator the loop and task=eval share."""

from __future__ import annotations

import torch

_MIN_WORDS = ("loss", "err", "mae", "mse", "rmse", "penalty")


def mode_for(metric: str) -> str:
    """'min' for losses and errors, 'max' for accuracies and scores (Keras' `mode='auto'`)."""
    return "min" if any(w in metric.split("/")[-1] for w in _MIN_WORDS) else "max"


def improved(value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


def predict_classes(output: torch.Tensor) -> torch.Tensor:
    """Class indices from a model's raw output: argmax of several scores, or score > 0 for a single one
    (a logit for bce, a margin for hinge, the perceptron's step)."""
    if output.dim() == 2 and output.shape[1] > 1:
        return output.argmax(dim=1)
    return (output.view(-1) > 0).long()


class EpochMetrics:
    """Sums kept as device tensors (no per-batch sync); `compute` turns them into named floats."""

    def __init__(self, device: torch.device):
        self.loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        self.correct = torch.zeros((), device=device, dtype=torch.int64)
        self.count = 0

    @torch.no_grad()
    def update(self, loss: torch.Tensor, output: torch.Tensor, target: torch.Tensor) -> None:
        n = target.shape[0]
        self.loss_sum += loss.detach().double() * n
        if not target.is_floating_point():
            self.correct += (predict_classes(output) == target.view(-1)).sum()
        self.count += n

    def compute(self, prefix: str) -> dict[str, float]:
        n = max(self.count, 1)
        return {f"{prefix}/loss": self.loss_sum.item() / n, f"{prefix}/acc": self.correct.item() / n}

    def state_dict(self) -> dict:
        return {"loss_sum": self.loss_sum.cpu(), "correct": self.correct.cpu(), "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.loss_sum.copy_(state["loss_sum"])
        self.correct.copy_(state["correct"])
        self.count = state["count"]
