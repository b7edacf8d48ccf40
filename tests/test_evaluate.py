"""task=eval: a checkpoint scored again gives the training run's own test numbers, plus a per-class report."""

import csv
import json
from fractions import Fraction as F

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY, make_cfg, read_summary, register_source, run_dlrun, write_fashion_mnist
from dlrun.data.source import Source
from dlrun.errors import CheckpointError, ConfigError, DataError
from dlrun.training.evaluate import classification_report, r2, run_eval, run_predict, topk_accuracy
from dlrun.results.plots import confusion_matrix
from dlrun.run_folder.records import read_jsonl
from dlrun.training.tasks import train

FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished tiny Fashion-MNIST run (an MLP, not the default LeNet) trained in-process."""
    root = tmp_path_factory.mktemp("data")
    write_fashion_mnist(root / "FashionMNIST" / "raw", n_train=300, n_test=100, learnable=True)
    run_dir = tmp_path_factory.mktemp("train")
    cfg = make_cfg("data=fashion_mnist", f"data.root={root}", "data.batch_size=32", "model=mlp", "model.hidden=[32]",
                   "trainer.max_epochs=3", "trainer.progress=none", "optimizer.lr=0.01")
    train(cfg, run_dir)
    return run_dir


def eval_cfg(ckpt, *more):
    # deliberately no model=/data= overrides: they come from the checkpoint (the defaults would be LeNet)
    return make_cfg("task=eval", f"ckpt_path={ckpt}", "trainer.progress=none", *more)


@pytest.mark.slow
def test_eval_reproduces_the_logged_test_metrics(trained, tmp_path):
    ckpt = trained / "checkpoints" / "last.pt"
    summary = read_summary(trained)
    assert torch.load(ckpt, weights_only=True)["epoch"] == summary["epochs"] == 3  # last.pt holds the final weights
    run_eval(eval_cfg(ckpt), tmp_path)
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["split"] == "test" and result["samples"] == 100 and result["epoch"] == 3
    for key in ("test/loss", "test/acc"):
        assert result["metrics"][key] == pytest.approx(summary["test"][key], abs=1e-6)
    assert summary["test"]["test/acc"] > 0.3  # it did learn: the numbers compared are not all-chance noise
    # the report is consistent with the confusion matrix it comes with
    cm = np.array(result["confusion_matrix"])
    assert result["class_names"] == FASHION and list(result["per_class"]) == FASHION
    assert cm.sum() == 100 and np.trace(cm) / 100 == pytest.approx(result["metrics"]["test/acc"])
    for i, name in enumerate(FASHION):
        assert result["per_class"][name]["support"] == cm[i].sum()
        if cm[i].sum():
            assert result["per_class"][name]["recall"] == pytest.approx(cm[i, i] / cm[i].sum())
    # weighted recall is accuracy, by definition
    assert result["averages"]["weighted"]["recall"] == pytest.approx(result["metrics"]["test/acc"])
    assert 0 <= result["metrics"]["test/top5_acc"] <= 1
    assert result["metrics"]["test/top5_acc"] >= result["metrics"]["test/acc"]
    assert (tmp_path / "confusion_matrix.png").stat().st_size > 1000


@pytest.mark.subprocess
def test_eval_command_on_the_val_split_matches_the_last_epoch_and_logs_the_picture(trained, tmp_path):
    run_dir = tmp_path / "eval"
    proc = run_dlrun("task=eval", f"ckpt_path={trained / 'checkpoints' / 'last.pt'}", "eval.split=val", "eval.topk=3",
                     "trainer.progress=none", f"hydra.run.dir={run_dir}")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "macro avg" in out and "weighted avg" in out and "T-shirt/top" in out
    assert str(trained / "checkpoints" / "last.pt") in proc.stdout.splitlines()  # whole, on its own line
    assert "macro avg" in (run_dir / "dlrun.log").read_text()  # the log holds what the terminal showed
    result = json.loads((run_dir / "eval.json").read_text())
    last_epoch = read_jsonl(trained / "metrics.jsonl")[-1]
    for key in ("val/loss", "val/acc"):  # the validation of the last epoch ran on these very weights
        assert result["metrics"][key] == pytest.approx(last_epoch[key], abs=1e-6)
    assert "val/top3_acc" in result["metrics"]
    assert (run_dir / "confusion_matrix.png").is_file()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir))
    events.Reload()
    assert "eval/confusion_matrix" in events.Tags()["images"]
    assert events.Images("eval/confusion_matrix")[0].width > 100


@pytest.mark.slow
def test_eval_of_the_train_split(trained, tmp_path):
    run_eval(eval_cfg(trained / "checkpoints" / "last.pt", "eval.split=train", "eval.topk=2"), tmp_path)
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["samples"] == 270  # 300 minus the seeded 10% validation split
    assert sum(r["support"] for r in result["per_class"].values()) == 270
    assert set(result["metrics"]) == {"train/loss", "train/acc", "train/top2_acc"}


def test_per_class_numbers_equal_a_hand_computation():
    # rows: true class, columns: predicted class; class 3 is never predicted
    cm = np.array([[5, 1, 0, 0],
                   [2, 3, 1, 0],
                   [0, 0, 4, 0],
                   [1, 1, 0, 0]])
    target = np.repeat(np.arange(4), cm.sum(axis=1))
    pred = np.concatenate([np.repeat(np.arange(4), row) for row in cm])
    assert np.array_equal(confusion_matrix(pred, target, 4), cm)
    report = classification_report(target, pred, ["a", "b", "c", "d"])
    # by hand: precision = tp / column sum, recall = tp / row sum, f1 = 2tp / (2tp + fp + fn)
    expected = {"a": (F(5, 8), F(5, 6), F(10, 14), 6),
                "b": (F(3, 5), F(3, 6), F(6, 11), 6),
                "c": (F(4, 5), F(4, 4), F(8, 9), 4),
                "d": (F(0), F(0), F(0), 2)}  # 0/0 precision reported as 0
    for name, (p, r, f1, support) in expected.items():
        got = report["per_class"][name]
        assert got["precision"] == pytest.approx(float(p)) and got["recall"] == pytest.approx(float(r))
        assert got["f1"] == pytest.approx(float(f1)) and got["support"] == support
    macro, weighted = report["averages"]["macro"], report["averages"]["weighted"]
    assert macro["precision"] == pytest.approx(float((F(5, 8) + F(3, 5) + F(4, 5)) / 4))
    assert macro["f1"] == pytest.approx(float((F(10, 14) + F(6, 11) + F(8, 9)) / 4))
    assert weighted["precision"] == pytest.approx(float((6 * F(5, 8) + 6 * F(3, 5) + 4 * F(4, 5)) / 18))
    assert weighted["recall"] == pytest.approx(12 / 18)  # = accuracy
    assert weighted["support"] == macro["support"] == 18


def test_topk_accuracy_by_hand():
    scores = torch.tensor([[0.1, 0.5, 0.4],   # true 2: ranked 2nd
                           [0.7, 0.2, 0.1],   # true 0: ranked 1st
                           [0.2, 0.3, 0.5],   # true 0: ranked 3rd
                           [0.5, 0.4, 0.1]])  # true 2: ranked 3rd
    target = torch.tensor([2, 0, 0, 2])
    assert topk_accuracy(scores, target, 1) == 0.25
    assert topk_accuracy(scores, target, 2) == 0.5
    assert topk_accuracy(scores, target, 3) == 1.0


def test_r2_by_hand():
    # errors 0, 0, 0, 1: SS_res = 1; mean 2.5, SS_tot = 2.25+0.25+0.25+2.25 = 5 -> R² = 1 - 1/5
    assert r2(np.array([1.0, 2.0, 3.0, 4.0]), np.array([[1.0], [2.0], [3.0], [5.0]])) == pytest.approx(0.8)
    assert r2(np.array([1.0, 2.0, 3.0, 4.0]), np.full(4, 2.5)) == pytest.approx(0.0)  # the mean scores 0


def from_config(cfg, seed):
    """A toy regression source (y = 5 * mean of 4 features + 3: std 2.5), registered as data.name=toy_regression."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(320, 4)).astype(np.float32)
    y = (5 * x.mean(axis=1, keepdims=True) + 3).astype(np.float32)
    return Source(x[:256], y[:256], x[256:], y[256:], [], task="regression")


@pytest.mark.slow
def test_eval_of_a_regression_run_gives_mae_rmse_r2(tmp_path, monkeypatch):
    register_source(monkeypatch, "toy_regression", from_config)
    cfg = make_cfg("data=synthetic", "data.name=toy_regression", "model=mlp", "model.hidden=[16]",
                   "loss=mse", "monitor=val/loss",
                   "trainer.max_epochs=8", "trainer.progress=none", "optimizer.lr=0.01")
    train(cfg, tmp_path / "train")
    summary = read_summary(tmp_path / "train")
    run_eval(eval_cfg(tmp_path / "train" / "checkpoints" / "last.pt"), tmp_path)
    metrics = json.loads((tmp_path / "eval.json").read_text())["metrics"]
    assert set(metrics) == {"test/loss", "test/mae", "test/rmse", "test/r2"}
    for key in ("test/loss", "test/mae", "test/rmse"):  # the training run's own test figures
        assert metrics[key] == pytest.approx(summary["test"][key], abs=1e-6)
    # the MSE loss saw standardised targets; RMSE is in the targets' units: RMSE² = loss · target_std²
    target_std = torch.load(tmp_path / "train" / "checkpoints" / "last.pt", weights_only=True)["data_info"]["target_std"]
    assert target_std[0] == pytest.approx(2.5, abs=0.5)
    assert metrics["test/rmse"] ** 2 == pytest.approx(metrics["test/loss"] * target_std[0] ** 2, rel=1e-5)
    assert metrics["test/r2"] > 0.5
    assert not (tmp_path / "confusion_matrix.png").exists()

    # predict on the raw test features gives values in the targets' units: the same MAE against the truth
    src = from_config(None, 42)
    np.save(tmp_path / "x.npy", src.test_x)
    ckpt = tmp_path / "train" / "checkpoints" / "last.pt"
    run_predict(make_cfg("task=predict", f"ckpt_path={ckpt}", f"predict.inputs={tmp_path / 'x.npy'}"), tmp_path)
    with open(tmp_path / "predictions.csv") as f:
        predicted = np.array([float(row["output_0"]) for row in csv.DictReader(f)])
    truth = src.test_y[:, 0]
    assert np.abs(predicted - truth).mean() == pytest.approx(metrics["test/mae"], rel=1e-4)
    r2_by_hand = 1 - ((predicted - truth) ** 2).sum() / ((truth - truth.mean()) ** 2).sum()
    assert r2_by_hand == pytest.approx(metrics["test/r2"], abs=1e-4)
    # and a feature-vector model refuses image files with a clear message
    Image.new("L", (4, 4)).save(tmp_path / "a.png")
    with pytest.raises(DataError, match=r"takes inputs of shape \[4\], not 1- or 3-channel images"):
        run_predict(make_cfg("task=predict", f"ckpt_path={ckpt}", f"predict.inputs={tmp_path / 'a.png'}"), tmp_path)


@pytest.mark.slow
def test_single_output_binary_classifier(tmp_path):
    """loss=bce gives the model one output (its width comes from the loss): eval and predict rebuild it so."""
    from dlrun.data import synthetic

    train(make_cfg(*TINY, "data.num_classes=2", "loss=bce", "model=mlp", "model.hidden=[16]"), tmp_path / "train")
    ckpt = tmp_path / "train" / "checkpoints" / "last.pt"
    weights = [v for k, v in torch.load(ckpt, weights_only=True)["model"].items() if k.endswith("weight")]
    assert weights[-1].shape[0] == 1  # one output unit
    summary = read_summary(tmp_path / "train")
    run_eval(eval_cfg(ckpt), tmp_path)
    result = json.loads((tmp_path / "eval.json").read_text())
    for key in ("test/loss", "test/acc"):
        assert result["metrics"][key] == pytest.approx(summary["test"][key], abs=1e-6)
    assert np.array(result["confusion_matrix"]).shape == (2, 2) and len(result["per_class"]) == 2
    src = synthetic.load((1, 16, 16), 2, 256, 0.5, 42)  # the run's data: TINY's shape and size, seed 42
    np.save(tmp_path / "x.npy", src.test_x)
    run_predict(make_cfg("task=predict", f"ckpt_path={ckpt}", f"predict.inputs={tmp_path / 'x.npy'}"), tmp_path)
    with open(tmp_path / "predictions.csv") as f:
        top1 = [row["top1"] for row in csv.DictReader(f)]
    accuracy = np.mean([t == src.class_names[y] for t, y in zip(top1, src.test_y)])
    assert accuracy == pytest.approx(result["metrics"]["test/acc"])


# -- errors ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_checkpoint_without_stored_config(trained, tmp_path):
    state = torch.load(trained / "checkpoints" / "last.pt", weights_only=True)
    bare = tmp_path / "bare.pt"
    torch.save({"model": state["model"]}, bare)
    with pytest.raises(CheckpointError, match="holds no stored config"):
        run_eval(eval_cfg(bare), tmp_path)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        run_eval(eval_cfg(tmp_path / "nope.pt"), tmp_path)


@pytest.mark.slow
def test_val_split_of_a_run_without_one(trained, tmp_path):
    state = torch.load(trained / "checkpoints" / "last.pt", weights_only=True)
    state["config"]["data"]["val_fraction"] = 0.0  # as if trained with data.val_fraction=0
    torch.save(state, tmp_path / "no_val.pt")
    with pytest.raises(ConfigError, match="eval.split=val.*no validation split"):
        run_eval(eval_cfg(tmp_path / "no_val.pt", "eval.split=val"), tmp_path)


@pytest.mark.parametrize("override, message", [("eval.split=holdout", "eval.split=holdout"),
                                               ("eval.topk=0", "eval.topk=0")])
def test_bad_eval_options(override, message):
    from dlrun.training.validate import validate

    with pytest.raises(ConfigError, match=message):
        validate(eval_cfg("x.pt", override))
