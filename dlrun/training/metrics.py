"""The per-epoch metric accumulator that the loop and task=eval share (the metric names and their direction: dlrun/run_folder/metric_mode.py)."""

from __future__ import annotations

import torch


def predict_classes(output: torch.Tensor) -> torch.Tensor:
    """Class indices from a model's raw output: argmax of several scores, or score > 0 for a single one
    (a logit for bce, a margin for hinge, the perceptron's step)."""
    if output.dim() == 2 and output.shape[1] > 1:
        return output.argmax(dim=1)
    return (output.view(-1) > 0).long()


class EpochMetrics:
    """Sums kept as device tensors (no per-batch sync); `compute` turns them into named floats.

    Class labels (integer targets) give accuracy; float targets (regression) give MAE and RMSE, in the
    targets' original units when `target_std` (the per-target scale the data was standardised with) is given.
    A weight penalty passed to `update` is averaged as `<prefix>/penalty`.
    """

    def __init__(self, device: torch.device, target_std=None):
        zero = lambda dtype=torch.float64: torch.zeros((), device=device, dtype=dtype)
        self.loss_sum, self.correct = zero(), zero(torch.int64)
        self.abs_err, self.sq_err, self.penalty_sum = zero(), zero(), zero()
        self.count = 0  # samples
        self.values = 0  # regression values (samples x targets)
        self.regression = False
        self.has_penalty = False
        self.scale = None if target_std is None else torch.as_tensor(target_std, dtype=torch.float32, device=device)

    @torch.no_grad()
    def update(self, loss: torch.Tensor, output: torch.Tensor, target: torch.Tensor,
               penalty: torch.Tensor | None = None) -> None:
        n = target.shape[0]
        self.loss_sum += loss.detach().double() * n
        if target.is_floating_point() and self.scale is None and target.dim() == 2 and target.shape == output.shape \
                and output.shape[1] > 1:  # class probabilities (mixup/cutmix; regression always has a scale)
            target = target.argmax(dim=1)
        if target.is_floating_point():
            err = output.detach().float().view(target.shape) - target
            if self.scale is not None:
                err = err * self.scale
            self.abs_err += err.abs().sum().double()
            self.sq_err += err.square().sum().double()
            self.values += err.numel()
            self.regression = True
        else:
            self.correct += (predict_classes(output) == target.view(-1)).sum()
        if penalty is not None:
            self.penalty_sum += penalty.detach().double() * n
            self.has_penalty = True
        self.count += n

    def compute(self, prefix: str) -> dict[str, float]:
        """Named means; under DDP the sums of all processes first (so every rank logs the global numbers)."""
        from dlrun.training.distributed import all_reduce_sum

        loss_sum, correct, abs_err, sq_err, penalty_sum, count, values = all_reduce_sum(
            [self.loss_sum.item(), self.correct.item(), self.abs_err.item(), self.sq_err.item(),
             self.penalty_sum.item(), self.count, self.values], self.loss_sum.device)
        self.global_count = int(count)
        n = max(count, 1)
        out = {f"{prefix}/loss": loss_sum / n}
        if self.regression:
            v = max(values, 1)
            out[f"{prefix}/mae"] = abs_err / v
            out[f"{prefix}/rmse"] = (sq_err / v) ** 0.5
        else:
            out[f"{prefix}/acc"] = correct / n
        if self.has_penalty:
            out[f"{prefix}/penalty"] = penalty_sum / n
        return out

    def state_dict(self) -> dict:
        return {"loss_sum": self.loss_sum.cpu(), "correct": self.correct.cpu(), "count": self.count,
                "abs_err": self.abs_err.cpu(), "sq_err": self.sq_err.cpu(), "values": self.values,
                "regression": self.regression, "penalty_sum": self.penalty_sum.cpu(), "has_penalty": self.has_penalty}

    def load_state_dict(self, state: dict) -> None:
        self.loss_sum.copy_(state["loss_sum"])
        self.correct.copy_(state["correct"])
        self.count = state["count"]
        for key in ("abs_err", "sq_err", "penalty_sum"):  # absent in checkpoints of earlier versions
            if key in state:
                getattr(self, key).copy_(state[key])
        self.values = state.get("values", 0)
        self.regression = state.get("regression", False)
        self.has_penalty = state.get("has_penalty", False)


class ConfusionCounts:
    """counts[true, predicted] kept on the device while the test split is evaluated (no extra pass, no sync)."""

    def __init__(self, num_classes: int, device: torch.device):
        self.n = max(int(num_classes), 2)  # one output: a binary classifier
        self.counts = torch.zeros(self.n * self.n, dtype=torch.int64, device=device)

    @torch.no_grad()
    def update(self, output: torch.Tensor, target: torch.Tensor) -> None:
        index = target.view(-1).long() * self.n + predict_classes(output.detach())
        self.counts += torch.bincount(index, minlength=self.n * self.n)[: self.n * self.n]

    def compute(self):
        """The matrix as a numpy array; under DDP the sum over every process's shard."""
        import numpy as np

        from dlrun.training.distributed import all_reduce_sum

        total = all_reduce_sum(self.counts.tolist(), self.counts.device)
        return np.asarray(total, dtype=np.int64).reshape(self.n, self.n)
