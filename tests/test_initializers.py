"""Initializers: sample statistics against the formulas, biases zero, every layer, the symmetry problem."""

import math

import pytest
import torch
from torch import nn

from conftest import make_cfg
from dlrun.config.schema import build
from dlrun.data import DataInfo
from dlrun.models.mlp import MLP
from dlrun.nn.initializers import initialize

# a non-square layer: a form that uses fan_in where it should use fan_in + fan_out (or the reverse) fails
FAN_IN, FAN_OUT = 1000, 250
# expected (mean, std) of the weights of a 1000 -> 250 Linear layer, from the formulas (not from torch)
EXPECTED = {
    "xavier_vanilla": (0.0, math.sqrt(1 / FAN_IN)),  # the notes' vanilla Xavier: Var = 1/n_in
    "normal": (0.0, 0.01),  # N(0, std^2), std = 0.01
    "uniform": (0.0, 0.1 / math.sqrt(12)),  # U(-0.05, 0.05): std = (b - a) / sqrt(12)
    "xavier_uniform": (0.0, math.sqrt(6 / (FAN_IN + FAN_OUT)) / math.sqrt(3)),  # U(-r, r), r = sqrt(6/(in+out))
    "xavier_normal": (0.0, math.sqrt(2 / (FAN_IN + FAN_OUT))),
    "he_normal": (0.0, math.sqrt(2 / FAN_IN)),  # the notes: N(0, sqrt(2/n_i))
    "he_uniform": (0.0, math.sqrt(6 / FAN_IN) / math.sqrt(3)),  # U(-r, r), r = sqrt(6/n_i)
}


def closed_form_variance(name, n_in, n_out):
    return {"xavier_vanilla": 1 / n_in, "xavier_uniform": 2 / (n_in + n_out), "xavier_normal": 2 / (n_in + n_out),
            "he_normal": 2 / n_in, "he_uniform": 2 / n_in}[name]


def init_fn(name: str, *overrides):
    return build(make_cfg(f"initializer={name}", *overrides).initializer, "initializer")


@pytest.mark.slow
@pytest.mark.parametrize("name", list(EXPECTED))
def test_sample_statistics_match_the_formula(name):
    torch.manual_seed(0)
    layer = nn.Linear(FAN_IN, FAN_OUT)
    assert initialize(layer, init_fn(name)) == 1
    mean, std = EXPECTED[name]
    w = layer.weight.double()
    assert abs(w.mean().item() - mean) <= 0.03 * std  # the mean is 0: within 3% of a standard deviation
    assert w.std().item() == pytest.approx(std, rel=0.03)
    assert torch.count_nonzero(layer.bias) == 0


@pytest.mark.parametrize("name,overrides", [("xavier_vanilla", ()),
                                            ("xavier_vanilla", ("initializer.distribution=uniform",)),
                                            ("xavier_uniform", ()), ("xavier_normal", ()), ("he_normal", ())])
def test_conv_layers_count_the_kernel_area_in_their_fans(name, overrides):
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 64, 3)  # n_in = 16*3*3 = 144, n_out = 64*3*3 = 576: vanilla 1/144, normalized 1/360
    initialize(conv, init_fn(name, *overrides))
    var = closed_form_variance(name, 144, 576)
    assert conv.weight.double().var().item() == pytest.approx(var, rel=0.05)


def test_vanilla_xavier_uniform_has_the_vanilla_variance_and_bound():
    # on this 1000 -> 250 layer vanilla gives Var 0.001, normalized 0.0016 (test_sample_statistics_match_the_formula)
    torch.manual_seed(0)
    layer = nn.Linear(FAN_IN, FAN_OUT)
    initialize(layer, init_fn("xavier_vanilla", "initializer.distribution=uniform"))
    assert layer.weight.double().var().item() == pytest.approx(1 / FAN_IN, rel=0.02)
    r = math.sqrt(3 / FAN_IN)
    assert r * 0.99 < layer.weight.abs().max().item() <= r


def test_scale_is_configurable():
    layer = nn.Linear(FAN_IN, FAN_OUT)
    initialize(layer, init_fn("normal", "initializer.std=0.2"))
    assert layer.weight.std().item() == pytest.approx(0.2, rel=0.03)
    initialize(layer, init_fn("uniform", "initializer.a=-1", "initializer.b=1"))
    assert layer.weight.min().item() >= -1 and layer.weight.max().item() <= 1
    assert layer.weight.std().item() == pytest.approx(2 / math.sqrt(12), rel=0.03)


def test_every_linear_and_conv_layer_is_set_and_batchnorm_left_alone():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5),
                          nn.BatchNorm1d(5), nn.Linear(5, 2))
    assert initialize(model, init_fn("zeros")) == 3
    for i in (0, 4, 6):
        assert torch.count_nonzero(model[i].weight) == 0 and torch.count_nonzero(model[i].bias) == 0
    assert torch.equal(model[1].weight, torch.ones(4)) and torch.equal(model[5].weight, torch.ones(5))


@pytest.mark.slow
def test_default_leaves_pytorchs_initialisation(tiny_cfg, tmp_path):
    from dlrun.training.tasks import build_loop

    assert not make_cfg().initializer  # nothing to apply
    loop = build_loop(tiny_cfg("model=mlp", "callbacks=none"), tmp_path)
    assert torch.count_nonzero(loop.model[1].bias) > 0  # PyTorch's uniform biases are kept
    loop = build_loop(tiny_cfg("model=mlp", "callbacks=none", "initializer=he_normal"), tmp_path / "he")
    assert torch.count_nonzero(loop.model[1].bias) == 0


def _train(model, steps=30):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 8, generator=g), torch.randint(0, 3, (64,), generator=g)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model


@pytest.mark.slow
def test_zero_initialisation_keeps_hidden_units_identical():
    # the notes' symmetry problem: every hidden unit gets the same gradient, so they never differ
    torch.manual_seed(0)
    info = DataInfo((8,), 3, ["a", "b", "c"])
    zero = MLP(info.in_shape, 3, hidden=[16], activation="sigmoid")
    initialize(zero, init_fn("zeros"))
    _train(zero)
    w1, w2 = zero[1].weight, zero[3].weight  # 16x8 hidden, 3x16 output
    assert w1.abs().sum() > 0  # it did learn something...
    assert torch.allclose(w1, w1[:1].expand_as(w1))  # ...but all 16 hidden units are the same unit
    assert torch.allclose(w2, w2[:, :1].expand_as(w2))

    xavier = MLP(info.in_shape, 3, hidden=[16], activation="sigmoid")
    initialize(xavier, init_fn("xavier_uniform"))
    _train(xavier)
    assert not torch.allclose(xavier[1].weight, xavier[1].weight[:1].expand_as(xavier[1].weight))
