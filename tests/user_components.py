"""Components a user would write in their own package; tests load them from config with _target_."""

import torch


class NaNAfter(torch.nn.Module):
    """Cross-entropy that turns into NaN after `steps` training calls (a diverging run, on demand)."""

    def __init__(self, steps: int):
        super().__init__()
        self.steps, self.calls = steps, 0

    def forward(self, output, target):
        loss = torch.nn.functional.cross_entropy(output, target)
        if torch.is_grad_enabled():
            self.calls += 1
            if self.calls > self.steps:
                return loss * float("nan")
        return loss


from dlrun.callbacks import Callback  # noqa: E402


class KeyHolder(Callback):
    """A callback holding a credential, as a logging integration would (its value must never be written)."""

    def __init__(self, api_key: str):
        self.api_key = api_key


class SlowEpochs(Callback):
    """Sleeps at each epoch end: makes a run long in wall time (to interrupt it) without using the CPU."""

    def __init__(self, seconds: float = 0.5):
        self.seconds = seconds

    def on_epoch_end(self, loop, metrics):
        import time

        time.sleep(self.seconds)
