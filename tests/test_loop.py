"""The loop itself, in-process on synthetic data."""

import pytest
import torch

from dlrun.run_folder import checkpoint
from dlrun.training.tasks import build_loop


@pytest.mark.slow
def test_fit_lowers_the_loss_and_learns(tiny_cfg, tmp_path):
    loop = build_loop(tiny_cfg("trainer.max_epochs=4", "model=mlp"), tmp_path)
    summary = loop.fit()
    losses = [row["train/loss"] for row in loop.history]
    assert summary["status"] == "completed"
    assert losses[-1] < 0.5 * losses[0]
    assert summary["test"]["test/acc"] > 0.9  # 4 well-separated classes: chance is 0.25


@pytest.mark.slow
def test_checkpoint_round_trip_restores_everything(tiny_cfg, tmp_path):
    cfg = tiny_cfg("trainer.max_epochs=1")
    loop = build_loop(cfg, tmp_path / "a")
    loop.fit()
    path = tmp_path / "ckpt.pt"
    checkpoint.save(checkpoint.capture(loop), path)

    fresh = build_loop(cfg, tmp_path / "b")
    state = checkpoint.load(path)
    checkpoint.restore(fresh, state, path)
    for (name, p), q in zip(loop.model.state_dict().items(), fresh.model.state_dict().values()):
        assert torch.equal(p, q), name
    assert fresh.epoch == loop.epoch == 1 and fresh.step == loop.step > 0
    assert fresh.optimizer.state_dict()["state"][0]["exp_avg"].equal(loop.optimizer.state_dict()["state"][0]["exp_avg"])
    assert state["config"]["data"]["name"] == "synthetic"


@pytest.mark.slow
def test_resuming_gives_the_same_weights_as_an_uninterrupted_run(tiny_cfg, tmp_path):
    # scheduler=none: a schedule over trainer.max_epochs (the default cosine) differs between a 1- and a 3-epoch run
    cfg = tiny_cfg("trainer.max_epochs=3", "trainer.deterministic=true", "model.dropout=0.3", "scheduler=none")
    full = build_loop(cfg, tmp_path / "full")
    full.fit()

    first = build_loop(tiny_cfg("trainer.max_epochs=1", "trainer.deterministic=true", "model.dropout=0.3", "scheduler=none"),
                       tmp_path / "part")
    first.fit()
    path = tmp_path / "part" / "checkpoints" / "last.pt"
    second = build_loop(cfg, tmp_path / "part")
    checkpoint.restore(second, checkpoint.load(path), path)
    second.fit()
    for p, q in zip(full.model.parameters(), second.model.parameters()):
        assert torch.equal(p, q)
    assert second.history[-1]["val/loss"] == full.history[-1]["val/loss"]


def test_non_finite_loss_stops_with_failed_status(tiny_cfg, tmp_path):
    import json

    from dlrun.training.loop import NonFiniteLossError

    loop = build_loop(tiny_cfg("optimizer=sgd", "optimizer.lr=1e30", "model=mlp"), tmp_path)
    with pytest.raises(NonFiniteLossError, match="lower optimizer.lr"):
        loop.fit()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "failed" and "step" in summary["error"]
