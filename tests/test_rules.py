"""Where the config's rules live (each once) and the one place that assembles model, loss and optimizer."""

from __future__ import annotations

import pytest
import torch

from conftest import TINY, make_cfg
from dlrun.config.schema import DataConfig, LrFindConfig, TrainerConfig
from dlrun.training.validate import validate
from dlrun.errors import ConfigError
from dlrun.nn.optimizers import add_unfrozen_group
from dlrun.nn.regularizers import with_model_options
from dlrun.training.tasks import build_loop

FAST = [*TINY, "model=lenet", "callbacks=none", "trainer.num_threads=1"]


@pytest.mark.parametrize("make, message", [
    (lambda: TrainerConfig(max_epochs=0), "trainer.max_epochs=0 is not allowed: an integer >= 1"),
    (lambda: TrainerConfig(unfreeze_at_epoch=-1), "trainer.unfreeze_at_epoch=-1"),
    (lambda: DataConfig(augment=["crop", "rotate90"]), r"data.augment=\['crop', 'rotate90'\] is not allowed"),
    (lambda: DataConfig(test_fraction=1.0), "data.test_fraction=1.0"),
    (lambda: LrFindConfig(min_lr=1.0, max_lr=0.1), "lr_find.min_lr=1.0 is not allowed: a positive lr below"),
])
def test_a_typed_group_checks_its_own_ranges(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_the_defaults_of_the_typed_groups_pass_their_rules():
    assert TrainerConfig().max_epochs == 10 and DataConfig().augment == [] and LrFindConfig().num_steps == 200


@pytest.mark.parametrize("overrides, message", [
    (("optimizer=momentum", "optimizer.beta=1.5"), r"optimizer.beta=1.5 is not allowed: a number in \[0, 1\)"),
    (("data=diabetes", "monitor=val/loss", "loss=huber", "loss.delta=0"), "loss.delta=0 is not allowed: a number > 0"),
    (("model.freeze=some",), "model.freeze=some is not allowed: none, backbone or a number"),
    (("regularizer=elastic_net", "regularizer.elastic_net.alpha=2"), r"regularizer.elastic_net.alpha=2"),
    (("lr_find.num_steps=3",), "lr_find.num_steps=3 is not allowed: at least 10"),
])
def test_component_rules_are_checked_before_anything_is_built(overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate(make_cfg(*overrides))


def test_model_options_make_a_new_config():
    cfg = make_cfg(*FAST, "regularizer=dropout", "regularizer.dropout.p=0.25")
    before = cfg.model.dropout
    new = with_model_options(cfg)
    assert new.model.dropout == 0.25 and cfg.model.dropout == before != 0.25
    plain = make_cfg(*FAST)
    assert with_model_options(plain) is plain  # no option chosen: nothing to copy


def test_a_resumed_unfrozen_run_gets_the_group_the_callback_adds(tmp_path):
    """The unfreeze callback mid-run and a resume after it build the same parameter groups at the same rates."""
    cfg = make_cfg(*FAST, "model.freeze=backbone", "+optimizer.head_lr_mult=10", "trainer.unfreeze_at_epoch=2",
                   "scheduler=none")
    live = build_loop(cfg, tmp_path / "a")
    assert len(live.optimizer.param_groups) == 1  # the head alone: the backbone is frozen
    live.epoch = 1
    live.callbacks["unfreeze"].on_epoch_start(live)
    resumed = build_loop(cfg, tmp_path / "b", unfrozen=True)
    rates = [[g["lr"], g["lr_mult"], len(g["params"])] for g in live.optimizer.param_groups]
    assert rates == [[g["lr"], g["lr_mult"], len(g["params"])] for g in resumed.optimizer.param_groups]
    assert rates[1][0] == pytest.approx(rates[0][0] / 10) and rates[1][2] == 8  # the body's rate, LeNet's 8 tensors
    resumed.optimizer.load_state_dict(live.optimizer.state_dict())  # what a resume puts back fits


def test_an_unfrozen_group_follows_the_first_groups_schedule():
    w, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([{"params": [w], "lr": 1.0, "lr_mult": 4.0}], lr=0.25)
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: 0.5 ** epoch)
    group = add_unfrozen_group(opt, [b], scheduler)
    assert group["lr"] == 0.25 and group["initial_lr"] == 0.25
    opt.step()  # no gradients: nothing moves; the schedule advances in the order torch expects
    scheduler.step()
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.125]
