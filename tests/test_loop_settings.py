"""The loop takes the settings it needs, callbacks read them from the loop, and each split is evaluated once."""

import json
from types import SimpleNamespace

import pytest
import torch

from conftest import TINY, make_cfg
from dlrun.models.common import eval_mode
from dlrun.training.loop import Loop
from dlrun.training.tasks import build_loop, train

FAST = (*TINY, "trainer.num_threads=1")


def test_the_loop_and_its_progress_read_settings_not_the_config(tmp_path):
    loop = build_loop(make_cfg(*FAST, "callbacks=none", "trainer.progress=plain", "trainer.limit_train_batches=3",
                               "data.batch_size=16"), tmp_path)
    assert (loop.max_epochs, loop.batches_per_epoch, loop.gradient_scale) == (2, 3, 1.0)
    assert not hasattr(loop, "cfg")
    loop.run_config = None  # kept only to be recorded (checkpoints, hparams): training needs none of it
    summary = loop.fit()
    assert summary["status"] == "completed" and summary["epochs"] == 2
    assert [row["step"] for row in loop.history] == [3, 6]  # limit_train_batches through batches_per_epoch


class FakeScaler:
    def __init__(self, enabled):
        self.enabled = enabled

    def is_enabled(self):
        return self.enabled

    def get_scale(self):
        return 1024.0


@pytest.mark.parametrize("enabled, clip, scale", [(True, 0.0, 1024.0), (True, 1.0, 1.0), (False, 0.0, 1.0)])
def test_gradient_scale_is_the_amp_loss_scale_until_clipping_unscales(enabled, clip, scale):
    loop = SimpleNamespace(scaler=FakeScaler(enabled), settings=SimpleNamespace(gradient_clip_val=clip))
    assert Loop.gradient_scale.fget(loop) == scale


class CountingLoader:
    """A loader that counts the passes over it; everything else is the wrapped loader's."""

    def __init__(self, loader):
        self.loader, self.passes = loader, 0

    def __iter__(self):
        self.passes += 1
        return iter(self.loader)

    def __len__(self):
        return len(self.loader)

    def __getattr__(self, name):
        return getattr(self.loader, name)


def test_the_test_split_is_evaluated_once_and_the_confusion_matrix_uses_those_predictions(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    loop = build_loop(make_cfg(*FAST, "callbacks=[tensorboard]", "callbacks.tensorboard.images_every_n_epochs=0",
                               "callbacks.tensorboard.histograms_every_n_epochs=0"), tmp_path)
    loop.data.test = CountingLoader(loop.data.test)
    summary = loop.fit()
    assert loop.data.test.passes == 1
    cm = loop.test_confusion
    assert cm.sum() == len(loop.data.test.y) and cm.trace() / cm.sum() == pytest.approx(summary["test"]["test/acc"])
    events = EventAccumulator(str(tmp_path), size_guidance={"images": 0})
    events.Reload()
    assert "confusion_matrix/test" in events.Tags()["images"]


def test_eval_mode_then_the_mode_it_was_in_even_after_an_error():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5))
    with eval_mode(model):
        assert not model.training and not torch.is_grad_enabled()
    assert model.training and torch.is_grad_enabled()
    model.eval()
    with pytest.raises(RuntimeError), eval_mode(model):
        raise RuntimeError("inside")
    assert not model.training


@pytest.mark.slow
def test_task_eval_passes_over_the_split_once(tmp_path, monkeypatch):
    from dlrun.training import evaluate

    train(make_cfg(*FAST, "callbacks=[model_checkpoint]", "trainer.max_epochs=1"), tmp_path / "train")
    forwards = []
    restore = evaluate._restore_model

    def counted(*args):
        model, loss_fn = restore(*args)
        model.register_forward_hook(lambda *_: forwards.append(1))
        return model, loss_fn

    monkeypatch.setattr(evaluate, "_restore_model", counted)
    evaluate.run_eval(make_cfg("task=eval", f"ckpt_path={tmp_path / 'train' / 'checkpoints' / 'last.pt'}",
                               "trainer.progress=none", "trainer.num_threads=1"), tmp_path)
    result = json.loads((tmp_path / "eval.json").read_text())
    batches = -(-result["samples"] // make_cfg(*FAST).data.eval_batch_size)
    assert len(forwards) == batches and sum(map(sum, result["confusion_matrix"])) == result["samples"]
