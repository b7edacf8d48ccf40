"""scikit-learn's bundled datasets: splits, training-only standardisation, regression metrics, real runs."""

import json

import numpy as np
import pytest
import torch

from conftest import make_cfg
from dlrun.data import build_data
from dlrun.data.tabular import load
from dlrun.errors import ConfigError
from dlrun.training.metrics import EpochMetrics
from dlrun.training.tasks import build_loop

CPU = torch.device("cpu")
SHAPES = {"diabetes": ((10,), "regression", 0), "breast_cancer": ((30,), "classification", 2),
          "iris": ((4,), "classification", 3), "wine": ((13,), "classification", 3),
          "digits": ((1, 8, 8), "classification", 10)}


@pytest.mark.parametrize("name", list(SHAPES))
def test_each_dataset_loads_with_a_fixed_held_out_test_split(name):
    shape, task, n_classes = SHAPES[name]
    src = load(name)
    assert src.task == task and src.train_x.shape[1:] == shape and len(src.class_names) == n_classes
    n = len(src.train_x) + len(src.test_x)
    assert len(src.test_x) == pytest.approx(0.2 * n, abs=1)
    if task == "regression":
        assert src.train_y.dtype == np.float32 and src.train_y.ndim == 2
    else:  # stratified: each class keeps its share in the test split
        share = lambda y: np.bincount(y, minlength=n_classes) / len(y)
        np.testing.assert_allclose(share(src.test_y), share(src.train_y), atol=0.03)
    again = load(name)
    np.testing.assert_array_equal(src.test_x, again.test_x)  # the same test samples for every run


@pytest.mark.slow
def test_standardised_with_training_statistics_only():
    data = build_data(make_cfg("data=wine").data, CPU, 7)
    torch.testing.assert_close(data.train.x.mean(0), torch.zeros(13), atol=1e-5, rtol=0)
    torch.testing.assert_close(data.train.x.std(0), torch.ones(13), atol=1e-5, rtol=0)
    # without a validation split the training split is all of the source's training rows: the test rows
    # are scaled with exactly their statistics, never with their own
    data = build_data(make_cfg("data=wine", "data.val_fraction=0").data, CPU, 7)
    src = load("wine")
    train, test = torch.from_numpy(src.train_x), torch.from_numpy(src.test_x)
    torch.testing.assert_close(data.test.x, (test - train.mean(0)) / train.std(0), atol=1e-4, rtol=0)
    assert not torch.allclose(data.test.x.mean(0), torch.zeros(13), atol=1e-2)


def test_regression_targets_are_float_and_standardised():
    cfg = make_cfg("data=diabetes", "model=mlp")
    data = build_data(cfg.data, CPU, 0)
    assert data.info.task == "regression" and data.info.num_classes == 1
    assert data.train.y.dtype == torch.float32 and data.train.y.shape[1] == 1
    assert abs(data.train.y.mean().item()) < 1e-5 and data.train.y.std().item() == pytest.approx(1, abs=1e-5)
    src = load("diabetes")
    back = data.test.y * torch.tensor(data.info.target_std) + torch.tensor(data.info.target_mean)
    torch.testing.assert_close(back, torch.from_numpy(src.test_y), atol=1e-3, rtol=0)


def test_regression_metrics_are_mae_and_rmse_in_original_units():
    m = EpochMetrics(CPU, target_std=[10.0])
    out, y = torch.tensor([[0.0], [1.0], [-2.0]]), torch.tensor([[0.5], [0.0], [0.0]])
    m.update(torch.tensor(0.7), out, y)
    got = m.compute("val")
    err = np.array([-0.5, 1.0, -2.0]) * 10
    assert set(got) == {"val/loss", "val/mae", "val/rmse"}
    assert got["val/mae"] == pytest.approx(np.abs(err).mean()) and got["val/rmse"] == pytest.approx(np.sqrt((err**2).mean()))
    restored = EpochMetrics(CPU, target_std=[10.0])
    restored.load_state_dict(m.state_dict())
    assert restored.compute("val") == got


@pytest.mark.slow
def test_regression_defaults_to_monitoring_val_loss_and_rejects_accuracy(tmp_path):
    assert make_cfg("data=diabetes").monitor == "val/loss"
    assert make_cfg("data=iris").monitor == "val/acc"
    with pytest.raises(ConfigError, match="regression data has no accuracy"):
        build_loop(make_cfg("data=diabetes", "model=mlp", "monitor=val/acc"), tmp_path)


def _fit(tmp_path, *overrides):
    tmp_path.mkdir(exist_ok=True)
    cfg = make_cfg("model=mlp", "callbacks=none", "trainer.progress=none", "trainer.num_threads=1", *overrides)
    loop = build_loop(cfg, tmp_path)
    return loop, loop.fit()


@pytest.mark.slow
def test_diabetes_huber_beats_predicting_the_mean(tmp_path):
    loop, summary = _fit(tmp_path, "data=diabetes", "loss=huber")
    src = load("diabetes")
    baseline = float(np.sqrt(((src.test_y - src.train_y.mean()) ** 2).mean()))  # ~71.7
    assert summary["test"]["test/rmse"] < 0.95 * baseline, (summary["test"], baseline)
    row = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"train/mae", "train/rmse", "val/mae", "val/rmse"} <= set(row) and "val/acc" not in row
    assert summary["best"] and "val/loss" in summary["best"]


def test_breast_cancer_hinge_single_output_reaches_95_percent(tmp_path):
    loop, summary = _fit(tmp_path, "data=breast_cancer", "loss=hinge")
    assert loop.model[-1].out_features == 1  # one margin output for two classes
    assert summary["test"]["test/acc"] >= 0.95


@pytest.mark.slow
def test_iris_and_digits_train_with_other_losses(tmp_path):
    _, s = _fit(tmp_path / "iris", "data=iris", "loss=cce", "trainer.max_epochs=10")
    assert s["test"]["test/acc"] >= 0.8  # chance: 1/3
    _, s = _fit(tmp_path / "digits", "data=digits", "loss=bce", "loss.multi_label=true", "trainer.max_epochs=3")
    assert s["test"]["test/acc"] >= 0.85  # chance: 1/10
