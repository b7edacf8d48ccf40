"""EarlyStopping: scripted metric sequences for every rule, then in a real loop (summary, restored weights)."""

import json
import math

import pytest
import torch

from conftest import loop_with_metric
from dlrun.run_folder import checkpoint
from dlrun.callbacks.early_stopping import EarlyStopping
from dlrun.errors import ConfigError
from dlrun.training.loop import score
from dlrun.training.tasks import build_loop


def stop_epoch(values, monitor="val/acc", **options):
    """Feed values as epochs 1, 2, ...; the epoch at which the callback asks to stop (None: never)."""
    es = EarlyStopping(monitor=monitor, **options)
    es.mode = es.mode or ("min" if "loss" in monitor else "max")
    for epoch, value in enumerate(values, start=1):
        if es.step(epoch, value) is not None:
            return epoch
    return None


def test_min_delta_is_strict():
    # 0.75 is exactly best + min_delta: not an improvement (Keras: value - min_delta > best)
    assert stop_epoch([0.5, 0.75], min_delta=0.25, patience=1) == 2
    assert stop_epoch([0.5, 0.7500001], min_delta=0.25, patience=1) is None
    # a loss must fall by more than min_delta
    assert stop_epoch([1.0, 0.9, 0.85], monitor="val/loss", min_delta=0.1, patience=1) == 2
    assert stop_epoch([1.0, 0.875, 0.75], monitor="val/loss", min_delta=0.1, patience=1) is None


def test_patience_counts_epochs_in_a_row_without_improvement():
    assert stop_epoch([1.0, 1.0, 1.0, 1.0], monitor="val/loss", patience=3) == 4
    # the improvement at epoch 4 resets the count: stop at the third plateau epoch after it
    assert stop_epoch([1.0, 1.1, 1.2, 0.9, 1.0, 1.0, 1.0], monitor="val/loss", patience=3) == 7
    assert stop_epoch([1.0, 1.1, 1.2, 0.9, 1.0, 1.0], monitor="val/loss", patience=3) is None


def test_patience_zero_stops_at_the_first_miss_but_never_while_improving():
    assert stop_epoch([0.1, 0.2, 0.3, 0.4], patience=0) is None
    assert stop_epoch([0.1, 0.2, 0.2], patience=0) == 3
    assert stop_epoch([0.1, 0.2, 0.2], patience=1) == 3


def test_mode_is_inferred_from_the_name():
    assert stop_epoch([0.5, 0.4], monitor="val/loss", patience=1) is None  # a falling loss improves
    assert stop_epoch([0.5, 0.4], monitor="val/acc", patience=1) == 2  # a falling accuracy does not
    assert stop_epoch([0.5, 0.4], monitor="val/acc", mode="min", patience=1) is None


def test_baseline_must_be_beaten_to_reset_patience():
    # improving every epoch, but never past the 0.8 baseline: stop after `patience` epochs
    assert stop_epoch([0.5, 0.6, 0.7], baseline=0.8, patience=2) == 2
    assert stop_epoch([0.5, 0.85, 0.84, 0.83], baseline=0.8, patience=2) == 4
    assert stop_epoch([0.5, 0.6, 0.7], patience=2) is None


def test_start_from_epoch_ignores_the_warm_up():
    assert stop_epoch([0.9, 0.1, 0.5, 0.4], patience=1) == 2
    assert stop_epoch([0.9, 0.1, 0.5, 0.4], patience=1, start_from_epoch=2) == 4
    assert stop_epoch([0.9, 0.1, 0.5, 0.6], patience=1, start_from_epoch=2) is None


def test_thresholds_stop_at_once():
    assert stop_epoch([0.5, 0.3, 0.1, 0.05], monitor="val/loss", patience=10, stopping_threshold=0.1) == 3
    assert stop_epoch([0.5, 0.93, 0.94], patience=10, stopping_threshold=0.95) is None
    assert stop_epoch([1.0, 6.0], monitor="val/loss", patience=10, divergence_threshold=5.0) == 2
    assert stop_epoch([0.5, 0.05], patience=10, divergence_threshold=0.1) == 2  # accuracy collapsed


def test_non_finite_value_stops_even_during_warm_up():
    assert stop_epoch([0.5, math.nan], monitor="val/loss", patience=10) == 2
    assert stop_epoch([math.inf], monitor="val/loss", patience=10, start_from_epoch=5) == 1
    assert stop_epoch([0.5, math.nan, 0.4], monitor="val/loss", patience=10, check_finite=False) is None


@pytest.mark.parametrize("bad", [{"patience": -1}, {"min_delta": -0.1}, {"mode": "up"}, {"start_from_epoch": -2}])
def test_bad_options_are_config_errors(bad):
    with pytest.raises(ConfigError, match="callbacks.early_stopping"):
        EarlyStopping(**bad)


# -- in the loop --------------------------------------------------------------------------------------
def scripted_loop(tiny_cfg, tmp_path, values, *overrides):
    cfg = tiny_cfg(f"trainer.max_epochs={len(values)}", "callbacks=[model_checkpoint,early_stopping]",
                   "callbacks.early_stopping.restore_best_weights=true", "trainer.num_threads=1", *overrides)
    return loop_with_metric(cfg, tmp_path, values)  # the script runs before early stopping


def same_weights(model, weights):
    return all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())


def test_stopping_early_is_in_the_summary_and_restores_the_best_epoch(tiny_cfg, tmp_path):
    loop, script = scripted_loop(tiny_cfg, tmp_path, [0.6, 0.9, 0.7, 0.8, 0.5, 0.5], "callbacks.early_stopping.patience=2")
    summary = loop.fit()
    assert summary["status"] == "stopped_early"
    assert summary["stopped_epoch"] == 4 and summary["epochs"] == 4
    assert summary["early_stopping"]["best_epoch"] == 2 and summary["early_stopping"]["restored_best_weights"]
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 4
    assert json.loads((tmp_path / "summary.json").read_text())["stopped_epoch"] == 4

    assert same_weights(loop.model, script.weights[2]) and not same_weights(loop.model, script.weights[4])
    # the test split was evaluated with the restored weights
    test = score(loop.model, loop.data.test, loop.loss_fn, loop.device, loop.amp_dtype, "test")
    assert summary["test"] == test
    # last.pt is the resume point: the weights of the last epoch trained, not the restored ones
    last = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert last["epoch"] == 4
    assert all(torch.equal(v, script.weights[4][k]) for k, v in last["model"].items())


def test_best_weights_are_restored_when_training_runs_to_the_end(tiny_cfg, tmp_path):
    loop, script = scripted_loop(tiny_cfg, tmp_path, [0.5, 0.9, 0.6], "callbacks.early_stopping.patience=5")
    summary = loop.fit()
    assert summary["status"] == "completed" and "stopped_epoch" not in summary
    assert summary["early_stopping"]["restored_best_weights"] and summary["early_stopping"]["best_epoch"] == 2
    assert same_weights(loop.model, script.weights[2])
    assert summary["test"] == score(loop.model, loop.data.test, loop.loss_fn, loop.device, loop.amp_dtype, "test")


@pytest.mark.slow
def test_a_missing_monitored_metric_is_a_config_error(tiny_cfg, tmp_path):
    loop = build_loop(tiny_cfg("callbacks=early_stopping", "data.val_fraction=0"), tmp_path / "a")
    with pytest.raises(ConfigError, match="no validation split"):
        loop.fit()
    (tmp_path / "b").mkdir()
    loop = build_loop(tiny_cfg("callbacks=early_stopping", "callbacks.early_stopping.monitor=val/top5"), tmp_path / "b")
    with pytest.raises(ConfigError, match="val/acc"):
        loop.fit()


@pytest.mark.slow
def test_the_counters_and_best_weights_resume_through_a_checkpoint(tiny_cfg, tmp_path):
    loop, script = scripted_loop(tiny_cfg, tmp_path / "a", [0.6, 0.9, 0.7], "callbacks.early_stopping.patience=5")
    loop.fit()
    path = tmp_path / "a" / "checkpoints" / "last.pt"
    state = checkpoint.load(path)  # weights_only
    # saved after early stopping had seen epoch 3 (checkpoints run last): one epoch without improvement
    saved = state["callbacks"]["early_stopping"]
    assert (saved["wait"], saved["best"], saved["best_epoch"]) == (1, 0.9, 2)
    assert all(torch.equal(v, script.weights[2][k].cpu()) for k, v in saved["best_weights"].items())

    fresh, _ = scripted_loop(tiny_cfg, tmp_path / "b", [0.6, 0.9, 0.7])
    checkpoint.restore(fresh, state, path)
    es = fresh.callbacks["early_stopping"]
    assert (es.wait, es.best, es.best_epoch) == (1, 0.9, 2) and es.best_weights is not None
