"""Bad input never crashes, faults never lose a finished result (issue 10)."""

import ast
from pathlib import Path

import pytest
import torch

import dlrun
from conftest import TINY, one_error_line, read_summary, run_dlrun

TESTS = str(Path(__file__).parent)



@pytest.mark.subprocess
def test_unwritable_output_folder_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    proc = run_dlrun(*TINY, f"hydra.run.dir={blocker}/run")
    assert proc.returncode == 2
    assert "is a file, not a folder" in one_error_line(proc)
    proc = run_dlrun(*TINY, "hydra.run.dir=/proc/dlrun-run")
    assert proc.returncode == 2 and "not writable" in one_error_line(proc)


@pytest.mark.subprocess
@pytest.mark.parametrize("content", [b"", b"\x00\x01garbage" * 100, "truncate"])
def test_truncated_or_random_checkpoint_is_one_clear_error(tmp_path, content):
    good = tmp_path / "good"
    assert run_dlrun(*TINY, "trainer.max_epochs=1", f"hydra.run.dir={good}").returncode == 0
    bad = tmp_path / "bad.pt"
    last = (good / "checkpoints" / "last.pt").read_bytes()
    bad.write_bytes(last[: len(last) // 2] if content == "truncate" else content)
    proc = run_dlrun(*TINY, f"ckpt_path={bad}", f"hydra.run.dir={tmp_path}/resumed")
    assert proc.returncode == 2
    assert "cannot read checkpoint" in one_error_line(proc)


@pytest.mark.subprocess
def test_checkpoint_of_another_architecture_is_one_clear_error(tmp_path):
    good = tmp_path / "mlp"
    assert run_dlrun(*TINY, "model=mlp", "trainer.max_epochs=1", f"hydra.run.dir={good}").returncode == 0
    # continuing the run with another model is refused before any weights are read (tests/test_run_integrity.py)
    proc = run_dlrun(*TINY, "model=lenet", f"ckpt_path={good}/checkpoints/last.pt", f"hydra.run.dir={tmp_path}/x")
    assert proc.returncode == 2
    assert "model=lenet would change the run" in one_error_line(proc)
    # a checkpoint that carries no config of its own reaches the weights: they do not fit
    state = torch.load(good / "checkpoints" / "last.pt", weights_only=True)
    del state["config"]
    torch.save(state, tmp_path / "bare.pt")
    proc = run_dlrun(*TINY, "model=lenet", f"ckpt_path={tmp_path / 'bare.pt'}", f"hydra.run.dir={tmp_path}/y")
    assert proc.returncode == 2
    assert "does not fit this model" in one_error_line(proc)


@pytest.mark.subprocess
def test_nan_loss_stops_at_that_step_and_keeps_the_best_checkpoint(tmp_path):
    run = tmp_path / "run"
    steps_per_epoch = 4  # 256 samples, val 20% -> 205 train / batch 64
    proc = run_dlrun(*TINY, "trainer.max_epochs=5", "loss._target_=user_components.NaNAfter",
                     f"+loss.steps={2 * steps_per_epoch + 1}", f"hydra.run.dir={run}",
                     env={"PYTHONPATH": TESTS})
    assert proc.returncode == 1
    line = one_error_line(proc)
    assert f"at step {2 * steps_per_epoch + 2}" in line and "lower optimizer.lr" in line
    summary = read_summary(run)
    assert summary["status"] == "failed" and summary["epochs"] == 2
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    assert best["epoch"] in (1, 2)
    assert all(torch.isfinite(t).all() for t in best["model"].values())


def test_every_torch_load_in_dlrun_uses_weights_only():
    calls = []
    for path in Path(dlrun.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "load" and \
                    getattr(node.func.value, "id", None) == "torch":
                kw = {k.arg: k.value for k in node.keywords}
                calls.append((path.name, node.lineno, getattr(kw.get("weights_only"), "value", None)))
    assert calls, "expected at least the checkpoint loader"
    assert all(v is True for _, _, v in calls), calls


@pytest.mark.subprocess
def test_config_dumps_never_contain_environment_secrets(tmp_path):
    secret = "s3cr3t-value-42"
    run = tmp_path / "run"
    proc = run_dlrun(*TINY, "trainer.max_epochs=1", "+callbacks.keys._target_=user_components.KeyHolder",
                     "+callbacks.keys.api_key=${oc.env:DLRUN_TEST_SECRET}", f"hydra.run.dir={run}",
                     env={"DLRUN_TEST_SECRET": secret, "PYTHONPATH": TESTS})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for path in run.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["config"]["callbacks"]["keys"]["api_key"] == "<from environment>"


def test_disk_full_during_a_checkpoint_keeps_the_previous_one(tiny_cfg, tmp_path, monkeypatch, caplog):
    import errno
    import logging

    from dlrun.run_folder import checkpoint
    from dlrun.training.tasks import execute

    real_save, calls = torch.save, []

    def save_until_disk_full(obj, f, *a, **kw):
        calls.append(1)
        if len(calls) > 2:  # epoch 1 wrote best.pt and last.pt; then the disk is full
            f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *a, **kw)

    monkeypatch.setattr(checkpoint.torch, "save", save_until_disk_full)
    with caplog.at_level(logging.ERROR, logger="dlrun"):
        code, _ = execute(tiny_cfg("trainer.max_epochs=3", "model=mlp", "callbacks=default"), tmp_path)
    assert code == 1
    [line] = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert "No space left on device" in line and "previous checkpoint" in line
    last = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert last["epoch"] == 1  # the file from before the failure, whole
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.endswith(".tmp")]
    assert read_summary(tmp_path)["status"] == "failed"
