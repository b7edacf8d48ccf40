"""Learning-rate schedules per epoch against their closed forms, and the lr logged by a run."""

import json
import math

import pytest
import torch

from conftest import make_cfg
from dlrun.config.schema import build
from dlrun.training.tasks import build_loop


def lrs(name: str, epochs: int, *overrides, lr: float = 0.1, metrics=None) -> list[float]:
    """The lr of each epoch, stepping the configured scheduler once per epoch as the loop does."""
    cfg = make_cfg(f"scheduler={name}", f"trainer.max_epochs={epochs}", "optimizer=sgd", f"optimizer.lr={lr}", *overrides)
    opt = build(cfg.optimizer, "optimizer")([torch.nn.Parameter(torch.zeros(1))])
    sched = build(cfg.scheduler, "scheduler")(opt)
    out = []
    for e in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()  # (no gradient: a no-op) the order torch expects
        if metrics is None:
            sched.step()
        else:
            sched.step(metrics[e])
    return out


def test_step_decay():
    got = lrs("step", 12, "scheduler.step_size=5", "scheduler.gamma=0.5")
    assert got == pytest.approx([0.1 * 0.5 ** (e // 5) for e in range(12)], abs=1e-12)


def test_cosine_with_linear_warmup_closed_form():
    E, w = 10, 2
    expected = [0.1 * (e + 1) / (w + 1) if e < w else 0.1 * 0.5 * (1 + math.cos(math.pi * (e - w) / (E - w)))
                for e in range(E)]
    assert lrs("cosine", E, f"scheduler.warmup_epochs={w}") == pytest.approx(expected, abs=1e-12)


def test_cosine_without_warmup_is_torch_cosine_annealing():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    ref = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=8)
    expected = []
    for _ in range(8):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        ref.step()
    assert lrs("cosine", 8, "scheduler.warmup_epochs=0") == pytest.approx(expected, abs=1e-12)


def test_cosine_on_a_run_shorter_than_its_warmup():
    assert lrs("cosine", 1) == [pytest.approx(0.1)]


def test_onecycle_rises_to_optimizer_lr_then_anneals():
    got = lrs("onecycle", 10, lr=0.2)
    peak = max(range(10), key=got.__getitem__)
    assert got[0] == pytest.approx(0.2 / 25) and got[peak] == pytest.approx(0.2, rel=1e-6)
    assert 1 <= peak <= 4 and got[-1] < got[0]
    assert all(a <= b for a, b in zip(got[:peak], got[1:peak + 1]))


def test_reduce_on_plateau_follows_the_monitor_direction():
    acc = [0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]  # val/acc: higher is better, stalls after epoch 2
    got = lrs("reduce_on_plateau", 7, "scheduler.patience=2", "scheduler.factor=0.5", metrics=acc)
    assert got == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05])
    loss = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4]  # val/loss keeps improving: never reduced
    assert set(lrs("reduce_on_plateau", 7, "monitor=val/loss", metrics=loss)) == {0.1}


def test_the_run_logs_the_lr_of_every_epoch(tiny_cfg, tmp_path):
    loop = build_loop(tiny_cfg("callbacks=none", "trainer.max_epochs=3", "optimizer=sgd", "optimizer.lr=0.08",
                               "scheduler=step", "scheduler.step_size=1", "scheduler.gamma=0.5"), tmp_path)
    loop.fit()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in rows] == pytest.approx([0.08, 0.04, 0.02])


def test_the_default_experiment_uses_cosine():
    assert make_cfg().scheduler._target_.endswith("warmup_cosine")
    assert not make_cfg("scheduler=none").scheduler
