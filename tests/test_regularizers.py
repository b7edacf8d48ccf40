"""Penalties on known weights, what they leave alone, their effect on a run, and the model-option regularizers."""

import json

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from conftest import make_cfg
from dlrun.errors import ConfigError
from dlrun.nn.regularizers import Penalty, build_penalty, with_model_options
from dlrun.training.tasks import build_loop


def known_model():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), nn.Linear(2, 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 0.0]]))
        model[0].bias.fill_(100.0)  # biases and batch norm are not penalised: large values must not count
        model[1].weight.fill_(50.0)
        model[2].weight.copy_(torch.tensor([[-3.0, 4.0]]))
    return model.double()  # sum |w| = 3.5 + 7 = 10.5, sum w^2 = 5.25 + 25 = 30.25


@pytest.mark.parametrize("name,strength,expected", [
    ("l1", 0.01, 0.01 * 10.5),
    ("l2", 0.01, 0.01 * 30.25),
    ("elastic_net", 0.01, 0.01 * (0.3 * 10.5 + 0.7 / 2 * 30.25)),
])
def test_penalty_is_lambda_times_its_formula(name, strength, expected):
    overrides = [f"regularizer={name}", f"regularizer.{name}.strength={strength}"]
    if name == "elastic_net":
        overrides.append("regularizer.elastic_net.alpha=0.3")
    model = known_model()
    penalty = build_penalty(make_cfg(*overrides), model)
    assert penalty().item() == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("name,overrides,expected", [
    # the notes' ridge: mse + 1/2 sum w^2 (with its lambda)
    ("l2", ["regularizer.l2.strength=0.01"], 0.5 * 0.01 * 30.25),
    # the notes' elastic net: lambda sum |b| + (1 - alpha)/2 sum b^2, lambda on the L1 term only
    ("elastic_net", ["regularizer.elastic_net.strength=0.01", "regularizer.elastic_net.alpha=0.3"],
     0.01 * 10.5 + (1 - 0.3) / 2 * 30.25),
])
def test_notes_form_is_the_notes_formula(name, overrides, expected):
    model = known_model()
    penalty = build_penalty(make_cfg(f"regularizer={name}", f"regularizer.{name}.form=notes", *overrides), model)
    assert penalty().item() == pytest.approx(expected, abs=1e-9)
    weight = model[0].weight
    grad = torch.autograd.grad(penalty(), weight)[0]
    if name == "l2":  # the 1/2 makes the gradient lambda w: the classic weight decay
        torch.testing.assert_close(grad, 0.01 * weight.detach())
    else:
        torch.testing.assert_close(grad, 0.01 * weight.detach().sign() + 0.7 * weight.detach())


def test_an_unknown_form_is_one_clear_error():
    with pytest.raises(ConfigError, match="regularizer.l2.form.*standard or notes"):
        build_penalty(make_cfg("regularizer=l2", "regularizer.l2.form=book"), known_model())


def test_penalty_raises_the_training_loss_and_its_gradient_exactly():
    model = known_model()
    x, y = torch.randn(8, 2, dtype=torch.float64), torch.randn(8, 1, dtype=torch.float64)
    data_loss = nn.functional.mse_loss(model(x), y)
    penalty = build_penalty(make_cfg("regularizer=l2", "regularizer.l2.strength=0.1"), model)
    total = data_loss + penalty()
    assert (total - data_loss).item() == pytest.approx(0.1 * 30.25, abs=1e-6)
    g_data = torch.autograd.grad(data_loss, model[0].weight, retain_graph=True)[0]
    g_total = torch.autograd.grad(total, model[0].weight)[0]
    torch.testing.assert_close(g_total - g_data, 0.1 * 2 * model[0].weight.detach())  # d/dw lambda w^2
    fresh = lambda: nn.functional.mse_loss(model(x), y)
    g_bias = torch.autograd.grad(fresh() + penalty(), model[0].bias)[0]
    torch.testing.assert_close(g_bias, torch.autograd.grad(fresh(), model[0].bias)[0])  # biases: no penalty


def test_none_builds_no_penalty_and_several_compose():
    assert build_penalty(make_cfg(), known_model()) is None
    cfg = make_cfg("regularizer=[l1,l2]", "regularizer.l1.strength=0.01", "regularizer.l2.strength=0.1")
    assert build_penalty(cfg, known_model())().item() == pytest.approx(0.01 * 10.5 + 0.1 * 30.25, abs=1e-9)


def test_dropout_and_batchnorm_set_the_model_options(tiny_cfg, tmp_path):
    cfg = tiny_cfg("model=mlp", "callbacks=none", "regularizer=[l2,dropout,batchnorm]", "regularizer.dropout.p=0.3")
    loop = build_loop(cfg, tmp_path)
    kinds = [type(m) for m in loop.model]
    assert nn.Dropout in kinds and nn.BatchNorm1d in kinds
    assert next(m for m in loop.model if isinstance(m, nn.Dropout)).p == 0.3
    assert loop.run_config.model.dropout == 0.3 and loop.run_config.model.batchnorm is True  # in the config the checkpoint stores
    assert loop.penalty is not None


def test_a_model_without_the_option_fails_clearly():
    cfg = OmegaConf.create({"model": {"_target_": "pkg.Perceptron", "lr": 1.0}, "regularizer": {"dropout": {"p": 0.5}}})
    with pytest.raises(ConfigError, match="has no model.dropout option"):
        with_model_options(cfg)


def test_bad_strength_is_rejected_before_training():
    from dlrun.training.validate import validate

    with pytest.raises(ConfigError, match="regularizer.l1.strength"):
        validate(make_cfg("regularizer=l1", "regularizer.l1.strength=-1"))
    with pytest.raises(ConfigError, match="regularizer.dropout.p"):
        validate(make_cfg("regularizer=dropout", "regularizer.dropout.p=1.5"))


def _near_zero_fraction(tiny_cfg, tmp_path, *overrides):
    tmp_path.mkdir()
    loop = build_loop(tiny_cfg("model=mlp", "model.hidden=[32]", "callbacks=none", "optimizer=sgd",
                               "optimizer.lr=0.1", "scheduler=none", "trainer.max_epochs=4", "data.batch_size=16", "trainer.num_threads=1",
                               *overrides), tmp_path)
    loop.fit()
    w = torch.cat([m.weight.detach().flatten() for m in loop.model if isinstance(m, nn.Linear)])
    return (w.abs() < 1e-3).float().mean().item(), loop


@pytest.mark.slow
def test_l1_drives_more_weights_to_zero_and_logs_the_penalty(tiny_cfg, tmp_path):
    plain, _ = _near_zero_fraction(tiny_cfg, tmp_path / "none")
    sparse, loop = _near_zero_fraction(tiny_cfg, tmp_path / "l1", "regularizer=l1", "regularizer.l1.strength=0.01")
    assert plain < 0.1 and sparse > 0.5, (plain, sparse)  # |w| < 1e-3: measured 0.014 without, 0.68 with l1
    rows = [json.loads(line) for line in (tmp_path / "l1" / "metrics.jsonl").read_text().splitlines()]
    assert all(r["train/penalty"] > 0 for r in rows)
    assert rows[-1]["train/penalty"] < rows[0]["train/penalty"]  # the weights shrink
    assert "train/penalty" not in json.loads((tmp_path / "none" / "metrics.jsonl").read_text().splitlines()[0])
    assert isinstance(loop.penalty, Penalty)
