"""Exact resume: a run killed mid-epoch (SIGKILL) or stopped by SIGTERM, then continued, ends with exactly
the weights and metrics of an uninterrupted run with the same seed; TensorBoard shows one curve."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import TINY, last_weights, make_cfg, read_summary
from dlrun.run_folder.records import read_jsonl
from dlrun.training.tasks import build_loop, train

TESTS = Path(__file__).parent
# 4 epochs of 15 batches; dropout makes the random stream matter; one thread so every process adds up alike
RUN = [*TINY, "trainer.max_epochs=4", "data.batch_size=16", "model.dropout=0.3", "trainer.deterministic=true",
       "trainer.num_threads=1"]
TIMING = ("time_s", "samples_per_s")


def start(run_dir: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "PYTHONUNBUFFERED": "1"}
    env.pop("DLRUN_DEBUG", None)
    return subprocess.Popen([sys.executable, "-m", "dlrun", *RUN, f"hydra.run.dir={run_dir}", *extra], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def paused(progress: Path, epochs_done: int, batch: int) -> list[str]:
    return ["+callbacks.pause._target_=user_callbacks.PauseAt", f"+callbacks.pause.epochs_done={epochs_done}",
            f"+callbacks.pause.batch={batch}", f"+callbacks.pause.progress={progress}"]


def wait_for(proc: subprocess.Popen, progress: Path, timeout: float = 240) -> None:
    """Block until the run holds still at its pause point (see user_callbacks.PauseAt)."""
    deadline = time.monotonic() + timeout
    while not progress.exists():
        assert proc.poll() is None, f"the run ended before the pause point:\n{proc.stdout.read()}"
        assert time.monotonic() < deadline, "the run never reached its pause point"
        time.sleep(0.02)


def assert_same_run(run_dir: Path, reference: Path) -> None:
    got, want = last_weights(run_dir), last_weights(reference)
    assert got.keys() == want.keys()
    for name in want:
        assert torch.equal(got[name], want[name]), name
    strip = lambda rows: [{k: v for k, v in r.items() if k not in TIMING} for r in rows]
    assert strip(read_jsonl(run_dir / "metrics.jsonl")) == strip(read_jsonl(reference / "metrics.jsonl"))
    assert read_summary(run_dir)["test"] == read_summary(reference)["test"]
    assert read_summary(run_dir)["status"] == "completed"


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The uninterrupted run (in-process: same config, same single thread as the subprocesses)."""
    run_dir = tmp_path_factory.mktemp("reference")
    summary = build_loop(make_cfg(*RUN), run_dir).fit()
    assert summary["status"] == "completed" and summary["epochs"] == 4
    return run_dir


@pytest.mark.subprocess
def test_sigkill_mid_epoch_then_resume_equals_the_uninterrupted_run(tmp_path, reference):
    run_dir, progress = tmp_path / "run", tmp_path / "progress"
    proc = start(run_dir, *paused(progress, epochs_done=2, batch=6))
    wait_for(proc, progress)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert not (run_dir / "summary.json").exists()  # no chance to write anything: a real crash
    assert torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 2

    resumed = start(run_dir, "trainer.resume=true")
    out, _ = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, out
    assert "resumed from" in out
    assert_same_run(run_dir, reference)

    # TensorBoard: one continuous curve, each epoch once (the killed run's epochs 1-2 and the resumed 3-4)
    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2, 3, 4]
    assert [e.value for e in acc.Scalars("val/loss")] == pytest.approx(
        [r["val/loss"] for r in read_jsonl(reference / "metrics.jsonl")])


def stopped_mid_epoch(tmp_path: Path, sig: int) -> tuple[Path, Path, str]:
    """(run folder, pause file, output) of a run stopped by `sig` at batch 4 of epoch 2 (exit code 130)."""
    run_dir, progress = tmp_path / "run", tmp_path / "progress"
    proc = start(run_dir, *paused(progress, epochs_done=1, batch=4))
    wait_for(proc, progress)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    return run_dir, progress, out


@pytest.mark.subprocess
def test_sigterm_stops_gracefully_and_resumes_exactly_from_mid_epoch(tmp_path, reference):
    run_dir, progress, out = stopped_mid_epoch(tmp_path, signal.SIGTERM)
    summary = read_summary(run_dir)
    assert summary["status"] == "interrupted" and summary["epochs"] == 1 and summary["test"] == {}
    assert "trainer.resume=true" in out  # tells the user how to continue
    last = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert last["epoch"] == 1 and last["batch_in_epoch"] == 4  # mid-epoch, where it stopped

    # continue it in-process (from Python the whole config is compared with the run's: the same overrides)
    train(make_cfg(*RUN, *paused(progress, epochs_done=1, batch=4), "trainer.resume=true"), run_dir)
    assert_same_run(run_dir, reference)
    assert json.loads((run_dir / "summary.json").read_text())["epochs"] == 4


@pytest.mark.slow
def test_ckpt_path_continues_in_a_new_folder_with_the_history(tmp_path):
    first = tmp_path / "first"
    first.mkdir()
    short = [*TINY, "trainer.num_threads=1"]
    build_loop(make_cfg(*short), first).fit()  # 2 epochs
    second = tmp_path / "second"
    second.mkdir()
    train(make_cfg(*short, "trainer.max_epochs=3", f"ckpt_path={first / 'checkpoints' / 'last.pt'}"), second)

    rows = read_jsonl(second / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert rows[:2] == read_jsonl(first / "metrics.jsonl")  # the first two epochs, carried over
    acc = EventAccumulator(str(second))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2, 3]
    assert read_summary(second)["epochs"] == 3 and read_summary(second)["status"] == "completed"


def test_ctrl_c_finishes_the_batch_and_saves_where_it_stands(tmp_path):
    from dlrun.callbacks.base import Callback

    class CtrlC(Callback):
        def on_batch_end(self, loop, batch_index, loss):
            if loop.epoch == 1 and batch_index == 2:
                os.kill(os.getpid(), signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)
    loop = build_loop(make_cfg(*TINY, "data.batch_size=16", "trainer.num_threads=1"), tmp_path)
    loop.callbacks = {"ctrl_c": CtrlC(), **loop.callbacks}
    summary = loop.fit()
    assert summary["status"] == "interrupted" and summary["epochs"] == 1 and summary["test"] == {}
    last = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert (last["epoch"], last["batch_in_epoch"]) == (1, 3)
    assert read_summary(tmp_path)["status"] == "interrupted"
    assert signal.getsignal(signal.SIGINT) is before  # the loop's handler is gone again


@pytest.mark.slow
def test_an_interrupt_between_accumulated_batches_waits_for_the_optimizer_step(tmp_path):
    """Gradients summed over accumulate_grad_batches are not checkpointed: stop only after the step."""
    from dlrun.run_folder import checkpoint
    from dlrun.callbacks.base import Callback

    class CtrlC(Callback):
        def on_batch_end(self, loop, batch_index, loss):
            if loop.epoch == 0 and batch_index == 2:  # the first half of the second pair
                os.kill(os.getpid(), signal.SIGINT)

    run = [*TINY, "data.batch_size=16", "trainer.num_threads=1", "trainer.accumulate_grad_batches=2",
           "trainer.deterministic=true", "callbacks=model_checkpoint"]
    (tmp_path / "ref").mkdir()
    reference = build_loop(make_cfg(*run), tmp_path / "ref")
    reference.fit()

    (tmp_path / "run").mkdir()
    loop = build_loop(make_cfg(*run), tmp_path / "run")
    loop.callbacks = {"ctrl_c": CtrlC(), **loop.callbacks}
    assert loop.fit()["status"] == "interrupted"
    path = tmp_path / "run" / "checkpoints" / "last.pt"
    state = checkpoint.load(path)
    assert (state["epoch"], state["batch_in_epoch"], state["step"]) == (0, 4, 2)

    resumed = build_loop(make_cfg(*run), tmp_path / "run")
    checkpoint.restore(resumed, state, path)
    resumed.fit()
    for (name, a), b in zip(reference.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name


@pytest.mark.subprocess
def test_the_command_printed_after_ctrl_c_continues_the_same_run(tmp_path, reference):
    """Pasted as printed (without the run's overrides), the hint continues the run's own config exactly."""
    import re
    import shlex

    run_dir, _, out = stopped_mid_epoch(tmp_path, signal.SIGINT)
    hint = re.search(r"continue with:\n\s*(dlrun .+)$", out, re.MULTILINE).group(1)
    program, *args = shlex.split(hint)
    assert program == "dlrun" and args == ["trainer.resume=true", f"hydra.run.dir={run_dir}"]

    env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}  # user_callbacks
    resumed = subprocess.run([sys.executable, "-m", "dlrun", *args], env=env, capture_output=True, text=True,
                             timeout=240)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert_same_run(run_dir, reference)  # its 4 epochs, its data, its schedule: not the defaults'
    assert [r["from_epoch"] for r in read_jsonl(run_dir / "resumes.jsonl")] == [1]
