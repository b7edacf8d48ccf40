"""The gradient-norm callback: per-layer norms in metrics.jsonl and TensorBoard; sigmoid's vanishing gradient."""

from __future__ import annotations

import json

import pytest

from dlrun.callbacks.base import order_callbacks
from dlrun.training.tasks import build_loop

DEEP = ["model=mlp", "model.hidden=[64,64,64,64,64,64,64,64]", "initializer=xavier_uniform", "optimizer=sgd",
        "trainer.num_threads=1", "trainer.max_epochs=1", "callbacks=[tensorboard,gradient_norms]",
        "callbacks.tensorboard.histograms_every_n_epochs=0", "callbacks.tensorboard.images_every_n_epochs=0"]


def _norms(tiny_cfg, tmp_path, activation):
    loop = build_loop(tiny_cfg(*DEEP, f"model.activation={activation}"), tmp_path / activation)
    names = list(order_callbacks(loop.callbacks))
    assert names.index("gradient_norms") < names.index("tensorboard")  # its keys are in the row TensorBoard reads
    loop.fit()
    row = [json.loads(line) for line in (tmp_path / activation / "metrics.jsonl").read_text().splitlines()][-1]
    norms = {k.split("/", 1)[1]: v for k, v in row.items() if k.startswith("grad_norm/")}
    return norms, tmp_path / activation


@pytest.mark.slow
def test_sigmoid_gradient_vanishes_towards_the_input(tiny_cfg, tmp_path):
    sig, run_dir = _norms(tiny_cfg, tmp_path, "sigmoid")
    relu, _ = _norms(tiny_cfg, tmp_path, "relu")
    layers = list(sig)  # Sequential indices of the 9 Linear layers, input first
    assert len(layers) == 9 and layers[0] == "1" and all(v > 0 for v in sig.values())
    first, last = sig[layers[0]], sig[layers[-1]]
    assert first < last / 100  # each sigmoid multiplies the backward signal by at most 1/4: 0.25^8 ~ 1.5e-5
    assert first < relu[layers[0]] / 100  # relu's first layer still learns
    assert relu[layers[0]] > relu[layers[-1]] / 100

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir))
    events.Reload()
    assert f"grad_norm/{layers[0]}" in events.Tags()["scalars"]


def test_norms_are_means_over_the_epochs_steps(tiny_cfg, tmp_path):
    """A hand check: the callback's figure equals the mean of the norms read at each optimizer step."""
    import torch

    from dlrun.callbacks.base import Callback

    seen = []

    class Record(Callback):
        order = -60

        def on_before_optimizer_step(self, loop):
            seen.append(loop.model[-1].weight.grad.norm().item())

    loop = build_loop(tiny_cfg("model=mlp", "model.hidden=[8]", "trainer.num_threads=1", "trainer.max_epochs=1",
                               "callbacks=gradient_norms"), tmp_path)
    loop.callbacks["record"] = Record()
    loop.fit()
    row = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert len(seen) == loop.step > 1
    assert abs(row["grad_norm/3"] - sum(seen) / len(seen)) < 1e-5 * max(seen)
    assert torch.isfinite(torch.tensor(row["grad_norm/1"]))
