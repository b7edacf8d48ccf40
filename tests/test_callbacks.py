"""The callback interface: hook order, stop requests, errors, a user's own class from config, progress modes."""

import json
import logging
import os
from pathlib import Path

import pytest

from conftest import read_summary, run_dlrun
from dlrun.callbacks.base import Callback, build_callbacks
from dlrun.callbacks.model_checkpoint import ModelCheckpoint
from dlrun.callbacks.progress import PlainProgress, RichProgress, make_progress
from dlrun.errors import ConfigError
from dlrun.training.tasks import build_loop

TESTS = Path(__file__).parent


class Trace(Callback):
    def __init__(self, calls):
        self.calls = calls

    def __getattribute__(self, name):
        if name.startswith("on_"):
            object.__getattribute__(self, "calls").append(name)
        return object.__getattribute__(self, name)


@pytest.mark.slow
def test_hooks_are_called_in_order(tiny_cfg, tmp_path):
    calls = []
    loop = build_loop(tiny_cfg("trainer.num_threads=1", "callbacks=none", "trainer.max_epochs=2", "trainer.limit_train_batches=2"), tmp_path)
    loop.callbacks["trace"] = Trace(calls)
    loop.fit()
    epoch = ["on_epoch_start", "on_before_optimizer_step", "on_batch_end", "on_before_optimizer_step", "on_batch_end",
             "on_epoch_end"]
    assert calls == ["on_fit_start", *epoch, *epoch, "on_train_end", "on_fit_end"]


def test_gradient_accumulation_calls_the_optimizer_hook_per_step(tiny_cfg, tmp_path):
    calls = []
    loop = build_loop(tiny_cfg("trainer.num_threads=1", "callbacks=none", "trainer.max_epochs=1", "trainer.accumulate_grad_batches=2",
                               "data.batch_size=32"), tmp_path)
    loop.callbacks["trace"] = Trace(calls)
    loop.fit()
    n = len(loop.data.train)
    assert n >= 5 and calls.count("on_batch_end") == n
    assert calls.count("on_before_optimizer_step") == (n + 1) // 2 == loop.step  # a step per 2 batches, and the last


def test_a_callback_can_stop_the_run(tiny_cfg, tmp_path):
    class StopAfterOne(Callback):
        def on_epoch_end(self, loop, metrics):
            loop.request_stop()

    loop = build_loop(tiny_cfg("trainer.num_threads=1", "callbacks=none", "trainer.max_epochs=5"), tmp_path)
    loop.callbacks["stop"] = StopAfterOne()
    summary = loop.fit()
    assert summary["status"] == "stopped_early" and summary["stopped_epoch"] == 1 and summary["test"]


def test_on_exception_sees_the_failure(tiny_cfg, tmp_path):
    from dlrun.training.loop import NonFiniteLossError

    seen = []

    class Watch(Callback):
        def on_exception(self, loop, error):
            seen.append(type(error).__name__)

    loop = build_loop(tiny_cfg("trainer.num_threads=1", "callbacks=none", "optimizer=sgd", "optimizer.lr=1e30", "model=mlp"), tmp_path)
    loop.callbacks["watch"] = Watch()
    with pytest.raises(NonFiniteLossError):
        loop.fit()
    assert seen == ["NonFiniteLossError"]


def test_progress_runs_first_and_checkpoints_last(tiny_cfg, tmp_path):
    cfg = tiny_cfg("trainer.num_threads=1", "callbacks=[model_checkpoint,tensorboard,early_stopping]",
                   "+callbacks.mine._target_=dlrun.callbacks.Callback", "trainer.progress=plain")
    assert list(build_callbacks(cfg.callbacks)) == ["model_checkpoint", "tensorboard", "early_stopping", "mine"]
    loop = build_loop(cfg, tmp_path)
    assert list(loop.callbacks) == ["progress", "tensorboard", "early_stopping", "mine", "model_checkpoint"]
    assert isinstance(loop.callbacks["model_checkpoint"], ModelCheckpoint)


@pytest.mark.slow
def test_bad_callback_configs_are_one_line_config_errors(tiny_cfg):
    with pytest.raises(ConfigError, match="must be a dlrun.callbacks.Callback subclass"):
        build_callbacks(tiny_cfg("+callbacks.mine._target_=collections.OrderedDict").callbacks)
    with pytest.raises(ConfigError, match="callbacks.mine=no.such.Thing .*could not be built"):
        build_callbacks(tiny_cfg("+callbacks.mine._target_=no.such.Thing").callbacks)
    with pytest.raises(ConfigError, match="callbacks.model_checkpoint.save_top_k"):
        build_callbacks(tiny_cfg("callbacks.model_checkpoint.save_top_k=-3").callbacks)
    # settings left for a callback that callbacks=none removed (a preset's tensorboard settings, a typo'd name)
    with pytest.raises(ConfigError, match="callbacks.tensorboard.*not on.*~callbacks.tensorboard"):
        build_callbacks(tiny_cfg("callbacks=none", "+callbacks.tensorboard.images_every_n_epochs=0").callbacks)


@pytest.mark.subprocess
def test_a_user_callback_from_its_own_module_is_loaded_from_config_and_called(tmp_path):
    record = tmp_path / "calls.jsonl"
    run_dir = tmp_path / "run"
    env = {"PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = run_dlrun("trainer=smoke", "trainer.num_threads=1", f"hydra.run.dir={run_dir}",
                     "+callbacks.mine._target_=user_callbacks.Recorder", f"+callbacks.mine.path={record}", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    calls = [json.loads(line) for line in record.read_text().splitlines()]
    assert [c["hook"] for c in calls] == ["on_fit_start", "on_epoch_end", "on_epoch_end", "on_train_end", "on_fit_end"]
    # it saw the same numbers the run recorded
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [c["val_acc"] for c in calls if c["hook"] == "on_epoch_end"] == [r["val/acc"] for r in rows]
    assert calls[-1]["status"] == read_summary(run_dir)["status"] == "completed"


def test_progress_modes(tiny_cfg, tmp_path, caplog):
    assert make_progress("none") is None
    assert type(make_progress("plain")) is PlainProgress
    assert type(make_progress("rich")) is RichProgress
    assert type(make_progress("auto")) is PlainProgress  # pytest's stdout is not a terminal

    loop = build_loop(tiny_cfg("trainer.num_threads=1", "callbacks=none", "trainer.progress=plain"), tmp_path)
    with caplog.at_level(logging.INFO, logger="dlrun"):
        loop.fit()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert len(lines) == 2 and lines[1].startswith("epoch 2/2 train/loss=") and "samples/s" in lines[1]


@pytest.mark.slow
def test_rich_progress_survives_a_mid_epoch_resume(tiny_cfg, tmp_path):
    loop = build_loop(tiny_cfg("trainer.num_threads=1", "callbacks=none", "trainer.progress=rich", "data.batch_size=8"), tmp_path)
    loop.batch_in_epoch = 3  # as restored from a checkpoint written mid-epoch
    summary = loop.fit()
    assert summary["status"] == "completed"


def test_rich_progress_draws_from_the_training_thread_twice_a_second(tiny_cfg, tmp_path, monkeypatch):
    """No rich refresh thread competing with training for the GIL; redraws (and loss reads) at most every
    0.5 s of the training thread's clock, plus one per epoch start."""
    import threading

    import torch

    import dlrun.callbacks.progress as progress

    loop = build_loop(tiny_cfg("trainer.num_threads=1", "callbacks=none", "trainer.progress=rich",
                               "data.batch_size=8"), tmp_path)
    bar = loop.callbacks["progress"]
    before = threading.active_count()
    bar.on_fit_start(loop)
    assert threading.active_count() == before  # rich's auto-refresh thread would be one more
    bar.on_epoch_start(loop)
    draws = []
    monkeypatch.setattr(bar.progress, "refresh", lambda: draws.append(bar.progress.tasks[-1].completed))
    clock = iter([10.0, 10.1, 10.2, 10.6, 10.7, 11.2])  # one time.monotonic() per batch
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    for i in range(6):
        bar.on_batch_end(loop, i, torch.tensor(0.5))
    assert draws == [1, 4, 6]  # at 10.0, 10.6 and 11.2: batches 0, 3 and 5 done
    bar.on_fit_end(loop, {})
