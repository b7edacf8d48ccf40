"""The perceptron of the notes: step output, the rule w <- w + alpha (y - yhat) x through plain SGD, logic gates."""

import json

import numpy as np
import pytest
import torch
from conftest import make_cfg, read_summary, run_dlrun
from omegaconf import OmegaConf

from dlrun.config.schema import build
from dlrun.data import DataInfo
from dlrun.data.logic_gate import GATES, ROWS
from dlrun.errors import ConfigError
from dlrun.models import build_model
from dlrun.models.perceptron import Perceptron, PerceptronCriterion, linearly_separable


def sgd_step(model, x, y, lr, optimizer=None):
    optimizer = optimizer or torch.optim.SGD(model.parameters(), lr=lr)
    loss = PerceptronCriterion()(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def test_the_notes_worked_and_gate_update():
    # the notes: w1 = 1.2, w2 = 0.6, threshold 1 (bias -1), alpha 0.5; row A=1, B=0 of AND (target 0)
    model = Perceptron((2,), 2)
    with torch.no_grad():
        model.linear.weight.copy_(torch.tensor([[1.2, 0.6]]))
        model.linear.bias.fill_(-1.0)
    x, y = torch.tensor([[1.0, 0.0]]), torch.tensor([0])
    assert model(x).item() == 1.0  # 1.2 > 1: predicted 1, actual 0
    sgd_step(model, x, y, lr=0.5)
    # w1 = 1.2 + 0.5 (0 - 1) 1 = 0.7, w2 = 0.6 + 0.5 (0 - 1) 0 = 0.6: the notes' new weights
    assert torch.allclose(model.linear.weight, torch.tensor([[0.7, 0.6]]))
    assert model.linear.bias.item() == pytest.approx(-1.5)  # the bias is a weight on a constant input 1
    # with them the notes' four cases all come out right (the threshold stays where the notes keep it at 1)
    with torch.no_grad():
        model.linear.bias.fill_(-1.0)
    assert model(torch.from_numpy(ROWS).float()).tolist() == [0, 0, 0, 1]


def test_sgd_through_the_criterion_is_exactly_the_perceptron_rule():
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        model = Perceptron((3,), 2, init="default")
        w0, b0 = model.linear.weight.detach().clone(), model.linear.bias.detach().clone()
        x = torch.randn(1, 3, generator=g)
        y = torch.randint(0, 2, (1,), generator=g)
        alpha = float(torch.rand((), generator=g)) + 0.01
        yhat = model(x).item()
        sgd_step(model, x, y, lr=alpha)
        assert torch.allclose(model.linear.weight, w0 + alpha * (y.item() - yhat) * x, atol=1e-6)
        assert torch.allclose(model.linear.bias, b0 + alpha * (y.item() - yhat), atol=1e-6)


def test_step_output_and_loss_value():
    model = Perceptron((2,), 2, init="default")
    out = model(torch.randn(64, 2))
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    # 1/2 (y - yhat)^2 averaged: half the error rate
    assert PerceptronCriterion()(torch.tensor([1.0, 0.0, 1.0, 1.0]), torch.tensor([1, 1, 0, 1])).item() == 0.25


def test_the_experiments_optimizer_performs_the_rule():
    cfg = make_cfg("experiment=perceptron_and")
    model = build_model(cfg.model, DataInfo((2,), 2, ["0", "1"]))
    optimizer = build(cfg.optimizer, "optimizer")(model.parameters())
    x, y = torch.tensor([[0.3, -0.8]]), torch.tensor([1])
    sgd_step(model, x, y, lr=None, optimizer=optimizer)  # zero weights: yhat = 0, so w = alpha * x
    assert torch.allclose(model.linear.weight, cfg.optimizer.lr * x)
    assert cfg.data.batch_size == 1


@pytest.mark.parametrize("gate, outputs", [("and", [0, 0, 0, 1]), ("or", [0, 1, 1, 1]), ("nand", [1, 1, 1, 0]),
                                           ("xor", [0, 1, 1, 0])])
@pytest.mark.slow
def test_logic_gate_truth_tables(gate, outputs):
    from dlrun.data.logic_gate import from_config

    src = from_config(make_cfg("data=logic_gate", f"data.gate={gate}").data, seed=0)
    assert src.train_x.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert src.train_y.tolist() == outputs and src.test_y.tolist() == outputs


def test_logic_gate_errors():
    from dlrun.data.logic_gate import from_config

    with pytest.raises(ConfigError, match="data.gate=maybe.*and, or, nand, nor, xor, xnor"):
        from_config(make_cfg("data=logic_gate", "data.gate=maybe").data, seed=0)
    with pytest.raises(ConfigError, match="data.val_fraction=0.25.*all four truth-table rows"):
        from_config(make_cfg("data=logic_gate", "data.val_fraction=0.25").data, seed=0)
    with pytest.raises(ConfigError, match="binary classifier.*10 classes"):
        Perceptron((1, 28, 28), 10)


def test_linear_separability_of_the_gates():
    x = torch.from_numpy(ROWS).float()
    for gate in ("and", "or", "nand", "nor"):
        assert linearly_separable(x, torch.from_numpy(GATES[gate](ROWS[:, 0], ROWS[:, 1])))
    for gate in ("xor", "xnor"):
        assert not linearly_separable(x, torch.from_numpy(GATES[gate](ROWS[:, 0], ROWS[:, 1])))


@pytest.mark.subprocess
def test_perceptron_and_reaches_100_percent_and_prints_its_weights(tmp_path):
    proc = run_dlrun("experiment=perceptron_and", "trainer.progress=none", "trainer.num_threads=1",
                     f"hydra.run.dir={tmp_path}/run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = read_summary(tmp_path / "run")
    assert summary["test"]["test/acc"] == 1.0
    report = summary["perceptron"]
    assert report["train_acc"] == 1.0 and "reason" not in report
    assert f"learned weights {report['weights']}, bias {report['bias']}" in proc.stdout
    # the printed weights are the model's: they reproduce the AND truth table on the (standardised) inputs
    w, b = np.array(report["weights"]), report["bias"]
    rows = (ROWS - ROWS.mean(0)) / ROWS.std(0, ddof=1)
    assert ((rows @ w + b) > 0).astype(int).tolist() == [0, 0, 0, 1]


def fit(tmp_path, *overrides):
    from dlrun.training.tasks import build_loop

    cfg = make_cfg(*overrides, "trainer.progress=none")
    OmegaConf.set_struct(cfg, False)
    cfg.callbacks = {k: v for k, v in cfg.callbacks.items() if k == "perceptron"}  # no checkpoints needed here
    return build_loop(cfg, tmp_path).fit()


def test_perceptron_notes_reproduces_the_notes_weights_on_raw_inputs(tmp_path):
    # experiment=perceptron_notes: data.standardize=false, init [1.2, 0.6], fixed threshold 1, alpha 0.5
    summary = fit(tmp_path, "experiment=perceptron_notes")
    report = summary["perceptron"]
    assert report["weights"] == pytest.approx([0.7, 0.6]) and report["bias"] == -1.0  # the notes' new weights
    assert report["train_acc"] == 1.0
    # and the rows the model saw were the raw 0/1 ones: their rule w.x > 1 gives AND
    assert ((ROWS @ np.array(report["weights"])) > 1).astype(int).tolist() == [0, 0, 0, 1]


def test_standardize_false_keeps_raw_inputs_and_bad_inits_are_refused():
    from dlrun.data import build_data

    raw = build_data(make_cfg("data=logic_gate", "data.standardize=false").data, torch.device("cpu"), 0)
    assert sorted(map(tuple, raw.train.x.tolist())) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    scaled = build_data(make_cfg("data=logic_gate").data, torch.device("cpu"), 0)
    assert scaled.train.x.abs().max().item() == pytest.approx(0.866, abs=1e-3)  # (1 - 0.5) / std(0,0,1,1)
    with pytest.raises(ConfigError, match="model.init.*a list of 2 numbers"):
        Perceptron((2,), 2, init=[1.0, 2.0, 3.0])


def test_perceptron_xor_does_not_and_the_summary_says_why(tmp_path):
    summary = fit(tmp_path, "experiment=perceptron_xor")
    assert summary["test"]["test/acc"] < 1.0
    report = summary["perceptron"]
    assert report["linearly_separable"] is False
    assert "not linearly separable" in report["reason"]
    assert json.loads((tmp_path / "summary.json").read_text())["perceptron"] == report


@pytest.mark.slow
@pytest.mark.parametrize("seed", [42, 0, 1])
def test_mlp_xor_reaches_100_percent(tmp_path, seed):
    summary = fit(tmp_path, "experiment=mlp_xor", f"seed={seed}")
    assert summary["status"] == "completed"
    assert summary["test"]["test/acc"] == 1.0
