"""A run folder is one run: a resume continues the run's own config, nothing finished is overwritten,
typos are refused, Hydra's flags behave, and faults around a run leave it loadable."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import TINY, make_cfg, one_error_line, read_summary, run_dlrun
from dlrun.run_folder import checkpoint
from dlrun.callbacks.base import Callback
from dlrun.cli.main import UsageError, prepare_argv
from dlrun.training.validate import validate
from dlrun.errors import ConfigError
from dlrun.run_folder.records import read_jsonl
from dlrun.training.resume import ResumeChangeError
from dlrun.run_folder.run_lock import run_lock
from dlrun.training.tasks import build_loop, execute, train

RUN = [*TINY, "optimizer.lr=0.01", "trainer.num_threads=1"]
TIMING = ("time_s", "samples_per_s")


def snapshot(run: Path, names=("summary.json", ".hydra/config.yaml", ".hydra/overrides.yaml", "metrics.jsonl")):
    return {name: (run / name).read_bytes() for name in names}


# -- 1, 2: resume restores the run; nothing finished is overwritten ------------------------------------------
@pytest.mark.subprocess
def test_a_completed_run_resumed_with_the_defaults_keeps_its_config_and_its_result(tmp_path):
    run = tmp_path / "R"
    assert run_dlrun(*RUN, f"hydra.run.dir={run}").returncode == 0
    first = snapshot(run)

    # the command without the run's overrides: the run is finished, so nothing happens and nothing is written
    proc = run_dlrun("trainer.resume=true", f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "already completed after 2 epochs: nothing to do" in proc.stdout + proc.stderr
    assert snapshot(run) == first
    assert not (run / "resumes.jsonl").exists()

    # a change of what the run is: refused with one line naming the key, both values and the way out
    for override, new, old in (("optimizer.lr=0.5", "optimizer.lr=0.5", "optimizer.lr=0.01"),
                               ("data=digits", "data=digits", "data=synthetic"),
                               ("model=mlp", "model=mlp", "model=lenet")):
        proc = run_dlrun("trainer.resume=true", f"hydra.run.dir={run}", override)
        assert proc.returncode == 2
        line = one_error_line(proc)
        assert new in line and old in line and "model.pretrained=" in line, line
        assert snapshot(run) == first

    # more epochs: the same run goes on, its first summary kept, the resume recorded
    proc = run_dlrun("trainer.resume=true", f"hydra.run.dir={run}", "trainer.max_epochs=3")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (run / "summary.prev-1.json").read_bytes() == first["summary.json"]
    assert read_summary(run)["epochs"] == 3 and read_summary(run)["status"] == "completed"
    assert snapshot(run, (".hydra/config.yaml", ".hydra/overrides.yaml")) == {
        k: first[k] for k in (".hydra/config.yaml", ".hydra/overrides.yaml")}
    rows = read_jsonl(run / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert rows[:2] == [json.loads(line) for line in first["metrics.jsonl"].decode().splitlines()]
    [resumed] = read_jsonl(run / "resumes.jsonl")
    assert resumed["from_epoch"] == 2 and resumed["changed"] == {"trainer.max_epochs": [2, 3]}
    assert resumed["overrides"] == ["trainer.resume=true", "trainer.max_epochs=3"]


def test_from_python_a_resume_with_another_value_is_refused_naming_the_key(tmp_path):
    build_loop(make_cfg(*RUN), tmp_path).fit()  # no .hydra folder: the checkpoint's own config is the run's
    with pytest.raises(ResumeChangeError) as e:
        train(make_cfg(*RUN, "trainer.resume=true", "data.batch_size=7"), tmp_path)
    assert "data.batch_size=7" in str(e.value) and "data.batch_size=64" in str(e.value)
    summary = read_summary(tmp_path)
    train(make_cfg(*RUN, "trainer.resume=true"), tmp_path)  # the same config: nothing to do
    assert read_summary(tmp_path) == summary


# -- 3: throughput of a resumed epoch ----------------------------------------------------------------------
class _Clock:
    """time.perf_counter for the loop: each call one second later, so an epoch's training takes exactly 1 s."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        self.now += 1.0
        return self.now


class _StopAt(Callback):
    def __init__(self, epoch: int, batch: int):
        self.at = (epoch, batch)

    def on_batch_end(self, loop, batch_index, loss):
        if (loop.epoch, batch_index) == self.at:
            loop.request_stop("interrupted")


def test_samples_per_second_of_a_resumed_epoch_counts_only_what_it_trained(tmp_path, monkeypatch):
    import dlrun.training.loop

    monkeypatch.setattr(dlrun.training.loop, "time", _Clock())
    run = [*RUN, "data.batch_size=16", "trainer.max_epochs=1"]
    whole = build_loop(make_cfg(*run), tmp_path / "whole")
    whole.fit()
    samples = sum(len(y) for _, y in whole.data.train.batches(start=0))
    assert whole.history[0]["samples_per_s"] == samples  # 1 s of training: samples/s = the epoch's samples

    loop = build_loop(make_cfg(*run), tmp_path / "cut")
    loop.callbacks = {"stop": _StopAt(0, 3), **loop.callbacks}
    assert loop.fit()["status"] == "interrupted"  # 4 batches of 16 trained
    path = tmp_path / "cut" / "checkpoints" / "last.pt"
    resumed = build_loop(make_cfg(*run), tmp_path / "cut")
    checkpoint.restore(resumed, checkpoint.load(path), path)
    resumed.fit()
    assert resumed.history[0]["samples_per_s"] == samples - 4 * 16


# -- 4: no silent typos -------------------------------------------------------------------------------------
@pytest.mark.subprocess
def test_a_typo_added_with_plus_exits_non_zero_without_a_traceback(tmp_path):
    proc = run_dlrun(*TINY, "+trainer.max_epoch=3", f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert "trainer.max_epoch" in line and "did you mean max_epochs" in line
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


@pytest.mark.parametrize("override, key", [("+data.batchsize=3", "data.batchsize"), ("+eval.top_k=3", "eval.top_k"),
                                           ("+predict.input=x", "predict.input"), ("+seeds=3", "seeds")])
def test_unknown_keys_of_the_typed_groups_are_refused(override, key):
    with pytest.raises(ConfigError, match=f"unknown key {key}"):
        validate(make_cfg(*TINY, override))


@pytest.mark.parametrize("override, key, accepted", [
    ("+optimizer.momentun=0.9", "optimizer.momentun", "betas"),
    ("+loss.smoothing=0.1", "loss.smoothing", "label_smoothing"),
    ("+model.widht=3", "model.widht", "activation"),
    ("+scheduler.warmup=2", "scheduler.warmup", "warmup_epochs"),
    ("+callbacks.model_checkpoint.every=2", "callbacks.model_checkpoint.every", "every_n_epochs"),
])
def test_a_key_the_target_does_not_take_is_refused_before_any_data_is_read(tmp_path, override, key, accepted):
    # the data folder does not exist: a data error would come first if the key were checked only when built
    code, _ = execute(make_cfg(*TINY, "data=mnist", f"data.root={tmp_path}/nowhere", override), tmp_path)
    assert code == 2
    error = read_summary(tmp_path)["error"]
    assert error.startswith(f"{key}=") and accepted in error, error


# -- 5: Hydra's own flags -----------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, expected", [
    (["a=1", "-m", "b=1,2"], ["-m", "a=1", "b=1,2"]),
    (["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "--multirun", "x=1,2"],
     ["--multirun", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "x=1,2"]),
    (["a=1", "--cfg", "job", "b=2"], ["--cfg", "job", "a=1", "b=2"]),
    (["a=1", "--info", "defaults", "b=2"], ["--info", "defaults", "a=1", "b=2"]),
    (["a=1", "--info", "b=2"], ["--info", "a=1", "b=2"]),
    (["-cn=config", "a=1"], ["-cn=config", "a=1"]),
])
def test_overrides_on_both_sides_of_a_flag_are_all_taken(argv, expected):
    assert prepare_argv(argv) == expected


def test_a_run_folder_that_holds_a_run_keeps_its_hydra_record(tmp_path):
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text("task: train\n")
    assert "hydra.output_subdir=null" not in prepare_argv([f"hydra.run.dir={tmp_path}"])  # nothing trained yet
    (tmp_path / "metrics.jsonl").write_text("")
    assert prepare_argv([f"hydra.run.dir={tmp_path}"])[-1] == "hydra.output_subdir=null"
    assert "hydra.output_subdir=null" not in prepare_argv([f"hydra.run.dir={tmp_path / 'new'}"])


@pytest.mark.subprocess
def test_show_flags_with_multirun_are_one_line_and_both_sides_of_m_run(tmp_path):
    proc = run_dlrun("-m", "optimizer=sgd,adam", "--cfg", "job")
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert "--cfg" in line and "-m" in line
    with pytest.raises(UsageError):
        prepare_argv(["--info", "-m"])

    sweep = tmp_path / "sweep"
    proc = run_dlrun(*TINY, "trainer.max_epochs=1", "-m", "optimizer=sgd,adam", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    jobs = sorted(p for p in sweep.iterdir() if (p / "summary.json").exists())
    assert len(jobs) == 2
    assert all(read_summary(j)["status"] == "completed" and read_summary(j)["epochs"] == 1 for j in jobs)
    assert not list(sweep.glob("*/failed-*"))  # a fresh job's own lock file is not a failed attempt's leftover


# -- 6: faults around a run ----------------------------------------------------------------------------------
def _no_space(path):
    raise OSError(errno.ENOSPC, "No space left on device", str(path))


def _assert_loadable(run: Path, epoch: int) -> None:
    state = checkpoint.load(run / "checkpoints" / "last.pt")
    assert state["epoch"] == epoch
    assert not list((run / "checkpoints").glob(".*.tmp"))  # no half-written file left beside it
    for line in (run / "metrics.jsonl").read_text().splitlines():
        json.loads(line)


def _resume_completes(run: Path, *more: str) -> list[dict]:
    train(make_cfg(*RUN, "trainer.max_epochs=3", *more, "trainer.resume=true"), run)
    assert read_summary(run)["status"] == "completed"
    rows = read_jsonl(run / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    return rows


def test_disk_full_while_metrics_jsonl_is_written_keeps_the_run_resumable(tmp_path, monkeypatch):
    import dlrun.run_folder.records

    real_open, calls = open, []

    def full_at_second_line(path, mode="r", *args, **kwargs):
        if str(path).endswith("metrics.jsonl") and mode == "a":
            calls.append(path)
            if len(calls) == 2:
                _no_space(path)
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(dlrun.run_folder.records, "open", full_at_second_line, raising=False)
    code, _ = execute(make_cfg(*RUN, "trainer.max_epochs=3"), tmp_path)
    monkeypatch.undo()
    assert code == 1
    summary = read_summary(tmp_path)
    assert summary["status"] == "failed" and "No space left on device" in summary["error"]
    assert "metrics.jsonl" in summary["error"]
    _assert_loadable(tmp_path, epoch=2)  # the epoch's checkpoint was written before its metrics line
    assert len(read_jsonl(tmp_path / "metrics.jsonl")) == 1
    rows = _resume_completes(tmp_path)
    assert rows[1] == {k: v for k, v in checkpoint.load(tmp_path / "checkpoints" / "last.pt")["history"][1].items()}


def test_disk_full_while_tensorboard_is_written_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    from dlrun.callbacks.tensorboard import TensorBoardLogger

    real = TensorBoardLogger.on_epoch_end

    def full_at_epoch_two(self, loop, metrics):
        if loop.epoch == 2:
            _no_space(loop.run_dir / "tb")
        return real(self, loop, metrics)

    monkeypatch.setattr(TensorBoardLogger, "on_epoch_end", full_at_epoch_two)
    code, _ = execute(make_cfg(*RUN, "trainer.max_epochs=3"), tmp_path)
    monkeypatch.undo()
    assert code == 1
    assert "No space left on device" in read_summary(tmp_path)["error"]
    _assert_loadable(tmp_path, epoch=1)  # epoch 2 never completed: its checkpoint comes after TensorBoard
    _resume_completes(tmp_path)


def test_sigterm_while_a_checkpoint_is_written_finishes_the_file_then_stops(tmp_path, monkeypatch):
    real_save, sent = torch.save, []

    def save_with_sigterm(obj, f, *args, **kwargs):
        if not sent:  # the signal arrives in the middle of the first checkpoint write
            sent.append(True)
            f.write(b"\0" * 100)
            f.seek(0)
            os.kill(os.getpid(), signal.SIGTERM)
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(checkpoint.torch, "save", save_with_sigterm)
    loop = build_loop(make_cfg(*RUN, "trainer.max_epochs=3"), tmp_path)
    summary = loop.fit()
    monkeypatch.undo()
    assert sent and summary["status"] == "interrupted"
    state = checkpoint.load(tmp_path / "checkpoints" / "last.pt")
    assert (state["epoch"], state["batch_in_epoch"]) == (loop.epoch, loop.batch_in_epoch)
    _assert_loadable(tmp_path, epoch=loop.epoch)
    _resume_completes(tmp_path)


def test_metrics_jsonl_cut_mid_line_by_a_kill_is_rebuilt_on_resume(tmp_path):
    loop = build_loop(make_cfg(*RUN, "trainer.max_epochs=3"), tmp_path)
    loop.callbacks = {"stop": _StopAt(2, 1), **loop.callbacks}
    assert loop.fit()["status"] == "interrupted"
    text = (tmp_path / "metrics.jsonl").read_text()
    (tmp_path / "metrics.jsonl").write_text(text[: len(text) - 40])  # epoch 2's line torn by the kill
    history = checkpoint.load(tmp_path / "checkpoints" / "last.pt")["history"]
    rows = _resume_completes(tmp_path)
    assert rows[:2] == json.loads(json.dumps(history))


@pytest.mark.subprocess
def test_a_second_process_on_the_same_run_folder_is_refused_and_changes_nothing(tmp_path):
    run = tmp_path / "R"
    assert run_dlrun(*RUN, f"hydra.run.dir={run}").returncode == 0
    first = snapshot(run)
    with run_lock(run):  # a first dlrun holding the folder
        proc = run_dlrun("trainer.resume=true", f"hydra.run.dir={run}", "trainer.max_epochs=3")
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert "is in use by dlrun pid" in line
    assert snapshot(run) == first and not (run / "resumes.jsonl").exists()


def test_a_lock_left_by_a_killed_process_is_not_a_live_one(tmp_path):
    code = "import os, sys; from dlrun.run_folder.run_lock import run_lock\nwith run_lock(sys.argv[1]): os.kill(os.getpid(), 9)"
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)])
    assert proc.returncode == -signal.SIGKILL
    assert (tmp_path / "dlrun.lock").exists()  # the file stays behind ...
    with run_lock(tmp_path):  # ... but the lock went with the process
        with pytest.raises(Exception, match="in use"):
            with run_lock(tmp_path):
                pass
    assert not (tmp_path / "dlrun.lock").exists()


# -- 7: more epochs on a finished run follow a schedule planned for them ---------------------------------------
def test_more_epochs_on_a_finished_cosine_run_train_on_a_schedule_replanned_for_them(tmp_path):
    from dlrun.nn.schedulers import WarmupCosine

    cosine = [*RUN, "scheduler=cosine", "scheduler.warmup_epochs=0"]
    train(make_cfg(*cosine, "trainer.max_epochs=2"), tmp_path)
    train(make_cfg(*cosine, "trainer.max_epochs=4", "trainer.resume=true"), tmp_path)
    lrs = [row["lr"] for row in read_jsonl(tmp_path / "metrics.jsonl")]
    # the planned total was 2 epochs: loaded as saved, epochs 3 and 4 would train at lr 0
    assert lrs[2:] == pytest.approx([0.01 * WarmupCosine(0, 4)(e) for e in (2, 3)])
    assert read_summary(tmp_path)["epochs"] == 4 and (tmp_path / "summary.prev-1.json").is_file()


def test_a_one_cycle_run_is_not_stretched_and_its_result_stays(tmp_path, caplog):
    onecycle = [*RUN, "scheduler=onecycle"]
    train(make_cfg(*onecycle, "trainer.max_epochs=2"), tmp_path)
    before = (tmp_path / "summary.json").read_text()
    code, _ = execute(make_cfg(*onecycle, "trainer.max_epochs=3", "trainer.resume=true"), tmp_path)
    assert code == 2
    errors = [r.getMessage() for r in caplog.records if r.getMessage().startswith("error:")]
    assert len(errors) == 1 and "planned for 2 epochs and cannot be stretched" in errors[0]
    assert (tmp_path / "summary.json").read_text() == before and not list(tmp_path.glob("summary.prev-*"))


def test_a_run_saved_before_a_callback_module_was_renamed_still_resumes(tmp_path):
    train(make_cfg(*RUN, "trainer.max_epochs=1"), tmp_path)
    last = tmp_path / "checkpoints" / "last.pt"
    state = checkpoint.load(last)  # a run started in Python: its config is the one inside the checkpoint
    state["config"]["callbacks"]["model_checkpoint"]["_target_"] = "dlrun.callbacks.checkpoint.ModelCheckpoint"
    torch.save(state, last)
    train(make_cfg(*RUN, "trainer.max_epochs=2", "trainer.resume=true"), tmp_path)
    assert read_summary(tmp_path)["epochs"] == 2
