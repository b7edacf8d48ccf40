"""ModelCheckpoint (top-k, template, every_n_epochs) and dlrun.run_folder.checkpoint (contents, atomic write, safe load)."""

import subprocess
import sys

import pytest
import torch

from conftest import loop_with_metric
from dlrun.run_folder import checkpoint
from dlrun.callbacks.base import Callback
from dlrun.errors import CheckpointError, ConfigError
from dlrun.training.tasks import build_loop


def run_scripted(tiny_cfg, run_dir, values, *overrides, key="val/acc"):
    cfg = tiny_cfg(f"trainer.max_epochs={len(values)}", "callbacks=model_checkpoint", "model=mlp", "trainer.num_threads=1",
                   *overrides)
    loop, _ = loop_with_metric(cfg, run_dir, values, key)
    return loop, loop.fit()


def files(run_dir):
    return sorted(p.name for p in (run_dir / "checkpoints").iterdir())


def test_top_k_keeps_the_k_best_epochs(tiny_cfg, tmp_path):
    loop, summary = run_scripted(tiny_cfg, tmp_path, [0.5, 0.9, 0.7, 0.8, 0.6], "callbacks.model_checkpoint.save_top_k=2")
    assert files(tmp_path) == ["best.pt", "epoch=002-val_acc=0.9000.pt", "epoch=004-val_acc=0.8000.pt", "last.pt"]
    assert [e["epoch"] for e in summary["top_k"]] == [2, 4]
    assert torch.load(tmp_path / "checkpoints" / "epoch=004-val_acc=0.8000.pt", weights_only=True)["epoch"] == 4
    assert torch.load(tmp_path / "checkpoints" / "best.pt", weights_only=True)["epoch"] == 2
    assert torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 5


@pytest.mark.slow
def test_top_k_min_mode_custom_template_and_ties(tiny_cfg, tmp_path):
    run_scripted(tiny_cfg, tmp_path / "a", [1.0, 0.5, 0.5, 2.0], "monitor=val/loss", "callbacks.model_checkpoint.save_top_k=1",
                 "callbacks.model_checkpoint.filename='{epoch}-{val_loss:.2f}'", key="val/loss")
    assert files(tmp_path / "a") == ["2-0.50.pt", "best.pt", "last.pt"]  # the tie at epoch 3 keeps epoch 2

    run_scripted(tiny_cfg, tmp_path / "b", [0.1, 0.3, 0.2], "callbacks.model_checkpoint.save_top_k=-1")
    assert len([f for f in files(tmp_path / "b") if f.startswith("epoch=")]) == 3

    run_scripted(tiny_cfg, tmp_path / "c", [0.1, 0.3], "callbacks.model_checkpoint.save_top_k=0")
    assert files(tmp_path / "c") == ["best.pt", "last.pt"]


def test_a_bad_filename_template_names_the_fields(tiny_cfg, tmp_path):
    with pytest.raises(ConfigError, match=r"callbacks.model_checkpoint.filename.*\{val_acc\}"):
        run_scripted(tiny_cfg, tmp_path, [0.5], "callbacks.model_checkpoint.save_top_k=1",
                     "callbacks.model_checkpoint.filename='{epoch}-{val_accuracy}'")


def test_every_n_epochs_and_the_final_epoch(tiny_cfg, tmp_path, monkeypatch):
    saved = []
    real_save = checkpoint.save
    monkeypatch.setattr(checkpoint, "save", lambda state, path: (saved.append((path.name, state["epoch"])), real_save(state, path)))
    run_scripted(tiny_cfg, tmp_path, [0.1, 0.2, 0.3, 0.4, 0.5], "callbacks.model_checkpoint.every_n_epochs=2")
    assert [e for name, e in saved if name == "last.pt"] == [2, 4, 5]
    assert [e for name, e in saved if name == "best.pt"] == [2, 4, 5]


def test_a_checkpoint_holds_everything_and_loads_weights_only(tiny_cfg, tmp_path):
    loop, _ = run_scripted(tiny_cfg, tmp_path, [0.5, 0.6])
    state = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    for key in ("model", "optimizer", "scheduler", "scaler", "epoch", "step", "rng", "config", "callbacks"):
        assert key in state, key
    assert set(state["rng"]) == {"python", "numpy", "torch", "cuda"}
    assert state["epoch"] == 2 and state["step"] == loop.step > 0
    assert state["config"]["trainer"]["max_epochs"] == 2  # resolved, plain containers
    assert state["callbacks"]["model_checkpoint"]["best_value"] == 0.6
    assert all(torch.equal(v, loop.model.state_dict()[k]) for k, v in state["model"].items())


def test_a_crash_during_save_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    checkpoint.save({"model": {"w": torch.ones(3)}, "epoch": 1}, path)
    before = path.read_bytes()

    def crash(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(checkpoint.CheckpointSaveError, match="No space left on device.*previous checkpoint"):
        checkpoint.save({"model": {"w": torch.zeros(3)}, "epoch": 2}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # the temp file is gone
    assert checkpoint.load(path)["epoch"] == 1


@pytest.mark.subprocess
def test_a_process_killed_during_save_leaves_the_previous_file_intact(tmp_path):
    path = tmp_path / "last.pt"
    checkpoint.save({"model": {"w": torch.ones(3)}, "epoch": 1}, path)
    code = (
        "import os, torch\nfrom dlrun.run_folder import checkpoint\n"
        "def die(obj, f):\n    f.write(b'half'); f.flush(); os._exit(9)\n"
        "torch.save = die\n"
        f"checkpoint.save({{'model': {{}}, 'epoch': 2}}, {str(path)!r})\n"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 9
    assert checkpoint.load(path)["epoch"] == 1
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "last.pt"]
    assert all(n.startswith(".last.pt.") and n.endswith(".tmp") for n in leftovers)


def test_unreadable_checkpoints_are_one_line_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        checkpoint.load(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="truncated, corrupt"):
        checkpoint.load(tmp_path / "junk.pt")
    torch.save({"weights": torch.ones(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a dlrun checkpoint"):
        checkpoint.load(tmp_path / "other.pt")
    # pickled code is refused (weights_only), not executed
    torch.save({"model": {}, "evil": Callback()}, tmp_path / "code.pt")
    with pytest.raises(CheckpointError):
        checkpoint.load(tmp_path / "code.pt")


def test_an_early_stop_between_two_saves_still_saves_the_last_epoch(tiny_cfg, tmp_path, monkeypatch):
    saved = []
    real_save = checkpoint.save
    monkeypatch.setattr(checkpoint, "save", lambda state, path: (saved.append((path.name, state["epoch"])), real_save(state, path)))
    loop, summary = run_scripted(tiny_cfg, tmp_path, [0.5, 0.4, 0.4, 0.4, 0.9, 0.9], "callbacks=[model_checkpoint,early_stopping]",
                                 "callbacks.model_checkpoint.every_n_epochs=3", "callbacks.early_stopping.patience=3")
    assert summary["status"] == "stopped_early" and summary["stopped_epoch"] == 4
    assert [e for name, e in saved if name == "last.pt"] == [3, 4]
    assert torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 4


def test_a_mistyped_monitor_is_an_error_but_no_validation_split_only_skips_best(tiny_cfg, tmp_path):
    with pytest.raises(ConfigError, match=r"callbacks.model_checkpoint.monitor=val/accuracy .*val/acc"):
        run_scripted(tiny_cfg, tmp_path / "a", [0.5], "callbacks.model_checkpoint.monitor=val/accuracy")
    cfg = tiny_cfg("callbacks=model_checkpoint", "data.val_fraction=0", "trainer.max_epochs=1")
    (tmp_path / "b").mkdir()
    assert build_loop(cfg, tmp_path / "b").fit()["status"] == "completed"
    assert files(tmp_path / "b") == ["last.pt"]
