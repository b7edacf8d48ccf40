"""Each loss against torch.nn.functional, scipy, scikit-learn or the closed form, and the notes' tables."""

import math

import numpy as np
import pytest
import scipy.special
import sklearn.metrics
import torch
import torch.nn.functional as F

from conftest import TINY, make_cfg, run_dlrun
from dlrun.config.schema import build
from dlrun.data import DataInfo
from dlrun.errors import ConfigError
from dlrun.nn.losses import (MAE, MSE, BinaryCrossEntropy, CategoricalCrossEntropy, Hinge, Huber, PseudoHuber,
                             SparseCategoricalCrossEntropy, build_loss, model_info)

REG = DataInfo((10,), 1, [], "regression")
BINARY = DataInfo((30,), 2, ["no", "yes"])
TEN = DataInfo((1, 28, 28), 10, [str(i) for i in range(10)])


@pytest.fixture
def rand():
    g = torch.Generator().manual_seed(0)
    return lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64)


def test_mse_table_of_the_notes_gives_300():
    y, y_hat = torch.tensor([[90.0], [100.0], [110.0]]), torch.tensor([[70.0], [120.0], [100.0]])
    assert MSE().bind(REG)(y_hat, y).item() == pytest.approx(300.0, abs=1e-9)


def test_mae_table_of_the_notes_gives_47_over_3():
    y, y_hat = torch.tensor([[20.0], [50.0], [70.0]]), torch.tensor([[25.0], [72.0], [90.0]])
    assert MAE().bind(REG)(y_hat, y).item() == pytest.approx(47 / 3, abs=1e-6)


def test_bce_table_of_the_notes_in_log10():
    # the notes compute -log10: y=1, y_hat=0.7 -> 0.15 and y=0, y_hat=0.1 -> 0.04 (their second row,
    # 0.52, is -log10(0.3), not the 0.6 of its table); ours is the natural log, so divide by ln 10
    p = torch.tensor([0.7, 0.1], dtype=torch.float64)
    y = torch.tensor([1, 0])
    bce = BinaryCrossEntropy().bind(BINARY)
    per_row = [bce(torch.logit(p[i : i + 1]).view(1, 1), y[i : i + 1]).item() / math.log(10) for i in range(2)]
    assert per_row == pytest.approx([-math.log10(0.7), -math.log10(0.9)], abs=1e-9)
    assert per_row == pytest.approx([0.15, 0.04], abs=0.006)  # the notes' figures, truncated to 2 places


def test_regression_losses_match_closed_forms_and_scipy(rand):
    out, t = rand(64, 3), 2 * rand(64, 3)
    r = (out - t).numpy()
    assert MSE()(out, t).item() == pytest.approx(np.mean(r**2), abs=1e-6)
    assert MAE()(out, t).item() == pytest.approx(np.mean(np.abs(r)), abs=1e-6)
    for delta in (0.5, 1.0, 2.0):
        notes = np.where(np.abs(r) <= delta, 0.5 * r**2, delta * np.abs(r) - 0.5 * delta**2).mean()
        assert Huber(delta)(out, t).item() == pytest.approx(notes, abs=1e-6)
        assert Huber(delta)(out, t).item() == pytest.approx(scipy.special.huber(delta, r).mean(), abs=1e-6)
        pseudo = (delta**2 * (np.sqrt(1 + (r / delta) ** 2) - 1)).mean()
        assert PseudoHuber(delta)(out, t).item() == pytest.approx(pseudo, abs=1e-6)
        assert PseudoHuber(delta)(out, t).item() == pytest.approx(scipy.special.pseudo_huber(delta, r).mean(), abs=1e-6)


def test_bce_matches_closed_form_and_sklearn(rand):
    logits = rand(100, 1) * 3
    y = (rand(100) > 0).long()
    p = torch.sigmoid(logits).view(-1).numpy()
    closed = -np.mean(y.numpy() * np.log(p) + (1 - y.numpy()) * np.log(1 - p))
    bce = BinaryCrossEntropy().bind(BINARY)
    assert bce.num_outputs == 1 and bce.output_activation == "sigmoid"
    assert bce(logits, y).item() == pytest.approx(closed, abs=1e-6)
    assert bce(logits, y).item() == pytest.approx(sklearn.metrics.log_loss(y.numpy(), p), abs=1e-6)


def test_cross_entropies_match_torch_and_each_other(rand):
    logits, y = rand(50, 10), torch.randint(0, 10, (50,), generator=torch.Generator().manual_seed(1))
    sparse = SparseCategoricalCrossEntropy().bind(TEN)
    cce = CategoricalCrossEntropy().bind(TEN)
    closed = -F.log_softmax(logits, 1)[torch.arange(50), y].mean().item()
    assert sparse(logits, y).item() == pytest.approx(closed, abs=1e-6)
    assert cce(logits, y).item() == pytest.approx(closed, abs=1e-6)  # labels -> one-hot inside
    soft = torch.softmax(rand(50, 10), 1)  # soft targets given directly (unbound)
    assert CategoricalCrossEntropy()(logits, soft).item() == pytest.approx(F.cross_entropy(logits, soft).item(), abs=1e-6)
    smooth = CategoricalCrossEntropy(label_smoothing=0.1).bind(TEN)(logits, y).item()
    assert smooth == pytest.approx(F.cross_entropy(logits, y, label_smoothing=0.1).item(), abs=1e-6)
    assert sklearn.metrics.log_loss(y.numpy(), torch.softmax(logits, 1).numpy(), labels=range(10)) == pytest.approx(closed, abs=1e-6)


def test_notes_cce_row():
    # -[1 log 0.7 + 0 log 0.2 + 0 log 0.1] with softmax outputs (0.7, 0.2, 0.1): the notes print 0.223,
    # which is -ln 0.8; -ln 0.7 is 0.357
    logits = torch.log(torch.tensor([[0.7, 0.2, 0.1]], dtype=torch.float64))
    three = DataInfo((4,), 3, ["a", "b", "c"])
    assert CategoricalCrossEntropy().bind(three)(logits, torch.tensor([0])).item() == pytest.approx(-math.log(0.7), abs=1e-9)


def test_binary_hinge_maps_labels_to_plus_minus_one_and_matches_sklearn(rand):
    g, y = rand(80, 1), (rand(80) > 0).long()
    hinge = Hinge().bind(BINARY)
    assert hinge.num_outputs == 1
    assert hinge.targets(torch.tensor([0, 1]), g[:2]).view(-1).tolist() == [-1.0, 1.0]
    pm = 2 * y.numpy() - 1
    assert hinge(g, y).item() == pytest.approx(np.maximum(0, 1 - pm * g.view(-1).numpy()).mean(), abs=1e-6)
    assert hinge(g, y).item() == pytest.approx(sklearn.metrics.hinge_loss(pm, g.view(-1).numpy()), abs=1e-6)


def test_multiclass_hinge_is_one_vs_rest_on_plus_minus_one_one_hot(rand):
    g, y = rand(40, 10), torch.arange(40) % 10
    t = -np.ones((40, 10))
    t[np.arange(40), y.numpy()] = 1
    expected = np.maximum(0, 1 - t * g.numpy()).mean()
    assert Hinge().bind(TEN)(g, y).item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.slow
def test_outputs_per_loss_and_data():
    assert model_info(build_loss(make_cfg("loss=bce").loss, BINARY), BINARY).num_classes == 1
    assert model_info(build_loss(make_cfg("loss=sparse_cce").loss, BINARY), BINARY).num_classes == 2
    assert model_info(build_loss(make_cfg("loss=mse").loss, TEN), TEN).num_classes == 10  # one-hot targets
    assert model_info(build_loss(make_cfg("loss=huber").loss, REG), REG).num_classes == 1
    assert model_info(build_loss(make_cfg("loss=bce", "loss.multi_label=true").loss, TEN), TEN).num_classes == 10
    plain = torch.nn.CrossEntropyLoss()  # a criterion that is not ours is used as built
    assert model_info(plain, TEN) is TEN


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bce", "hinge", "cce", "sparse_cce"])
def test_classification_losses_reject_regression_data(name):
    with pytest.raises(ConfigError, match="mse, mae, huber, pseudo_huber"):
        build_loss(make_cfg(f"loss={name}").loss, REG)


def test_binary_bce_on_ten_classes_fails_and_names_what_fits():
    with pytest.raises(ConfigError) as e:
        build_loss(make_cfg("loss=bce").loss, TEN)
    assert "multi_label" in str(e.value) and "sparse_cce" in str(e.value) and "10 classes" in str(e.value)


@pytest.mark.subprocess
def test_impossible_pairing_fails_before_training_from_the_command_line(tmp_path):
    r = run_dlrun(*TINY, "data.num_classes=10", "loss=bce", f"hydra.run.dir={tmp_path}/run")
    assert r.returncode == 2
    err = r.stderr + r.stdout
    assert "error: loss=bce" in err and "sparse_cce" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


@pytest.mark.slow
def test_every_loss_config_builds():
    for name in ("mse", "mae", "huber", "pseudo_huber", "bce", "cce", "sparse_cce", "cross_entropy", "hinge"):
        loss = build(make_cfg(f"loss={name}").loss, "loss")
        assert loss.name in (name, "sparse_cce")
