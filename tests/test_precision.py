"""Mixed precision and large-batch tools on the CPU: bf16 autocast, gradient accumulation, clipping."""

import pytest
import torch

from dlrun.callbacks import Callback
from dlrun.errors import ConfigError
from dlrun.training.tasks import build_loop


class FirstGradients(Callback):
    def __init__(self):
        self.grads = None

    def on_before_optimizer_step(self, loop):
        if self.grads is None:
            self.grads = [p.grad.detach().clone() for p in loop.model.parameters()]
        loop.request_stop("interrupted")  # one optimizer step is all the test needs


def first_step_gradients(cfg, tmp_path):
    loop = build_loop(cfg, tmp_path)
    probe = FirstGradients()
    loop.callbacks["probe"] = probe
    loop.fit()
    return probe.grads


def test_accumulating_four_batches_of_32_equals_one_batch_of_128(tiny_cfg, tmp_path):
    base = ("model=mlp", "scheduler=none", "data.size=512", "data.val_fraction=0")
    one = first_step_gradients(tiny_cfg(*base, "data.batch_size=128"), tmp_path / "one")
    four = first_step_gradients(tiny_cfg(*base, "data.batch_size=32", "trainer.accumulate_grad_batches=4"),
                                tmp_path / "four")
    assert len(one) == len(four) > 0
    for a, b in zip(one, four):
        assert torch.allclose(a, b, atol=1e-5)


def test_gradient_clipping_bounds_the_norm(tiny_cfg, tmp_path):
    grads = first_step_gradients(tiny_cfg("model=mlp", "scheduler=none", "trainer.gradient_clip_val=0.01"), tmp_path)
    assert torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])) <= 0.01 + 1e-6


@pytest.mark.slow
def test_bf16_autocast_on_cpu_trains_about_as_well_as_fp32(tiny_cfg, tmp_path):
    results = {}
    for precision in ("32", "bf16"):
        loop = build_loop(tiny_cfg("model=mlp", "scheduler=none", "trainer.max_epochs=3", f"trainer.precision={precision}"),
                          tmp_path / precision)
        results[precision] = loop.fit()["test"]["test/acc"]
    assert results["32"] > 0.9
    assert abs(results["bf16"] - results["32"]) <= 0.02


def test_fp16_needs_cuda(tiny_cfg, tmp_path):
    with pytest.raises(ConfigError, match="16 .fp16. needs CUDA"):
        build_loop(tiny_cfg("trainer.precision=16"), tmp_path)
